"""The shared UI pieces on their own: the prediction panel's wording and the chart builders."""

from __future__ import annotations

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import app_helpers as h
from ui.charts import CONFUSION_MODES, confusion_figure, curves_figure, probability_bars


def one_hot(digit: int, p: float = 0.9) -> np.ndarray:
    out = np.full(10, (1 - p) / 9, np.float32)
    out[digit] = p
    return out


def panel_app(answers: dict, true_label=None, reasons=()):
    """Render ``prediction_panel`` for fake models that answer ``answers`` (name -> digit);
    ``reasons``: the reading's not-a-digit verdict says these."""
    import types
    from dataclasses import replace

    import numpy as np

    from mnist_core.reading.inference import Reading
    from mnist_core.reading.novelty import check
    from ui.components import prediction_panel

    titles = {"numpy": "NumPy MLP", "cnn": "Keras CNN", "lenet5": "LeNet-5"}
    models = {n: types.SimpleNamespace(title=titles[n]) for n in answers}
    probs = {}
    for n, d in answers.items():
        p = np.full(10, 0.1 / 9, np.float32)
        p[d] = 0.9
        probs[n] = p
    verdict = replace(check(probs), reasons=tuple(reasons)) if reasons else check(probs)
    reading = Reading(np.zeros((28, 28), np.float32), probs, verdict=verdict)
    prediction_panel(reading, models, [str(d) for d in range(10)], key="t",
                     true_label=true_label)


def run_panel(answers, true_label=None, reasons=()) -> AppTest:
    at = AppTest.from_function(panel_app, kwargs={"answers": answers, "true_label": true_label,
                                                  "reasons": reasons})
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_panel_says_when_all_models_agree():
    at = run_panel({"numpy": 7, "cnn": 7, "lenet5": 7})
    assert [m.value for m in at.metric] == ["7", "7", "7"]
    assert any("All 3 models read **7**" in s.value for s in at.success)
    assert not at.warning
    (bars,) = h.probability_bars(at)
    assert {t: (b["top"], b["label"]) for t, b in bars.items()} == {
        "NumPy MLP": (7, "90%"), "Keras CNN": (7, "90%"), "LeNet-5": (7, "90%")}


def test_panel_says_who_said_what_when_models_disagree():
    at = run_panel({"numpy": 7, "cnn": 1, "lenet5": 7})
    assert not at.success
    (warning,) = at.warning
    assert "disagree" in warning.value
    assert "**7**: NumPy MLP, LeNet-5" in warning.value and "**1**: Keras CNN" in warning.value


def test_panel_shows_the_readings_verdict_and_answers_as_guesses():
    """The panel only shows the not-a-digit verdict the reading carries."""
    at = run_panel({"numpy": 7, "cnn": 7}, reasons=("a solid patch, not pen strokes",))
    (warning,) = at.warning
    assert "does not look like a digit" in warning.value and "a solid patch" in warning.value
    assert [m.value for m in at.metric] == ["?", "?"]
    assert all(m.delta.startswith("guess 7") for m in at.metric)
    assert not at.success                        # no "all read 7" for a non-digit


def test_panel_marks_right_and_wrong_against_the_true_label():
    at = run_panel({"numpy": 7, "cnn": 1}, true_label=7)
    deltas = {m.label: m.delta for m in at.metric}
    assert deltas["NumPy MLP"].endswith("right") and deltas["Keras CNN"].endswith("wrong")


def test_probability_bars_one_panel_per_model_on_one_scale():
    probs = {"numpy": one_hot(3), "dense": one_hot(3, 0.5), "cnn": one_hot(8), "lenet5": one_hot(3)}
    body = probability_bars(probs, {n: n.upper() for n in probs}, [str(d) for d in range(10)])

    class Shown:  # what h.probability_bars reads from an AppTest: its st.html bodies
        @staticmethod
        def get(kind):
            return [type("E", (), {"proto": type("P", (), {"body": body})})()]
    (bars,) = h.probability_bars(Shown)
    assert list(bars) == ["NUMPY", "DENSE", "CNN", "LENET5"]     # side by side, in order
    for title, name in zip(bars, probs):                          # one 0-1 scale for all
        assert np.allclose(bars[title]["heights"], probs[name], atol=6e-4)
    # Only each model's answer is coloured and labelled with its percentage.
    assert [(b["top"], b["label"]) for b in bars.values()] == [(3, "90%"), (3, "50%"),
                                                               (8, "90%"), (3, "90%")]
    assert body.count("background:#") == 4 and "#4f46e5" in body  # the CNN's colour


def test_probability_bars_escape_titles_and_label_the_edges():
    body = probability_bars({"x": one_hot(0), "y": one_hot(9)}, {"x": "<b>&", "y": "Y"},
                            [str(d) for d in range(10)])
    assert "<b>&" not in body and "&lt;b&gt;&amp;" in body
    # The first and last bars' labels are slid inside the panel, not centred over the edge.
    assert "left:5%;transform:translateX(-5%)" in body
    assert "left:95%;transform:translateX(-95%)" in body


@pytest.mark.parametrize("mode", CONFUSION_MODES)
def test_confusion_figure_modes(mode):
    cm = np.diag([980, 1130, 1020, 1000, 970, 880, 950, 1010, 960, 1000])
    cm[4, 9] = 12
    fig = confusion_figure(cm, [str(d) for d in range(10)], mode)
    heat = fig.data[0]
    text = np.asarray(heat.text)
    if mode == "Counts":
        assert text[4, 9] == "12" and text[0, 0] == "980"
    elif mode == "Row %":
        assert text[0, 0] == "100.0%" and text[4, 9] == f"{12 / 982:.1%}"
    else:
        assert text[0, 0] == "" and text[4, 9] == "12"
    z = np.asarray(heat.z)
    assert z.min() >= 0 and z.max() <= 1
    assert fig.layout.yaxis.autorange == "reversed"  # row 0 at the top, like the table


def test_curves_figure_train_dashed_validation_solid():
    history = [{"epoch": e, "loss": 1 / e, "accuracy": 1 - 0.1 / e, "val_loss": 1.2 / e,
                "val_accuracy": 1 - 0.12 / e} for e in range(1, 6)]
    fig = curves_figure({"numpy": history, "cnn": history[:3]}, {"numpy": "A", "cnn": "B"})
    lines = [t for t in fig.data if t.x and t.x[0] is not None]
    assert len(lines) == 8  # 2 models x (loss, accuracy) x (train, validation)
    dashes = {(t.name, t.yaxis, t.line.dash) for t in lines}
    assert ("A", "y", "dash") in dashes and ("A", "y", "solid") in dashes
    assert ("B", "y2", "dash") in dashes and ("B", "y2", "solid") in dashes


@pytest.mark.parametrize("shape", [(28, 28), (30, 40, 3), (20, 20, 4)])
def test_png_url_is_the_picture_and_encoded_once(shape):
    import base64
    import io

    from PIL import Image

    from ui import pictures

    img = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    url = pictures.png_url(img)
    head, data = url.split(",", 1)
    assert head == "data:image/png;base64"
    shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(data))))
    assert np.array_equal(shown, img)                       # lossless
    assert pictures.png_url(img.copy()) is url              # the same picture: not again
    other = img.copy()
    other[0, 0] ^= 1
    assert pictures.png_url(other) != url                   # one pixel off: its own PNG
    assert pictures.png_url(img.reshape(shape[0] // 2, shape[1] * 2, *shape[2:])) != url
