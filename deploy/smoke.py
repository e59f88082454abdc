"""Smoke test of a running MNIST Studio (a container, a compose stack, a Cloud app): visit
every page in headless Chromium, wait until its script has finished, say whether it shows
an exception or an error; then start a throwaway class on the Class dashboard (name
``smoke``, a random PIN), draw one digit on Collect and save it there, check the dashboard
counts it, and delete the class's digits again. Real classes are never touched.

    .venv/bin/python deploy/smoke.py --url http://127.0.0.1:8501

Exit status 0 when every page ran to its end without an exception or error and the digit
was saved, counted and deleted. Needs the test dependencies (playwright) and Debian's
chromium.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from deploy.browser import STROKES, draw_stroke, launch_chromium  # noqa: E402

# Every page's address (app.py's url_path; "" is Draw).
PAGES = ("", "Upload", "Compare_models", "Confidence", "Training_curves", "Model_maps",
         "Train_live", "Look_inside", "Stress_test", "Adversarial_digits", "Kaggle", "Collect",
         "Class_dashboard", "Teach")
LOAD_MS = 120_000   # a cold server loads every model on the first page


# The page's script has run to its end and its websocket is up: a stroke drawn while the
# page reconnects (a replica died) never reaches a server, and the canvas does not resend it.
SCRIPT_DONE = ("[data-testid=stApp][data-test-script-state=notRunning]"
               "[data-test-connection-state=CONNECTED]")


def problems(page) -> list[str]:
    """Exceptions and error boxes shown on ``page``, in words."""
    found = [f"exception: {t[:120]}" for t in page.get_by_test_id("stException").all_inner_texts()]
    found += [f"error: {t[:120]}" for t in page.get_by_test_id("stAlertContentError").all_inner_texts()]
    return found


def visit(page, url: str) -> list[str]:
    """Open ``url`` and wait until the page's script has run to its end (not merely until
    the page's frame is drawn: an exception comes at the end of a run); its problems."""
    from playwright.sync_api import expect
    page.goto(url)
    expect(page.locator(SCRIPT_DONE)).to_have_count(1)
    expect(page.get_by_test_id("stMainBlockContainer")).to_be_visible()
    expect(page.locator("[data-stale=true]")).to_have_count(0)
    return problems(page)


STROKE_SEND_MS = 400   # the canvas sends a stroke ~200 ms after mouse-up (benchmarks/BROWSER.md)


def settle_strokes(page) -> None:
    """Wait until the canvas has sent its last stroke and the run it started has ended, so
    Save saves the whole drawing."""
    from playwright.sync_api import expect
    page.wait_for_timeout(STROKE_SEND_MS)
    expect(page.locator(SCRIPT_DONE)).to_have_count(1)


def wait_run(page) -> None:
    """Wait for the run a click or a key started to end."""
    from playwright.sync_api import expect
    page.wait_for_timeout(300)       # the click's rerun request reaches the server first
    expect(page.locator(SCRIPT_DONE)).to_have_count(1)


def collect_once(page, url: str) -> tuple[bool, str]:
    """Start a throwaway class, save one drawn digit into it, see it counted, delete it:
    ``(all went well, what happened)``."""
    import secrets

    from playwright.sync_api import expect
    pin = secrets.token_hex(8)
    if visit(page, f"{url}/Class_dashboard"):
        return False, "the dashboard shows an error before a class is started"
    page.get_by_text("Start a new class (teachers)").click()
    page.get_by_role("textbox", name="Class name", exact=True).fill("smoke")
    page.get_by_role("textbox", name="PIN (6 or more characters; keep it from the learners)", exact=True).fill(pin)
    page.get_by_role("textbox", name="The PIN again", exact=True).fill(pin)
    page.get_by_role("textbox", name="The PIN again", exact=True).press("Enter")
    wait_run(page)
    page.get_by_role("button", name="Start the class").click()
    started = page.get_by_text("Class ").filter(has_text="started.")
    expect(started).to_be_visible()
    code = started.locator("strong").first.inner_text().strip()

    found = visit(page, f"{url}/Collect?class={code}")
    if found:
        return False, f"Collect: {'; '.join(found)}"
    prompt = page.get_by_role("heading", name="Draw a ")
    expect(prompt).to_be_visible()
    target = int(prompt.inner_text().strip().removeprefix("Draw a "))
    canvas = page.locator("canvas.upper-canvas")
    for stroke in STROKES[target]:
        draw_stroke(page, canvas, stroke, steps=12)
    save = page.get_by_role("button", name="Save")
    expect(save).to_be_enabled()
    settle_strokes(page)
    save.click()
    try:
        expect(page.get_by_text(f"Saved your {target}.")).to_be_visible()
    except AssertionError:
        return False, f"the drawn {target} was not saved; {'; '.join(problems(page))}"

    visit(page, f"{url}/Class_dashboard?class={code}")
    box = page.get_by_role("textbox", name=f"PIN of class {code}", exact=True)
    box.fill(pin)
    box.press("Enter")
    wait_run(page)
    page.get_by_role("button", name="Refresh").click()   # the dashboard caches for 5 s
    try:
        expect(page.get_by_text("1 digit from 1 writer", exact=True)).to_be_visible()
    except AssertionError:
        return False, f"the dashboard of {code} does not count the saved {target}"
    page.get_by_text(f"Yes, delete all 1 digits of class {code}").click()
    wait_run(page)
    page.get_by_role("button", name="Delete class data").click()
    try:
        expect(page.get_by_text(f"Deleted 1 digits of class {code}.")).to_be_visible()
    except AssertionError:
        return False, f"the smoke class {code}'s digit was not deleted"
    return True, f"a drawn {target} saved into the throwaway class {code}, counted, deleted"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--url", default="http://127.0.0.1:8501")
    parser.add_argument("--pages", nargs="*", default=None,
                        help="only these pages (their address, '' for Draw); default all")
    parser.add_argument("--no-collect", action="store_true",
                        help="skip the throwaway class (the pages only)")
    args = parser.parse_args(argv)
    from playwright.sync_api import expect, sync_playwright

    failed = False
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1280, "height": 1800})
        expect.set_options(timeout=LOAD_MS)
        for path in PAGES if args.pages is None else args.pages:
            found = visit(page, f"{args.url}/{path}")
            failed |= bool(found)
            print(f"{path or 'Draw'}: {'; '.join(found) or 'ok'}", flush=True)
        if not args.no_collect:
            ok, said = collect_once(page, args.url)
            failed |= not ok
            print(f"Collect: {said}", flush=True)
        browser.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
