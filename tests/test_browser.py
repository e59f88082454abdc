"""The app in a real headless Chromium: draw with the mouse, upload, visit every page.

Uses ``$MNIST_STUDIO_ARTIFACTS`` if set, else the repository's trained ``artifacts/`` when they
exist, else the tiny fixture models; with trained models the CNN must read the 7. Screenshots
of every page go to ``screenshots/``. Skipped only when no Chromium is installed (CI installs
it).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import app_helpers as h

CHROMIUM = h.chromium_path()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                                "(apt-get install chromium); Playwright's own browser is not used")

SHOTS = h.REPO / "screenshots"
LOAD_TIMEOUT = 180_000   # ms: the first page load imports TensorFlow and loads every model
STEP_TIMEOUT = 60_000


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory):
    """``$MNIST_STUDIO_ARTIFACTS`` if set, else the repository's trained ``artifacts/`` when
    they exist, else the tiny fixture models."""
    from mnist_core.artifacts.files import ArtifactError, read_manifest, verified_path
    chosen = os.environ.get("MNIST_STUDIO_ARTIFACTS")
    directory = Path(chosen) if chosen else h.real_artifacts()
    if directory is None:
        return h.fixture_artifacts(tmp_path_factory)
    try:  # fail in a second, not after the page's load timeout, when they do not verify
        manifest = read_manifest(directory)
        for filename in manifest["files"]:
            verified_path(directory, filename, manifest)
    except ArtifactError as exc:
        pytest.fail(f"the artifacts the browser test would use are broken: {exc}")
    return directory


@pytest.fixture(scope="session")
def trained(artifacts) -> bool:
    """Whether these are fully trained models (not the one-epoch test fixture)."""
    from mnist_core.artifacts.files import read_manifest
    return not read_manifest(artifacts).get("command", "").startswith("tests/app_helpers.py")


@pytest.fixture(scope="module")
def titles(artifacts):
    from mnist_core.artifacts.files import read_manifest
    from mnist_core.artifacts.registry import REGISTRY
    listed = read_manifest(artifacts)["models"]
    return {n: REGISTRY[n].title for n in REGISTRY if n in listed}


@pytest.fixture(scope="module")
def server(artifacts):
    proc, url = h.start_server(artifacts)
    yield url
    h.stop_server(proc)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=h.CHROMIUM_ARGS)
        yield b
        b.close()


def open_page(browser, height: int):
    """A fresh browser context and page, ``height`` pixels tall; close the context after."""
    from playwright.sync_api import expect
    expect.set_options(timeout=STEP_TIMEOUT)
    context = browser.new_context(viewport={"width": 1280, "height": height})
    return context, context.new_page()


@pytest.fixture
def page(browser, server):
    context, page = open_page(browser, 1500)
    yield page
    context.close()


def open_draw_page(page, server):
    from playwright.sync_api import expect
    page.goto(server)
    canvas = page.locator("canvas.upper-canvas")
    expect(canvas).to_be_visible(timeout=LOAD_TIMEOUT)
    expect(page.get_by_text("Draw a digit from 0 to 9")).to_be_visible(timeout=LOAD_TIMEOUT)
    return canvas


def metric_values(page, titles) -> dict[str, str]:
    from playwright.sync_api import expect
    values = {}
    for name, title in titles.items():
        card = page.get_by_test_id("stMetric").filter(has_text=title)
        expect(card).to_have_count(1)
        values[name] = card.get_by_test_id("stMetricValue").inner_text().strip()
    return values


BARS = "[data-testid=stHtml] .mb"   # ui.charts.probability_bars, one row per digit


def bar_labels(page) -> list[str]:
    """The percentages written over the models' winning bars, left to right."""
    return [t.strip() for t in page.locator(f"{BARS} .mb-v").all_inner_texts()]


def settle(page) -> None:
    """Wait until every image has loaded, no Streamlit element is still stale, and none
    is still a skeleton (tables and plotly charts are mounted lazily: a screenshot taken
    before shows grey boxes)."""
    page.wait_for_function("Array.from(document.images).every(i => i.complete)")
    page.wait_for_function(
        "!document.querySelector('[data-stale=\"true\"], [data-testid=\"stSkeleton\"]')")


def assert_no_exception(page):
    from playwright.sync_api import expect
    expect(page.get_by_test_id("stException")).to_have_count(0)


