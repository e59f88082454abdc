"""Issue 23 in a real headless Chromium: on Stress test, switching the dataset selector to
Clothing shows the clothing models' bars with clothing names and puts ``?data=fashion`` in
the address; the choice survives the navigation; a sent link opens on clothing.
Screenshots of the clothing pages go to ``screenshots/fashion-*.png``. Uses the shipped
artifacts (artifacts/ and artifacts/fashion/). Skipped only when no Chromium is installed.
"""

from __future__ import annotations

import re

import pytest
from test_browser import (CHROMIUM, LOAD_TIMEOUT, SHOTS, STEP_TIMEOUT, assert_no_exception,
                          browser, settle)  # noqa: F401 - browser: its fixture
from test_fashion import CLOTHES

import app_helpers as h

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                                "(apt-get install chromium); Playwright's own browser is not used")

BARS = "[data-testid=stHtml] .mb"
PAGES = {"Compare_models": "Compare models", "Confidence": "Honest confidence",
         "Training_curves": "Training curves", "Model_maps": "Model maps",
         "Look_inside": "Look inside the models", "Stress_test": "Stress test",
         "Adversarial_digits": "Adversarial clothing", "Upload": "Upload images"}


@pytest.fixture(scope="module")
def server():
    proc, url = h.start_server(h.REPO / "artifacts")
    yield url
    h.stop_server(proc)


@pytest.fixture
def page(browser):
    from playwright.sync_api import expect
    expect.set_options(timeout=STEP_TIMEOUT)
    context = browser.new_context(viewport={"width": 1280, "height": 1500})
    yield context.new_page()
    context.close()


def tick_names(page) -> list[str]:
    """The class names under the first row of probability bars."""
    return [t.strip() for t in page.locator(f"{BARS} >> nth=0").locator(
        ".mb-m >> nth=0").locator(".mb-x span").all_inner_texts()]


def test_switching_to_clothing_shows_clothing_names_on_the_bars(page, server):
    from playwright.sync_api import expect
    page.goto(f"{server}/Stress_test")
    expect(page.locator(BARS).first).to_be_visible(timeout=LOAD_TIMEOUT)
    assert tick_names(page) == [str(d) for d in range(10)]

    page.get_by_test_id("stButtonGroup").get_by_text("Clothing", exact=True).click()
    expect(page.locator(f"{BARS} .mb-x").first).to_contain_text("Ankle boot",
                                                               timeout=LOAD_TIMEOUT)
    expect(page).to_have_url(re.compile(r"[?&]data=fashion"))
    settle(page)
    assert tick_names(page) == list(CLOTHES)
    expect(page.get_by_text(re.compile(r"Fashion-MNIST test image #\d+")).first).to_be_visible()
    assert_no_exception(page)

    # The navigation's links carry no query: the session keeps the choice, and the
    # address gets it back.
    page.get_by_test_id("stTopNavSection").filter(has_text="Compare").click()
    page.get_by_test_id("stTopNavDropdownLink").filter(has_text="Compare models").click()
    expect(page.get_by_role("heading", name="Compare models")).to_be_visible()
    expect(page.get_by_text("Ankle boot").first).to_be_visible()
    expect(page).to_have_url(re.compile(r"Compare_models\?data=fashion"))


@pytest.mark.parametrize("path", PAGES)
def test_a_sent_link_opens_each_page_on_clothing(page, server, path):
    from playwright.sync_api import expect
    page.goto(f"{server}/{path}?data=fashion")
    expect(page.get_by_role("heading", name=PAGES[path])).to_be_visible(timeout=LOAD_TIMEOUT)
    expect(page.get_by_test_id("stButtonGroup").first).to_be_visible()
    settle(page)
    assert_no_exception(page)
    expect(page.get_by_test_id("stAlertContentError")).to_have_count(0)
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SHOTS / f"fashion-{path.lower()}.png", full_page=True)
