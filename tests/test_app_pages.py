"""AppTest: Compare models and Training curves render every model; broken artifacts stop
every page with a clear ``st.error`` instead of a traceback."""

from __future__ import annotations

import json
import shutil

import pytest
from streamlit.testing.v1 import AppTest

import app_helpers as h
from mnist_core.artifacts.files import load_models, read_manifest, write_manifest

TIMEOUT = 180
PAGES = tuple(sorted(f"app_pages/{p.name}" for p in (h.REPO / "app_pages").glob("*.py")))


@pytest.fixture(scope="module")
def titles(artifacts):
    return [m.title for m in load_models(artifacts).values()]


def open_page(monkeypatch, directory, page: str) -> AppTest:
    monkeypatch.setenv("MNIST_STUDIO_ARTIFACTS", str(directory))
    at = AppTest.from_file(str(h.REPO / "app.py"), default_timeout=TIMEOUT).run()
    if page != "app_pages/draw.py":  # the default page, which app.py opens on
        at.switch_page(page).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_navigation_registers_every_page_once_and_opens_on_draw(monkeypatch, artifacts):
    at = open_page(monkeypatch, artifacts, "app_pages/draw.py")
    assert [t.value for t in at.title] == ["MNIST Studio"]  # the Draw page is the default
    for page in PAGES:  # switch_page refuses a file st.navigation did not register
        at.switch_page(page).run()
        assert not at.exception, (page, [e.message for e in at.exception])
    registered = (h.REPO / "app.py").read_text().count("st.Page(")
    assert registered == len(PAGES), "every file in pages/ is registered in app.py, once"


def test_compare_page_shows_every_model(monkeypatch, artifacts, titles):
    at = open_page(monkeypatch, artifacts, "app_pages/compare_models.py")
    assert not at.error
    scores = at.dataframe[0].value
    assert list(scores["Model"]) == titles
    assert scores["Test accuracy"].between(0, 1).all()
    assert (scores["Parameters"] > 0).all()
    picker = at.segmented_control(key="model")
    assert len(picker.options) == len(titles)
    assert len(at.get("plotly_chart")) == 1
    per_class = at.dataframe[1].value
    assert list(per_class["Class"]) == [str(d) for d in range(10)]
    assert any("disagree" in s.value for s in at.subheader)


def test_compare_page_every_model_and_view(monkeypatch, artifacts, titles):
    at = open_page(monkeypatch, artifacts, "app_pages/compare_models.py")
    names = list(load_models(artifacts))
    for name in names:
        at.segmented_control(key="model").set_value(name).run()
        for mode in ("Counts", "Row %", "Errors only"):
            at.segmented_control(key="confusion_mode").set_value(mode).run()
            assert not at.exception, [e.message for e in at.exception]
            assert len(at.get("plotly_chart")) == 1
        title = titles[names.index(name)]
        assert any(title in s.value for s in at.subheader)


def test_training_curves_page_shows_every_model(monkeypatch, artifacts, titles):
    at = open_page(monkeypatch, artifacts, "app_pages/training_curves.py")
    assert not at.error
    assert len(at.get("plotly_chart")) == 1
    summary = at.dataframe[0].value
    assert list(summary["Model"]) == titles
    assert (summary["Epochs"] >= 1).all()
    at.toggle(key="log_loss").set_value(True).run()
    assert not at.exception
    at.multiselect(key="curve_models").set_value([]).run()
    assert not at.exception
    assert any("Pick at least one model" in i.value for i in at.info)
    assert not at.get("plotly_chart")


@pytest.mark.parametrize("page", PAGES)
def test_damaged_weights_stop_every_page_with_the_message(monkeypatch, artifacts, tmp_path, page):
    broken = h.damaged_copy(artifacts, tmp_path / "broken")
    at = open_page(monkeypatch, broken, page)
    assert len(at.error) == 1
    message = at.error[0].value
    assert "broken/numpy.npz" in message and "damaged" in message
    assert str(broken) not in message  # never where the server keeps it
    assert "python -m mnist_core train" in message  # how to rebuild
    assert not at.metric and not at.get("plotly_chart") and not at.dataframe


WRONG_SHAPE = {  # valid JSON, re-hashed into the manifest, not what the pages read
    "numpy.history.json": ({"epochs": "x"}, "'epochs' should be a list"),
    "lenet5.metrics.json": ({"accuracy": "high"}, "'n' is missing"),
}


@pytest.mark.parametrize("filename", WRONG_SHAPE)
@pytest.mark.parametrize("page", PAGES)
def test_history_or_metrics_of_the_wrong_shape_stop_every_page(monkeypatch, artifacts, tmp_path,
                                                              page, filename):
    broken = tmp_path / "shapeless"
    shutil.copytree(artifacts, broken)
    payload, problem = WRONG_SHAPE[filename]
    (broken / filename).write_text(json.dumps(payload))
    write_manifest(broken, read_manifest(broken))
    at = open_page(monkeypatch, broken, page)
    assert len(at.error) == 1
    message = at.error[0].value
    assert f"shapeless/{filename}" in message and problem in message, message
    assert str(broken) not in message and "python -m mnist_core train" in message
    assert not at.metric and not at.get("plotly_chart") and not at.dataframe


def test_missing_artifacts_say_how_to_build_them(monkeypatch, tmp_path):
    at = open_page(monkeypatch, tmp_path / "nowhere", "app_pages/draw.py")
    assert len(at.error) == 1
    assert "nowhere/manifest.json is missing" in at.error[0].value
    assert str(tmp_path) not in at.error[0].value
    assert "python -m mnist_core train" in at.error[0].value


def test_a_manifest_without_models_says_so_without_the_servers_path(monkeypatch, artifacts,
                                                                    tmp_path):
    empty = tmp_path / "empty"
    shutil.copytree(artifacts, empty)
    write_manifest(empty, {**read_manifest(empty), "models": {}})
    at = open_page(monkeypatch, empty, "app_pages/draw.py")
    assert len(at.error) == 1
    message = at.error[0].value
    assert "empty/manifest.json lists no models" in message and str(empty) not in message
    assert "python -m mnist_core train" in message
