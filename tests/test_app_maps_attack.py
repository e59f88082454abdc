"""AppTest: the Model maps page (Compare) and the Adversarial digits page (Classroom)."""

from __future__ import annotations

import json
import re
import shutil
import sys
import types

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import app_helpers as h
from mnist_core.artifacts.files import load_gallery, load_models, read_manifest, write_manifest
from test_app_draw import FakeCanvas
from test_app_pages import TIMEOUT, open_page

MAPS_PAGE = "app_pages/model_maps.py"
ATTACK_PAGE = "app_pages/attack.py"


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]


def charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def trace_names(spec: dict) -> list[str]:
    return [t.get("name") for t in spec["data"]]


def captions(at: AppTest) -> list[str]:
    return [c for img in at.image for c in img.captions] + [c.value for c in at.caption]


def fake_canvas(monkeypatch, image) -> None:
    module = types.ModuleType("streamlit_drawable_canvas")
    module.st_canvas = FakeCanvas(image)
    monkeypatch.setitem(sys.modules, "streamlit_drawable_canvas", module)


@pytest.fixture(scope="module")
def gallery(artifacts):
    return load_gallery(artifacts)


# ---------------------------------------------------------------------------------------
# Model maps
# ---------------------------------------------------------------------------------------

def test_maps_show_every_model_with_the_test_digit_as_a_star(monkeypatch, artifacts):
    at = open_page(monkeypatch, artifacts, MAPS_PAGE)
    assert not at.error
    assert at.segmented_control(key="maps-source").value == "test"  # no drawing yet
    models = load_models(artifacts)
    specs = charts(at)
    assert len(specs) == len(models)
    n_test = len(np.load(artifacts / "digits.map.npz")["images"])
    for spec, model in zip(specs, models.values()):
        assert spec["layout"]["title"]["text"].startswith(model.title)
        names = trace_names(spec)
        assert names[:10] == [str(d) for d in range(10)] and "misread" in names
        assert names[-1] == "your digit"  # the star, on every map
        points = sum(len(t["x"]) for t in spec["data"][:10])
        assert points == n_test  # every test digit, once
        star = spec["data"][-1]
        assert np.isfinite([star["x"][0], star["y"][0]]).all()


def test_maps_star_follows_the_last_drawing(monkeypatch, artifacts, gallery):
    monkeypatch.setenv("MNIST_STUDIO_ARTIFACTS", str(artifacts))
    at = AppTest.from_file(str(h.REPO / "app.py"), default_timeout=TIMEOUT)
    one = gallery.labels == 1
    at.session_state["last_digit"] = gallery.images[np.flatnonzero(one)[0]] / np.float32(255)
    at.run()
    at.switch_page(MAPS_PAGE).run()
    no_exception(at)
    assert at.segmented_control(key="maps-source").value == "drawing"
    first = [s["data"][-1] for s in charts(at)]
    at.session_state["last_digit"] = gallery.images[np.flatnonzero(~one)[0]] / np.float32(255)
    at.run()
    no_exception(at)
    second = [s["data"][-1] for s in charts(at)]
    assert all(a["name"] == b["name"] == "your digit" for a, b in zip(first, second))
    assert any((a["x"], a["y"]) != (b["x"], b["y"]) for a, b in zip(first, second))


def test_maps_without_a_digit_show_the_maps_and_a_prompt(monkeypatch, artifacts):
    at = open_page(monkeypatch, artifacts, MAPS_PAGE)
    fake_canvas(monkeypatch, None)
    at.segmented_control(key="maps-source").set_value("draw").run()
    no_exception(at)
    assert any("Draw a digit in the small square" in i.value for i in at.info)
    specs = charts(at)
    assert specs and all("your digit" not in trace_names(s) for s in specs)


