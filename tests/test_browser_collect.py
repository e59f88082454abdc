"""Collect and the Class dashboard in a real headless Chromium: three digits drawn with the
mouse and saved on Collect, then counted and scored on the dashboard, from a SQLite file of
this test's own. Screenshots: ``screenshots/collect.png``, ``screenshots/class-dashboard.png``.
Skipped only when no Chromium is installed (scripts/test.sh installs it)."""

from __future__ import annotations

import json

import pytest

import app_helpers as h
from deploy.browser import STROKES
from mnist_core.classroom import class_engine, class_store as cs
from test_browser import (LOAD_TIMEOUT, SHOTS, artifacts, assert_no_exception,  # noqa: F401
                          browser, open_page, settle)
from ui.class_data import DB_ENV

pytestmark = pytest.mark.skipif(h.chromium_path() is None, reason="chromium is not installed")

CLASS = "brw-test"
@pytest.fixture(scope="module")
def db_path(tmp_path_factory):
    return tmp_path_factory.mktemp("class-db") / "classroom.sqlite"


@pytest.fixture(scope="module")
def server(artifacts, db_path):  # noqa: F811 - this module's server has its own database
    import os

    from class_db import open_classes
    from mnist_core.classroom import class_schema
    engine = class_engine.make_engine(class_engine.sqlite_url(db_path))
    class_schema.migrate(engine)
    open_classes(engine, (CLASS,))          # the class its teacher started
    engine.dispose()
    had = os.environ.get(DB_ENV)
    os.environ[DB_ENV] = str(db_path)
    try:
        proc, url = h.start_server(artifacts)
    finally:
        if had is None:
            os.environ.pop(DB_ENV)
        else:
            os.environ[DB_ENV] = had
    yield url
    h.stop_server(proc)


@pytest.fixture
def page(browser, server):  # noqa: F811
    context, page = open_page(browser, 1800)
    yield page
    context.close()


def test_three_digits_collected_then_counted_and_scored(page, server, db_path):
    from playwright.sync_api import expect
    page.goto(f"{server}/Collect?class={CLASS}")
    prompt = page.get_by_role("heading", name="Draw a ")
    expect(prompt).to_be_visible(timeout=LOAD_TIMEOUT)
    settle(page)
    drawn = []
    for n in range(3):
        target = int(prompt.inner_text().strip().removeprefix("Draw a "))
        canvas = page.locator("canvas.upper-canvas")
        expect(canvas).to_be_visible()
        expect(page.get_by_role("button", name="Save")).to_be_disabled()   # a fresh canvas
        for stroke in STROKES[target]:
            h.draw_stroke(page, canvas, stroke, steps=12)
            settle(page)
        save = page.get_by_role("button", name="Save")
        expect(save).to_be_enabled()           # the drawing reached the server
        save.click()
        expect(page.get_by_text(f"Saved your {target}.")).to_be_visible()
        expect(page.get_by_text(f"({n + 1} saved, class {CLASS}: {n + 1})")).to_be_visible()
        drawn.append(target)
    assert_no_exception(page)
    settle(page)
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SHOTS / "collect.png")

    stored = cs.load_class(class_engine.make_engine(class_engine.sqlite_url(db_path)), CLASS)
    assert stored.labels.tolist() == drawn and set(stored.sources) == {"collect"}
    assert all(s and json.loads(s).get("objects") for s in stored.strokes), \
        "the canvas's pen strokes are stored with each digit"
    assert all(img.max() > 200 for img in stored.images)

    page.goto(f"{server}/Class_dashboard?class={CLASS}")
    from class_db import pin_of
    pin = page.get_by_role("textbox", name=f"PIN of class {CLASS}")
    expect(pin).to_be_visible(timeout=LOAD_TIMEOUT)
    pin.fill(pin_of(CLASS))
    pin.press("Enter")
    expect(page.get_by_text("3 digits from 1 writer")).to_be_visible(timeout=LOAD_TIMEOUT)
    expect(page.get_by_text(f"class {CLASS}'s digits best")).to_be_visible()
    cards = page.get_by_test_id("stMetric")
    expect(cards.first).to_be_visible()
    values = [v.strip() for v in cards.get_by_test_id("stMetricValue").all_inner_texts()]
    assert values and all(v.endswith("%") for v in values), values
    expect(page.locator(".js-plotly-plot")).to_have_count(2)   # counts and confusion matrix
    assert_no_exception(page)
    settle(page)
    page.screenshot(path=SHOTS / "class-dashboard.png", full_page=True)
