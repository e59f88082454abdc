"""Hostile uploads on a live server (issue #25): does the idle server come back to its level?

Starts the app (``streamlit run``, the shipped artifacts) and opens its Kaggle page in
headless Chromium. Uploads, one after another in the same session, the Kaggle cases of
``hostile_uploads.py`` (a 200 MB line, a zip of ``0001`` cells) and a well-formed
28,000-row test.csv that is then predicted; after each, waits for the page's answer and
then until the server is idle, and reads the server's resident memory. Reports the
server's RSS idle before, the peak and CPU seconds during each case, its RSS idle after,
and the goal: idle within 50 MB of its level before the cases.

    .venv/bin/python benchmarks/hostile_live.py        # writes benchmarks/HOSTILE_LIVE.md
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

import harness as h

sys.path.insert(0, str(h.REPO / "tests"))
import test_hostile as t  # noqa: E402  (the cases' files, built as streams)


@dataclass(frozen=True)
class LiveConfig:
    idle_cpu_s: float = 0.05      # server CPU in one quiet period below this: idle
    quiet_period_s: float = 2.0   # how long a quiet period is
    settle_max_s: float = 60.0    # give up waiting for idle after this long
    answer_ms: int = 180_000      # the page's answer to an upload or a prediction
    sample_s: float = 0.05        # RSS sampling period during a case
    goal_mb: float = 50.0         # the bound: idle within this of its level before


CFG = LiveConfig()
CASES = [  # (name, file name, bytes, predict after reading?)
    ("one 200 MB line of `0,` (0.2 MB zip)", "line.zip",
     lambda: t.zip_streamed("test.csv", b"0," * 2**20, 100), False),
    ("60,000 rows of `0001` cells (0.5 MB zip)", "cells.zip",
     lambda: t.zip_streamed("test.csv", t.row(["0001"] * 784), 60000), False),
    ("28,000 rows of zeros, a well-formed test.csv, then predicted (CNN)", "test.csv.zip",
     lambda: t.zip_streamed("test.csv", t.HEADER + t.GOOD_ROW * 28000, 1), True),
]


def idle_rss(proc: psutil.Process) -> float:
    """Wait until the server is idle (:data:`CFG`), then its RSS in MB."""
    deadline = time.monotonic() + CFG.settle_max_s
    while time.monotonic() < deadline:
        before = sum(proc.cpu_times()[:2])
        time.sleep(CFG.quiet_period_s)
        if sum(proc.cpu_times()[:2]) - before < CFG.idle_cpu_s:
            break
    return proc.memory_info().rss / 2**20


class Peak:
    """The server's highest RSS (MB) while a case runs, sampled in a thread."""

    def __init__(self, proc: psutil.Process):
        self.proc, self.mb, self._stop = proc, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(CFG.sample_s):
            self.mb = max(self.mb, self.proc.memory_info().rss / 2**20)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def main() -> None:
    from playwright.sync_api import expect, sync_playwright

    h.require_chromium()
    load_before = os.getloadavg()
    server, url = h.start_server()
    proc = psutil.Process(server.pid)
    rows = []
    try:
        with sync_playwright() as p:
            browser = h.launch_chromium(p)
            page = browser.new_page(viewport={"width": 1280, "height": 1600})
            expect.set_options(timeout=CFG.answer_ms)
            page.goto(f"{url}/Kaggle")
            uploader = page.get_by_test_id("stFileUploaderDropzoneInput")
            expect(uploader).to_be_attached()
            h.settle(page)
            start = idle_rss(proc)
            print(f"idle before: {start:.0f} MB", flush=True)
            for name, filename, build, predict in CASES:
                data = build()
                cpu0 = sum(proc.cpu_times()[:2])
                with Peak(proc) as peak:
                    uploader.set_input_files(files=[{"name": filename, "mimeType":
                                                     "application/zip", "buffer": data}])
                    # The answer to this upload names its file (an error or "Read N digits").
                    answer = page.get_by_test_id("stAlert").filter(has_text=filename).first
                    expect(answer).to_be_visible()
                    said = next(line for line in answer.inner_text().splitlines()
                                if filename in line)[:110]
                    if predict:
                        page.get_by_role("button", name="Predict").click()
                        expect(page.get_by_role("button", name="submission.csv")).to_be_visible()
                        said += "; predicted"
                    h.no_exception(page, name)
                cpu = sum(proc.cpu_times()[:2]) - cpu0
                after = idle_rss(proc)
                rows.append((name, f"{peak.mb:.0f}", f"{cpu:.1f}", f"{after:.0f}",
                             f"{after - start:+.0f}", said))
                print(rows[-1], flush=True)
            browser.close()
        end = idle_rss(proc)
    finally:
        h.stop_server(server)
    verdict = "met" if end - start <= CFG.goal_mb else "NOT met"
    lines = [h.measured(h.command(), "streamlit", "chromium", load_before=load_before), "",
             f"Server RSS idle on the Kaggle page before the cases: **{start:.0f} MB**; idle "
             f"after all of them: **{end:.0f} MB** ({end - start:+.0f} MB; goal: within "
             f"{CFG.goal_mb:.0f} MB: {verdict}). Idle: a {CFG.quiet_period_s:g} s period with "
             f"under {CFG.idle_cpu_s:g} s of server CPU. The cases ran one after another in "
             f"one browser session; the prediction runs in a worker process (not counted). What "
             f"stays after the last case is that session's own state, kept for its download: "
             f"28,000 digits (28,000 x 784 bytes = 22 MB) and the submission.", "",
             *h.table(["case", "peak server RSS MB", "server CPU s", "idle after MB",
                       "vs idle before", "the page said"], rows)]
    h.write_report(Path(__file__).with_name("HOSTILE_LIVE.md"),
                   "Hostile uploads on a live server: memory back at idle", lines)
    print(f"idle before {start:.0f} MB, after {end:.0f} MB: {verdict}")


if __name__ == "__main__":
    main()