@pytest.mark.parametrize("how", ["missing", "unlisted", "damaged"])
def test_maps_page_without_its_map_file_says_so(monkeypatch, artifacts, tmp_path, how):
    folder = tmp_path / "nomap"
    shutil.copytree(artifacts, folder)
    path = folder / "lenet5.map.npz"
    if how == "damaged":
        raw = bytearray(path.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        path.write_bytes(bytes(raw))
    else:
        path.unlink()
        if how == "unlisted":
            write_manifest(folder, {k: v for k, v in read_manifest(folder).items()
                                    if k not in ("files", "versions")})
    at = open_page(monkeypatch, folder, MAPS_PAGE)
    assert len(at.error) == 1 and not at.get("plotly_chart")
    message = at.error[0].value
    assert "nomap/lenet5.map.npz" in message and str(folder) not in message
    assert "python -m mnist_core embed" in message
    assert {"missing": "missing", "unlisted": "not listed", "damaged": "damaged"}[how] in message


# ---------------------------------------------------------------------------------------
# Adversarial digits
# ---------------------------------------------------------------------------------------

def loss_change(at: AppTest) -> tuple[float, float]:
    text = next(c for c in captions(at) if "its loss went from" in c)
    before, after = re.search(r"loss went from (\d+\.\d+) to (\d+\.\d+)", text).groups()
    return float(before), float(after)


def test_attack_page_fools_the_chosen_model_and_shows_every_answer(monkeypatch, artifacts):
    at = open_page(monkeypatch, artifacts, ATTACK_PAGE)
    assert not at.error
    models = load_models(artifacts)
    assert at.segmented_control(key="attack_model").value == "numpy"
    assert len(at.metric) == len(models)  # every model's answer to the attacked digit
    before, after = loss_change(at)
    assert after > before
    pictures = [c for img in at.image for c in img.captions]
    assert any("the change" in c for c in pictures) and "the attacked digit" in pictures
    at.slider(key="attack_strength").set_value(0.3).run()
    no_exception(at)
    assert any(m.delta.endswith("wrong") for m in at.metric if m.label == models["numpy"].title)
    for name in models:
        for method in ("fgsm", "pgd"):
            at.segmented_control(key="attack_model").set_value(name).run()
            at.segmented_control(key="attack_method").set_value(method).run()
            no_exception(at)
            before, after = loss_change(at)
            assert after > before, (name, method)
    at.slider(key="attack_strength").set_value(0.0).run()
    no_exception(at)
    assert loss_change(at)[0] == loss_change(at)[1]
    assert any("the digit is unchanged" in c for c in captions(at))


def test_attack_page_waits_for_a_drawing(monkeypatch, artifacts):
    at = open_page(monkeypatch, artifacts, ATTACK_PAGE)
    fake_canvas(monkeypatch, None)
    at.segmented_control(key="attack-source").set_value("draw").run()
    no_exception(at)
    assert any("Draw a digit in the small square" in i.value for i in at.info)
    assert not at.metric
    fake_canvas(monkeypatch, h.canvas_rgba([[(100, 30), (100, 170)]], size=200, width=16))
    at.run()
    no_exception(at)
    assert len(at.metric) == 2
    assert any("the digit drawn here" in c for c in captions(at))


# ---------------------------------------------------------------------------------------
# The server's imports
# ---------------------------------------------------------------------------------------

SERVER_SCRIPT = r"""
import json, sys
from streamlit.testing.v1 import AppTest

at = AppTest.from_file("app.py", default_timeout=300).run()
for page in ("app_pages/model_maps.py", "app_pages/attack.py"):
    at.switch_page(page).run()
    assert not at.exception, (page, [e.message for e in at.exception])
    assert not at.error, (page, [e.value for e in at.error])
for name in ("dense", "cnn", "lenet5"):  # every Keras model's gradients
    at.segmented_control(key="attack_model").set_value(name).run()
    assert not at.exception, (name, [e.message for e in at.exception])
print(json.dumps(sorted(m for m in ("tensorflow", "keras", "openTSNE", "sklearn", "scipy")
                        if m in sys.modules)))
"""


def test_new_pages_on_the_shipped_models_import_neither_tensorflow_nor_opentsne():
    """On the shipped artifacts, in a fresh process: both pages run, and neither
    TensorFlow nor openTSNE (nor the SciPy and scikit-learn it brings) is imported."""
    import os
    import subprocess

    env = {**os.environ, "MNIST_STUDIO_ARTIFACTS": str(h.REPO / "artifacts")}
    out = subprocess.run([sys.executable, "-c", SERVER_SCRIPT], cwd=h.REPO, env=env,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_a_clicked_point_is_found_again():
    """map_point: a class trace's point number, the misread trace's rows, the star."""
    from ui.charts import map_figure, map_point

    labels = np.array([3, 1, 3, 0, 3, 1], np.uint8)
    preds = np.array([3, 1, 5, 0, 3, 7], np.uint8)
    coords = np.arange(12, dtype=np.float32).reshape(6, 2)
    fig = map_figure(coords, labels, preds, [str(d) for d in range(10)], "t", star=np.zeros(2))
    traces = fig.to_dict()["data"]
    for curve, trace in enumerate(traces[:10]):
        for point, x in enumerate(trace["x"]):
            row = map_point(labels, 10, curve, point)
            assert labels[row] == curve and coords[row, 0] == x
    wrong = traces[10]
    assert [map_point(labels, 10, 10, i, cd) for i, cd in enumerate(wrong["customdata"])] == [2, 5]
    assert map_point(labels, 10, 11, 0, None) is None  # the star
    assert map_point(labels, 10, 3, 99) is None


def test_attack_strength_move_does_not_encode_the_unchanged_digit_again(monkeypatch, artifacts):
    """A move of the strength slider changes the change and the attacked digit, not the
    digit attacked: two pictures are encoded, not three, and the first is the same."""
    from ui import pictures

    at = open_page(monkeypatch, artifacts, ATTACK_PAGE)
    no_exception(at)
    before = at.image[0].value
    encoded = []
    real_encode = pictures.Image.fromarray
    monkeypatch.setattr(pictures.Image, "fromarray",
                        lambda *a, **k: encoded.append(1) or real_encode(*a, **k))
    at.slider(key="attack_strength").set_value(0.23).run()
    no_exception(at)
    after = at.image[0].value
    assert after[0] == before[0] and after[1:] != before[1:]
    assert len(encoded) == 2
