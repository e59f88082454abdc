"""Not a digit: noise, blots and dots are flagged, real digits are not (MNIST test and
real handwriting drawn on the canvas, read by the shipped models), and Draw says so."""

from __future__ import annotations

import sys
import types

import cv2
import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import app_helpers as h
from conftest import SHIPPED_ARTIFACTS
from mnist_core.reading import novelty
from mnist_core.artifacts.files import load_models
from mnist_core.datasets.data import load_dataset, to_float
from mnist_core.reading.inference import read_input
from mnist_core.preprocess import preprocess


@pytest.fixture(scope="module")
def shipped():
    return load_models(SHIPPED_ARTIFACTS)


def flags(models, finals: np.ndarray) -> np.ndarray:
    probs = read_input(finals, models)
    return np.array([novelty.check({k: v[i] for k, v in probs.items()}, finals[i]).flagged
                     for i in range(len(finals))])


def test_half_width_tells_a_stroke_from_a_blot():
    line = np.zeros((28, 28), np.float32)
    cv2.line(line, (14, 4), (14, 23), 1.0, 2)
    disc = np.zeros((28, 28), np.float32)
    cv2.circle(disc, (14, 14), 9, 1.0, -1)
    assert novelty.half_width(line) < 2.5 < novelty.DEFAULT.max_half_width
    assert novelty.half_width(disc) > novelty.DEFAULT.max_half_width
    assert novelty.half_width(np.zeros((28, 28), np.float32)) == 0.0


def test_doubt_needs_both_low_confidence_and_disagreement():
    sure = {"a": np.eye(10)[3], "b": np.eye(10)[3]}
    split = {"a": np.full(10, 0.1) + 0.3 * np.eye(10)[3], "b": np.full(10, 0.1) + 0.3 * np.eye(10)[5]}
    assert not novelty.check(sure).flagged
    verdict = novelty.check(split)
    assert verdict.flagged and verdict.agreement == 0.5 and verdict.ink is None
    unsure_but_agreeing = {"a": split["a"], "b": split["a"]}
    assert not novelty.check(unsure_but_agreeing).flagged


def test_pure_noise_is_flagged(shipped):
    rng = np.random.default_rng(0)
    direct = rng.random((20, 28, 28)).astype(np.float32)       # noise as the model input
    assert flags(shipped, direct).all()
    photos = novelty.non_digits(20, seed=3, kinds=("noise",))  # noise photographed, uploaded
    finals = np.stack([preprocess(img, canvas=c).final for _, img, c in photos])
    assert flags(shipped, finals).mean() >= 0.8


def test_a_dot_on_a_blank_canvas_is_flagged(shipped):
    dots = novelty.non_digits(10, seed=3, kinds=("dot",))
    finals = np.stack([preprocess(img, canvas=c).final for _, img, c in dots])
    assert flags(shipped, finals).all()


def test_real_mnist_digits_are_not_flagged(shipped, mnist_dir):
    data = load_dataset(mnist_dir)
    x = to_float(data.x_test[:2000])
    assert flags(shipped, x).mean() < 0.005


def test_real_handwriting_on_the_canvas_is_not_flagged(shipped):
    from mnist_core.datasets.handwriting import DEFAULT_DIR, load_strokes, render_canvas

    path = DEFAULT_DIR / "chars74k_digits_strokes.jsonl"
    if not path.is_file():
        pytest.skip(f"handwriting dev set not found at {DEFAULT_DIR}")
    rng = np.random.default_rng(5)
    strokes = load_strokes(path)[::3]
    finals = np.stack([preprocess(render_canvas(s, rng), canvas=True).final for _, s in strokes])
    assert flags(shipped, finals).mean() < 0.01


@pytest.fixture
def draw(monkeypatch, artifacts):
    from test_app_draw import FakeCanvas

    monkeypatch.setenv("MNIST_STUDIO_ARTIFACTS", str(artifacts))

    def run(image):
        module = types.ModuleType("streamlit_drawable_canvas")
        module.st_canvas = FakeCanvas(image)
        monkeypatch.setitem(sys.modules, "streamlit_drawable_canvas", module)
        at = AppTest.from_file(str(h.REPO / "app.py"), default_timeout=180).run()
        assert not at.exception, [e.message for e in at.exception]
        return at
    return run


def test_draw_says_a_dot_does_not_look_like_a_digit(draw):
    dot = np.zeros((280, 280, 4), np.uint8)
    cv2.circle(dot, (140, 140), 10, (255, 255, 255, 255), -1, cv2.LINE_AA)
    at = draw(dot)
    assert any("does not look like a digit" in w.value for w in at.warning)
    assert at.metric and all(m.value == "?" and m.delta.startswith("guess ") for m in at.metric)
    assert not at.success   # no "all models read ..."


def test_draw_reads_a_stroke_as_a_digit(draw):
    at = draw(h.one_stroke())
    assert not any("does not look like a digit" in w.value for w in at.warning)
    assert all(m.value != "?" for m in at.metric)
