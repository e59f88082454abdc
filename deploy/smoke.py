"""Smoke test of a running MNIST Studio (a container, a compose stack, a Cloud app): visit
every page in headless Chromium, say whether any shows an exception or an error, then draw
one digit on Collect and save it, which writes to the class database.

    .venv/bin/python deploy/smoke.py --url http://127.0.0.1:8501

Exit status 0 when every page rendered without an exception or error and the digit was
saved. Needs the test dependencies (playwright) and Debian's chromium.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

import app_helpers as h  # noqa: E402
from test_browser_collect import STROKES  # noqa: E402

# Every page's address (app.py's url_path; "" is Draw).
PAGES = ("", "Upload", "Compare_models", "Confidence", "Training_curves", "Model_maps",
         "Train_live", "Look_inside", "Stress_test", "Adversarial_digits", "Kaggle", "Collect",
         "Class_dashboard", "Teach")
LOAD_MS = 120_000   # a cold server loads every model on the first page


def problems(page) -> list[str]:
    """Exceptions and error boxes shown on ``page``, in words."""
    found = [f"exception: {t[:120]}" for t in page.get_by_test_id("stException").all_inner_texts()]
    found += [f"error: {t[:120]}" for t in page.get_by_test_id("stAlertContentError").all_inner_texts()]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--url", default="http://127.0.0.1:8501")
    parser.add_argument("--class-code", default="smoke", help="class the test digit goes to")
    args = parser.parse_args()
    from playwright.sync_api import expect, sync_playwright

    failed = False
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=h.chromium_path(), args=h.CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1800})
        expect.set_options(timeout=LOAD_MS)
        for path in PAGES:
            page.goto(f"{args.url}/{path}")
            expect(page.get_by_test_id("stMainBlockContainer")).to_be_visible()
            expect(page.locator("[data-stale=true]")).to_have_count(0)
            found = problems(page)
            failed |= bool(found)
            print(f"{path or 'Draw'}: {'; '.join(found) or 'ok'}", flush=True)
        page.goto(f"{args.url}/Collect?class={args.class_code}")
        prompt = page.get_by_role("heading", name="Draw a ")
        expect(prompt).to_be_visible()
        target = int(prompt.inner_text().strip().removeprefix("Draw a "))
        canvas = page.locator("canvas.upper-canvas")
        save = page.get_by_role("button", name="Save")
        for stroke in STROKES[target]:
            h.draw_stroke(page, canvas, stroke, steps=12)
        expect(save).to_be_enabled()
        save.click()
        saved = page.get_by_text(f"Saved your {target}.")
        try:
            expect(saved).to_be_visible()
            print(f"Collect: a drawn {target} saved")
        except AssertionError:
            failed = True
            print(f"Collect: the drawn {target} was not saved; {'; '.join(problems(page))}")
        browser.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