def test_drawing_a_seven_gets_every_models_answer(page, server, titles, trained):
    from playwright.sync_api import expect
    canvas = open_draw_page(page, server)
    h.draw_stroke(page, canvas, h.SEVEN, steps=20)
    expect(page.get_by_text("From drawing to model input")).to_be_visible()
    expect(page.locator(BARS)).to_have_count(1)
    values = metric_values(page, titles)
    # One panel per model, its winning bar labelled with the percentage its card gives.
    expect(page.locator(f"{BARS} .mb-m")).to_have_count(len(titles))
    assert bar_labels(page) == [
        page.get_by_test_id("stMetric").filter(has_text=t).get_by_test_id("stMetricDelta")
        .inner_text().split()[0] for t in titles.values()]
    assert all(v in [str(d) for d in range(10)] for v in values.values()), values
    if trained and "cnn" in values:
        assert values["cnn"] == "7", values
    assert_no_exception(page)
    SHOTS.mkdir(exist_ok=True)
    expect(page.get_by_text("centred by mass")).to_be_visible()
    # The real component's drawing takes the canvas path: no polarity vote on a drawing.
    expect(page.get_by_text("strokes drawn over the canvas's own background")).to_be_visible()
    settle(page)
    page.screenshot(path=SHOTS / "draw.png")

    # Clear empties the canvas and brings the prompt back.
    page.get_by_role("button", name="Clear").click()
    expect(page.get_by_text("Draw a digit from 0 to 9")).to_be_visible()
    expect(page.get_by_test_id("stMetric")).to_have_count(0)


# Keeps the text of every message the server sends the page (protobuf, its strings as UTF-8).
WATCH_RECEIVED = """
window.__received = [];
const PageWebSocket = window.WebSocket;
window.WebSocket = function (...args) {
    const ws = new PageWebSocket(...args);
    ws.addEventListener('message', (e) => {
        if (e.data instanceof ArrayBuffer) {
            window.__received.push(new TextDecoder('utf-8', {fatal: false}).decode(e.data));
        }
    });
    return ws;
};
window.WebSocket.prototype = PageWebSocket.prototype;
Object.assign(window.WebSocket, PageWebSocket);
"""


def test_a_stroke_reruns_only_the_drawing_board(browser, server):
    """The canvas and what is read from it are a fragment: after a stroke the server sends
    the drawing board again and nothing of the page above it (title, caption)."""
    from playwright.sync_api import expect
    context, page = open_page(browser, 1500)
    try:
        context.add_init_script(WATCH_RECEIVED)
        canvas = open_draw_page(page, server)
        received = "() => window.__received.join('\\n')"
        assert "models read your handwriting" in page.evaluate(received)  # the whole page
        h.draw_stroke(page, canvas, h.SEVEN, steps=20)
        expect(page.get_by_text("this rerun of the drawing board")).to_be_visible()
        settle(page)
        page.evaluate("() => { window.__received = []; }")
        bars = page.locator(BARS).get_attribute("data-bars")
        h.draw_stroke(page, canvas, [(0.5, 0.15), (0.5, 0.85)], steps=20)  # a 1 over the 7
        page.wait_for_function(f"() => document.querySelector({BARS!r})?.dataset.bars "
                               f"!== {bars!r}")
        settle(page)
        after = page.evaluate(received)
        assert "this rerun of the drawing board" in after and "From drawing to model" in after
        assert "models read your handwriting" not in after and "MNIST Studio" not in after
        expect(page.get_by_role("heading", name="MNIST Studio")).to_be_visible()
        assert_no_exception(page)
    finally:
        context.close()


def test_test_digit_button_then_drawing_again(page, server, titles):
    from playwright.sync_api import expect
    canvas = open_draw_page(page, server)
    page.get_by_role("button", name="Show me a test digit").click()
    expect(page.get_by_text("true label")).to_be_visible()
    assert len(metric_values(page, titles)) == len(titles)
    assert_no_exception(page)
    # Drawing takes over from the test digit again.
    h.draw_stroke(page, canvas, h.SEVEN, steps=20)
    expect(page.get_by_text("From drawing to model input")).to_be_visible()
    expect(page.get_by_text("true label")).to_have_count(0)
    assert len(metric_values(page, titles)) == len(titles)


