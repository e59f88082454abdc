"""The classroom pages in a real headless Chromium, with screenshots in ``screenshots/``.

Reuses the server, browser and page fixtures of ``tests/test_browser.py`` (so the same
artifacts: the trained ones when they exist). Train live trains with its defaults when
``$MNIST_DATA`` (or the shared copy beside the repository) holds MNIST, and otherwise checks
that the page says so. Skipped only when no Chromium is installed.
"""

from __future__ import annotations

import numpy as np
import pytest

import app_helpers as h
from test_browser import (LOAD_TIMEOUT, SHOTS, STEP_TIMEOUT, artifacts, open_page,  # noqa: F401
                          assert_no_exception, browser, server, settle)

pytestmark = pytest.mark.skipif(h.chromium_path() is None, reason="chromium is not installed")

TRAIN_TIMEOUT = 240_000  # ms: the default training plus scoring on the test set, on 2 cores


@pytest.fixture(scope="module", autouse=True)
def mnist_for_the_server():
    """The server inherits the environment: point $MNIST_DATA at a local copy if there is one
    (before the module's server starts)."""
    import os
    had = "MNIST_DATA" in os.environ
    path = h.mnist_path()
    if not had and path is not None:
        os.environ["MNIST_DATA"] = str(path)
    yield path if (had or path is not None) else None
    if not had:
        os.environ.pop("MNIST_DATA", None)


@pytest.fixture
def page(browser, server):
    """A tall window, so one screenshot holds a whole classroom page."""
    context, page = open_page(browser, 2800)
    yield page
    context.close()


def shoot(page, name: str) -> None:
    assert_no_exception(page)
    settle(page)
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SHOTS / f"{name}.png")


def test_train_live_trains_with_the_defaults(page, server, mnist_for_the_server):
    from playwright.sync_api import expect
    page.goto(f"{server}/Train_live")
    expect(page.get_by_text("Train a model live")).to_be_visible(timeout=LOAD_TIMEOUT)
    page.get_by_role("button", name="Train", exact=True).click()
    if mnist_for_the_server is None:
        expect(page.get_by_text("MNIST_DATA").first).to_be_visible()
        shoot(page, "train-live")
        return
    # While it trains: a progress bar, the Stop button and live curves.
    expect(page.get_by_role("button", name="Stop")).to_be_visible()
    expect(page.get_by_test_id("stProgress")).to_be_visible()
    expect(page.get_by_text("Your test accuracy")).to_be_visible(timeout=TRAIN_TIMEOUT)
    expect(page.locator(".js-plotly-plot")).to_have_count(4)
    page.get_by_role("button", name="Use on the Draw page").click()
    expect(page.get_by_text("now answers beside the shipped models")).to_be_visible()
    shoot(page, "train-live")


@pytest.mark.parametrize("path, name, ready", [
    ("Look_inside", "look-inside", "Occlusion"),
    ("Stress_test", "stress-test", "Sweep one change"),
])
def test_digit_pages_render(page, server, path, name, ready):
    from playwright.sync_api import expect
    page.goto(f"{server}/{path}")
    expect(page.get_by_text(ready).first).to_be_visible(timeout=LOAD_TIMEOUT)
    expect(page.locator(".js-plotly-plot").first if path == "Stress_test"
           else page.get_by_test_id("stImage").first).to_be_visible()
    shoot(page, name)


def test_kaggle_upload_gives_a_submission(page, server, artifacts, tmp_path):
    from playwright.sync_api import expect

    from mnist_core.artifacts.files import load_gallery
    images = load_gallery(artifacts).images[:50].reshape(50, -1).astype(int)
    csv = tmp_path / "test.csv"
    csv.write_text(",".join(f"pixel{i}" for i in range(784)) + "\n"
                   + "\n".join(",".join(map(str, row)) for row in images) + "\n")
    page.goto(f"{server}/Kaggle")
    chooser = page.locator("input[type=file]")
    expect(chooser).to_be_attached(timeout=LOAD_TIMEOUT)
    chooser.set_input_files(csv)
    expect(page.get_by_text("Read 50 digits")).to_be_visible()
    page.get_by_role("button", name="Predict 50 digits").click()
    button = page.get_by_role("button", name="Download submission.csv")
    expect(button).to_be_visible()
    with page.expect_download() as info:
        button.click()
    lines = open(info.value.path()).read().strip().split("\n")
    assert lines[0] == "ImageId,Label" and len(lines) == 51
    assert np.all([0 <= int(line.split(",")[1]) <= 9 for line in lines[1:]])
    shoot(page, "kaggle")
