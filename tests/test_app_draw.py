"""AppTest: the Draw page (app.py) with a drawing injected in place of the browser canvas."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import app_helpers as h
from mnist_core.artifacts.files import load_gallery
from mnist_core.datasets.data import to_float
from mnist_core.reading.inference import read_digits, read_input
from mnist_core.models.views import DEFAULT_VIEWS
from ui.digit_picker import TEST_ROW_KEY

VIEW_CAPTIONS = ["as is", "↺ 8°", "↻ 8°", "×0.9", "×1.1"]

TIMEOUT = 180  # the first run imports TensorFlow and loads the models


class FakeCanvas:
    """Stands in for ``st_canvas`` and records how the page called it."""

    def __init__(self, image: np.ndarray | None):
        self.image = image
        self.calls: list[dict] = []

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        image = self.image

        class Result:
            image_data = image
            json_data = None
        return Result()


@pytest.fixture
def draw(monkeypatch, artifacts):
    """``draw(image)`` -> (AppTest after its first run, the fake canvas)."""
    monkeypatch.setenv("MNIST_STUDIO_ARTIFACTS", str(artifacts))

    def run(image):
        fake = FakeCanvas(image)
        # The page does `from streamlit_drawable_canvas import st_canvas` on every run;
        # a stand-in module answers it (the real one registers a browser component).
        module = types.ModuleType("streamlit_drawable_canvas")
        module.st_canvas = fake
        monkeypatch.setitem(sys.modules, "streamlit_drawable_canvas", module)
        at = AppTest.from_file(str(h.REPO / "app.py"), default_timeout=TIMEOUT).run()
        assert not at.exception, [e.message for e in at.exception]
        return at, fake
    return run


def shown(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def bars(at) -> list[dict]:
    return h.probability_bars(at)


def test_canvas_is_configured_for_mnist_drawing(draw):
    at, fake = draw(None)
    kwargs = fake.calls[-1]
    assert (kwargs["width"], kwargs["height"]) == (280, 280)
    assert kwargs["stroke_color"] == "#FFFFFF" and kwargs["background_color"] == "#000000"
    assert kwargs["drawing_mode"] == "freedraw" and kwargs["update_streamlit"] is True
    assert kwargs["return_image_data"] is True
    assert kwargs["key"].startswith("canvas")
    at.slider(key="brush").set_value(30).run()
    assert fake.calls[-1]["stroke_width"] == 30


@pytest.mark.parametrize("image", [
    None,                                                   # nothing sent yet
    np.zeros((280, 280, 4), np.uint8),                      # transparent, no strokes
    np.dstack([np.zeros((280, 280, 3), np.uint8), np.full((280, 280), 255, np.uint8)]),
], ids=["none", "transparent", "black"])
def test_blank_canvas_prompts_and_predicts_nothing(draw, image):
    at, _ = draw(image)
    assert any("Draw a digit" in i.value for i in at.info)
    assert not at.metric and not bars(at)
    assert not at.error


def test_drawn_one_is_read_by_every_model(draw, models):
    image = h.one_stroke()
    at, _ = draw(image)
    expected = read_digits(image, models, canvas=True)
    assert len(expected) == 1
    titles = {m.title: str(expected[0].digit(n)) for n, m in models.items()}
    assert shown(at) == titles
    # A clear vertical stroke is a 1 for any model trained on digits.
    assert set(shown(at).values()) == {"1"}
    (shown_bars,) = bars(at)                      # every model's bars in one row
    assert list(shown_bars) == [m.title for m in models.values()]
    for name, m in models.items():
        p = expected[0].probs[name]
        assert shown_bars[m.title]["top"] == int(p.argmax()) == 1
        assert shown_bars[m.title]["label"] == f"{p.max():.0%}"
        assert np.allclose(shown_bars[m.title]["heights"], p, atol=6e-4)
    captions = " ".join(c for image in at.image for c in image.captions)
    assert "What the models see" in captions      # the 28x28 input
    for stage in ("cropped", "fitted into 20×20", "centred by mass"):
        assert stage in captions                  # the preprocessing stages
    convnets = [m.title for m in models.values() if m.views == DEFAULT_VIEWS]
    assert convnets, "the fixture models should include a convnet"
    view_captions = [c for image in at.image for c in image.captions if c in VIEW_CAPTIONS]
    assert view_captions == VIEW_CAPTIONS         # a tall 1 is not narrowed: five views
    note = next(c.value for c in at.caption if "Each model's bars show the average" in c.value)
    assert f"{' and '.join(convnets)}: all of them" in note


def test_gallery_digit_drawn_on_canvas_matches_mnist_core(draw, models, artifacts):
    gallery = load_gallery(artifacts)
    row = int(np.flatnonzero(gallery.sample)[0])
    image = h.digits_on_canvas([gallery.images[row]])
    at, _ = draw(image)
    expected = read_digits(image, models, canvas=True)[0]
    assert shown(at) == {m.title: str(expected.digit(n)) for n, m in models.items()}
    for metric in at.metric:
        assert metric.delta.endswith("% sure")


def test_several_digits_show_the_sequence(draw, models, artifacts):
    gallery = load_gallery(artifacts)
    right = np.all([gallery.preds[n] == gallery.labels for n in models], axis=0)
    rows = [int(np.flatnonzero(right & (gallery.labels == d))[0]) for d in (2, 0, 2, 6)]
    image = h.digits_on_canvas([gallery.images[r] for r in rows])
    expected = read_digits(image, models, canvas=True)
    assert len(expected) == 4, "mnist_core should split four separated digits"
    at, _ = draw(image)
    sequences = {m.title: "".join(str(r.digit(n)) for r in expected) for n, m in models.items()}
    assert shown(at) == sequences
    assert any(s.value == "4 digits" for s in at.subheader)
    shown_bars = bars(at)                          # one row per digit, all models in each
    assert len(shown_bars) == 4
    for digit_bars, reading in zip(shown_bars, expected):
        assert {t: b["top"] for t, b in digit_bars.items()} == {
            m.title: reading.digit(n) for n, m in models.items()}


def test_test_digit_button_shows_a_gallery_digit_with_its_label(draw, artifacts, models):
    at, _ = draw(None)
    at.button(key="test_digit").click().run()
    assert not at.exception
    gallery = load_gallery(artifacts)
    row = at.session_state[TEST_ROW_KEY]
    assert gallery.sample[row], "the button picks from the random sample"
    label = int(gallery.labels[row])
    assert any(f"true label {label}" in s.value for s in at.subheader)
    # Read as every page reads a digit: its test-time views averaged (the gallery's
    # answers are one view each).
    probs = read_input(to_float(gallery.images[row]), models)
    said = {m.title: str(int(probs[n].argmax())) for n, m in models.items()}
    assert shown(at) == said
    for metric in at.metric:
        assert ("right" in metric.delta) == (metric.value == str(label))
    (shown_bars,) = bars(at)
    assert {t: str(b["top"]) for t, b in shown_bars.items()} == said


def test_clear_gives_a_new_empty_canvas(draw):
    at, fake = draw(h.one_stroke())
    first = fake.calls[-1]["key"]
    at.button(key="test_digit").click().run()
    assert at.session_state.source == "test"
    at.button(key="clear").click().run()
    assert fake.calls[-1]["key"] != first
    assert at.session_state.source == "canvas"


def rerun_fragment(at) -> None:
    """Rerun ``at`` as the browser reruns a fragment one of whose widgets changed (a stroke
    on the canvas, the brush, a button): with the page's one fragment's id in the rerun
    request. AppTest 1.67 always reruns the whole script; its runner takes the request."""
    from functools import partial

    from streamlit.testing.v1 import local_script_runner

    (fragment_id,) = at._fragment_storage._fragments  # the Draw page has one fragment
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(local_script_runner, "RerunData",
                      partial(local_script_runner.RerunData, fragment_id_queue=[fragment_id]))
        at.run()


def test_the_drawing_board_reruns_without_the_page(draw):
    """The canvas, its buttons, the brush and the answers are one fragment: using them
    reruns it alone, and the page body (title, navigation) does not run again."""
    at, fake = draw(h.one_stroke())
    assert (at.session_state.draw_page_runs, at.session_state.draw_board_runs) == (1, 1)
    before = shown(at)
    at.slider(key="brush").set_value(30)
    rerun_fragment(at)
    assert not at.exception
    assert (at.session_state.draw_page_runs, at.session_state.draw_board_runs) == (1, 2)
    assert fake.calls[-1]["stroke_width"] == 30
    assert shown(at) == before and len(bars(at)) == 1  # the board is all still there
    assert not at.title  # the title was not sent again (this run's tree holds what it sent)
    at.button(key="test_digit").click()
    rerun_fragment(at)
    assert (at.session_state.draw_page_runs, at.session_state.draw_board_runs) == (1, 3)
    assert any("true label" in s.value for s in at.subheader)
    at.button(key="clear").click()
    rerun_fragment(at)
    assert (at.session_state.draw_page_runs, at.session_state.draw_board_runs) == (1, 4)
    assert shown(at) == before                        # the drawing is read again
    at.run()                                          # a full rerun runs both
    assert (at.session_state.draw_page_runs, at.session_state.draw_board_runs) == (2, 5)


def test_a_rerun_that_leaves_the_drawing_alone_does_not_read_it_again(draw, monkeypatch):
    """The brush, "Wrong? It was a …" and the like rerun the board with the same drawing:
    the page keeps its reading (and shows the same answers); a new drawing is read anew."""
    from mnist_core.reading import inference

    calls = []
    real = inference.read_digits
    monkeypatch.setattr(inference, "read_digits",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    at, fake = draw(h.one_stroke())
    before = shown(at)
    assert len(calls) == 1
    at.slider(key="brush").set_value(30)
    rerun_fragment(at)
    assert len(calls) == 1 and shown(at) == before and len(bars(at)) == 1
    captions = [c for image in at.image for c in image.captions]
    assert "What the models see" in captions and "5 · centred by mass" in captions
    fake.image = h.canvas_rgba([[(60, 60), (220, 60), (120, 240)]])  # a 7, drawn anew
    rerun_fragment(at)
    assert len(calls) == 2 and shown(at) != before


def test_every_widget_has_a_key(draw):
    at, _ = draw(h.one_stroke())
    widgets = [w for kind in ("button", "slider", "segmented_control", "multiselect", "toggle",
                              "file_uploader", "selectbox")
               for w in getattr(at, kind)]
    assert widgets
    assert all(w.key for w in widgets), [w for w in widgets if not w.key]
