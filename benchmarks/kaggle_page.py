"""The Kaggle page in headless Chromium with a Kaggle-size file: 28,000 rows of MNIST test
digits, zipped as the page asks. Prints the time from clicking Predict to the download
button, the server's RSS before and after, and saves a screenshot.

    .venv/bin/python benchmarks/kaggle_page.py --data ../shared/data/mnist [--rounds 3]

(artifacts: ``artifacts/``; the screenshot goes to ``--shot``.)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import harness as h
from kaggle_speed import KAGGLE_ROWS, kaggle_zip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--data", required=True, help="MNIST folder")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shot", default=str(Path(tempfile.gettempdir()) / "kaggle-page.png"))
    args = parser.parse_args()
    from playwright.sync_api import expect, sync_playwright

    from mnist_core.datasets.data import load_dataset

    upload = kaggle_zip(Path(tempfile.mkdtemp(prefix="kaggle-page-")) / "test.csv.zip",
                        load_dataset(args.data).x_test, KAGGLE_ROWS)
    proc, url = h.start_server()
    times = []
    try:
        with sync_playwright() as p:
            browser = h.launch_chromium(p)
            rss_before = h.rss_mb(proc.pid)
            for _ in range(args.rounds):
                page = browser.new_page(viewport={"width": 1280, "height": 1100})
                page.goto(f"{url}/Kaggle")
                page.locator("input[type=file]").set_input_files(str(upload))
                go = page.get_by_role("button", name=f"Predict {KAGGLE_ROWS:,} digits with Keras CNN")
                expect(go).to_be_visible(timeout=120_000)
                t0 = time.perf_counter()
                go.click()
                expect(page.get_by_role("button", name="Download submission.csv")).to_be_visible(
                    timeout=120_000)
                times.append(time.perf_counter() - t0)
                assert not page.get_by_test_id("stException").count()
                page.screenshot(path=args.shot, full_page=True)
                page.close()
            rss_after = h.rss_mb(proc.pid)
            browser.close()
    finally:
        h.stop_server(proc)
    print(f"click Predict to the download button, {KAGGLE_ROWS:,} rows, Keras CNN: "
          + ", ".join(f"{t:.2f}" for t in times) + f" s (median {statistics.median(times):.2f});"
          f" server RSS {rss_before:.0f} MB before, {rss_after:.0f} MB after; "
          f"screenshot {args.shot}")


if __name__ == "__main__":
    main()