def test_phone_layout(browser, server, titles):
    from playwright.sync_api import expect
    context = browser.new_context(viewport={"width": 390, "height": 2400}, is_mobile=True,
                                  has_touch=True, device_scale_factor=2)
    page = context.new_page()
    try:
        canvas = open_draw_page(page, server)
        box = canvas.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390, "canvas fits a phone screen"
        h.draw_stroke(page, canvas, h.SEVEN, steps=20)
        expect(page.get_by_text("From drawing to model input")).to_be_visible()
        metric_values(page, titles)
        expect(page.get_by_text("centred by mass")).to_be_visible()
        bars = page.locator(BARS)
        expect(bars).to_be_visible()
        # The four panels side by side within the screen, the labels inside them.
        panels = [b.bounding_box() for b in bars.locator(".mb-m").all()]
        assert len(panels) == len(titles)
        assert all(p["x"] >= 0 and p["x"] + p["width"] <= 390 for p in panels), panels
        assert len({round(p["y"]) for p in panels}) == 1, "one row, not stacked"
        for label, panel in zip(bars.locator(".mb-v").all(), panels):
            box = label.bounding_box()
            assert panel["x"] - 1 <= box["x"]
            assert box["x"] + box["width"] <= panel["x"] + panel["width"] + 1
        settle(page)
        page.screenshot(path=SHOTS / "draw-phone.png")
    finally:
        context.close()


APP_BACKGROUND = """() => getComputedStyle(document.querySelector('[data-testid="stApp"]'))
    .backgroundColor"""


def luminance(css_colour: str) -> float:
    """0 (black) to 255 (white) for a CSS ``rgb(...)`` / ``rgba(...)`` colour."""
    inside = css_colour[css_colour.index("(") + 1:css_colour.index(")")]
    r, g, b = (float(v) for v in inside.split(",")[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_both_themes_follow_the_system_setting(browser, server, titles, scheme):
    from playwright.sync_api import expect
    context = browser.new_context(viewport={"width": 1280, "height": 1500},
                                  color_scheme=scheme)
    page = context.new_page()
    try:
        canvas = open_draw_page(page, server)
        background = luminance(page.evaluate(APP_BACKGROUND))
        assert background > 200 if scheme == "light" else background < 40, background
        h.draw_stroke(page, canvas, h.SEVEN, steps=20)
        expect(page.get_by_text("centred by mass")).to_be_visible()
        metric_values(page, titles)
        # The bars' text takes the theme's colour: light on the dark page, dark on the light.
        for part in (".mb-t", ".mb-v", ".mb-x span"):
            text = luminance(page.locator(f"{BARS} {part}").first.evaluate(
                "e => getComputedStyle(e).color"))
            assert abs(text - background) > 100, (part, text, background)
        settle(page)
        page.screenshot(path=SHOTS / f"draw-{scheme}.png")
    finally:
        context.close()


def test_upload_reads_good_files_and_flags_bad_ones(page, server, titles, tmp_path, artifacts):
    from playwright.sync_api import expect

    from mnist_core.artifacts.files import load_gallery
    gallery = load_gallery(artifacts)
    digit = gallery.images[int(np.flatnonzero(gallery.sample)[0])]
    good, bad = tmp_path / "digit.png", tmp_path / "broken.png"
    good.write_bytes(h.png_bytes(h.paper_digit(digit)))
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    page.goto(f"{server}/Upload")
    chooser = page.locator("input[type=file]")
    expect(chooser).to_be_attached(timeout=LOAD_TIMEOUT)
    chooser.set_input_files([good, bad])
    expect(page.get_by_text("not a readable image")).to_be_visible()
    expect(page.get_by_text("what the models see")).to_be_visible()
    assert len(metric_values(page, titles)) == len(titles)
    expect(page.locator(BARS)).to_have_count(1)
    assert_no_exception(page)
    settle(page)
    page.screenshot(path=SHOTS / "upload.png")


@pytest.mark.parametrize("path, name, ready", [
    ("Compare_models", "compare", "Confusion matrix"),
    ("Training_curves", "curves", "Training curves"),
])
def test_pages_render(page, server, titles, path, name, ready):
    from playwright.sync_api import expect
    page.goto(f"{server}/{path}")
    expect(page.get_by_text(ready).first).to_be_visible(timeout=LOAD_TIMEOUT)
    expect(page.locator(".js-plotly-plot").first).to_be_visible()
    expect(page.get_by_test_id("stDataFrame").first).to_be_visible()
    for title in titles.values():
        expect(page.get_by_text(title).first).to_be_attached()
    assert_no_exception(page)
    settle(page)
    page.screenshot(path=SHOTS / f"{name}.png")
