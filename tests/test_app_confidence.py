"""AppTest: the Confidence page shows every calibrated model's temperature, its calibration
errors and reliability diagrams before and after, from the metrics' record alone."""

from __future__ import annotations

import json
import shutil

from streamlit.testing.v1 import AppTest

import app_helpers as h
from mnist_core.artifacts.files import load_models, manifest_or_empty, write_json, write_manifest

TIMEOUT = 180
PAGE = "app_pages/confidence.py"


def open_page(monkeypatch, directory) -> AppTest:
    monkeypatch.setenv("MNIST_STUDIO_ARTIFACTS", str(directory))
    at = AppTest.from_file(str(h.REPO / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page(PAGE).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_every_model_gets_its_temperature_and_diagrams(monkeypatch, artifacts):
    models = load_models(artifacts)
    at = open_page(monkeypatch, artifacts)
    assert [t.value for t in at.title] == ["Honest confidence"]
    table = at.dataframe[0].value
    assert list(table["Model"]) == [m.title for m in models.values()]
    for (_, row), model in zip(table.iterrows(), models.values()):
        rec = model.metrics["calibration"]
        assert row["Temperature"] == rec["temperature"]
        test = rec["sets"]["mnist-test"]
        assert row["ECE, MNIST test"] == f"{test['ece_before']:.2%} → {test['ece_after']:.2%}"
    assert [s.value for s in at.subheader] == [m.title for m in models.values()]
    for model in models.values():
        rec = model.metrics["calibration"]
        n = rec["sets"]["mnist-test"]["n"]
        assert (f"Temperature {rec['temperature']:.3f}. MNIST test: {n:,} digits read once."
                in [c.value for c in at.caption])
    charts = at.get("plotly_chart")
    assert len(charts) == len(models)  # the fixture has no handwriting curves: one each
    figure = json.loads(charts[0].proto.spec)
    names = [trace.get("name") for trace in figure["data"]]
    assert names == ["perfectly calibrated", "before", "after"]
    rec = next(iter(models.values())).metrics["calibration"]["sets"]["mnist-test"]
    shown_counts = [c for c, _ in figure["data"][2]["customdata"]]
    assert shown_counts == [c for c in rec["after"]["count"] if c]


def test_handwriting_curves_are_drawn_beside_mnist(monkeypatch, artifacts, tmp_path):
    folder = shutil.copytree(artifacts, tmp_path / "a")
    metrics = json.loads((folder / "numpy.metrics.json").read_text())
    sets = metrics["calibration"]["sets"]
    sets["handwriting-dev"] = {**sets["mnist-test"], "n": 123, "sets": ["usps"]}
    write_json(folder, "numpy.metrics.json", metrics)
    write_manifest(folder, {k: v for k, v in manifest_or_empty(folder).items()
                            if k not in ("files", "versions")})
    at = open_page(monkeypatch, folder)
    charts = at.get("plotly_chart")
    assert len(charts) == len(load_models(folder)) + 1
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in charts[:2]]
    assert titles[0].startswith("MNIST test set") and titles[1].startswith("Real handwriting")
    assert any("123 digits (usps)" in c.value for c in at.caption)


def test_models_without_a_record_say_how_to_make_one(monkeypatch, artifacts, tmp_path):
    folder = shutil.copytree(artifacts, tmp_path / "a")
    for name in load_models(folder):
        metrics = json.loads((folder / f"{name}.metrics.json").read_text())
        metrics.pop("calibration")
        write_json(folder, f"{name}.metrics.json", metrics)
    write_manifest(folder, {k: v for k, v in manifest_or_empty(folder).items()
                            if k not in ("files", "versions")})
    at = open_page(monkeypatch, folder)
    assert any("python -m mnist_core calibrate" in i.value for i in at.info)
    assert not at.get("plotly_chart")


# ---------------------------------------------------------------------------------------
# In a real browser (Debian chromium via playwright), desktop and phone width
# ---------------------------------------------------------------------------------------

def test_confidence_page_in_a_browser_at_desktop_and_phone_width():
    import pytest

    if h.chromium_path() is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    artifacts = h.real_artifacts()
    assert artifacts is not None
    models = load_models(artifacts)
    n_charts = sum(len(m.metrics["calibration"]["sets"]) for m in models.values())
    proc, url = h.start_server(artifacts)
    shots = h.REPO / "screenshots"
    shots.mkdir(exist_ok=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=h.chromium_path(),
                                        args=h.CHROMIUM_ARGS)
            for name, viewport, scheme in (("desktop", {"width": 1280, "height": 2600}, "light"),
                                           ("phone", {"width": 390, "height": 4200}, "dark")):
                context = browser.new_context(viewport=viewport, color_scheme=scheme)
                page = context.new_page()
                page.goto(f"{url}/Confidence")
                expect(page.get_by_text("Honest confidence")).to_be_visible(timeout=180_000)
                expect(page.locator(".js-plotly-plot")).to_have_count(n_charts, timeout=60_000)
                page.wait_for_function("!document.querySelector('[data-stale=\"true\"]')")
                expect(page.get_by_test_id("stException")).to_have_count(0)
                for model in models.values():
                    expect(page.get_by_role("heading", name=model.title)).to_be_visible()
                page.screenshot(path=shots / f"confidence-{name}.png")
                context.close()
            browser.close()
    finally:
        h.stop_server(proc)


def test_a_model_calibrated_on_validation_only_gets_its_figures_without_diagrams(
        monkeypatch, artifacts, tmp_path):
    """A model packaged from Train live carries the worker's record: a temperature and its
    validation figures, no reliability curves (``sets`` empty). The page says so."""
    folder = shutil.copytree(artifacts, tmp_path / "a")
    metrics = json.loads((folder / "numpy.metrics.json").read_text())
    metrics["calibration"]["sets"] = {}
    write_json(folder, "numpy.metrics.json", metrics)
    write_manifest(folder, {k: v for k, v in manifest_or_empty(folder).items()
                            if k not in ("files", "versions")})
    models = load_models(folder)
    at = open_page(monkeypatch, folder)
    table = at.dataframe[0].value
    row = table[table["Model"] == models["numpy"].title].iloc[0]
    assert row["ECE, MNIST test"] == "—"
    assert row["Temperature"] == metrics["calibration"]["temperature"]
    captions = [c.value for c in at.caption]
    assert any("no reliability diagrams" in c for c in captions), captions
    assert len(at.get("plotly_chart")) == len(models) - 1  # the others keep theirs
