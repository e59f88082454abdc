"""Reading several digits with the shipped models: where shape alone cannot tell one wide
digit from two touching ones, the models' confidence decides (``read_digits``)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from mnist_core import preprocess as P
from mnist_core.artifacts import DEFAULT_DIR, load_models
from mnist_core.inference import read_digits


@pytest.fixture(scope="module")
def models():
    if not (DEFAULT_DIR / "manifest.json").is_file():
        pytest.fail(f"no shipped artifacts in {DEFAULT_DIR}; run `python -m mnist_core train`")
    return load_models(DEFAULT_DIR)


def canvas(draw) -> np.ndarray:
    """A 280x280 RGBA canvas as streamlit-drawable-canvas returns it, ``draw(alpha)``."""
    alpha = np.zeros((280, 280), np.uint8)
    draw(alpha)
    img = np.zeros((280, 280, 4), np.uint8)
    img[..., :3] = np.where(alpha[..., None] > 0, 255, 0)
    img[..., 3] = alpha
    return img


def two_touching_zeros(a):
    # A thick brush: the rims meet. 1.4x as wide as tall, too narrow for shape alone to cut.
    cv2.ellipse(a, (95, 140), (40, 60), 0, 0, 360, 255, 22)
    cv2.ellipse(a, (192, 140), (40, 60), 0, 0, 360, 255, 22)


def wide_two(a):
    # As wide as the two 0s, with a long base stroke: one digit.
    pts = np.array([[60, 90], [100, 60], [150, 70], [160, 110], [70, 200], [250, 200]], np.int32)
    cv2.polylines(a, [pts], False, 255, 20)


def test_two_touching_zeros_are_read_as_two(models):
    img = canvas(two_touching_zeros)
    assert len(P.segment(img)) == 1                      # shape alone keeps them whole
    readings = read_digits(img, models)
    assert len(readings) == 2
    assert readings[0].stages.box[0] < readings[1].stages.box[0]
    for r in readings:
        assert r.digit("cnn") == 0
        x, _, w, _ = r.stages.box                         # each is one 0, not a cut half
        assert 85 <= w <= 115


def flat_zero(a):
    cv2.ellipse(a, (140, 140), (100, 50), 0, 0, 360, 255, 22)      # twice as wide as tall


def long_seven(a):
    cv2.polylines(a, [np.array([[28, 84], [252, 84], [140, 210]], np.int32)], False, 255, 22)


@pytest.mark.parametrize("draw,digit", [(wide_two, 2), (flat_zero, 0), (long_seven, 7)])
def test_a_wide_digit_stays_one_digit(models, draw, digit):
    # Wide enough that shape alone would cut the 0 and the 7 in two.
    img = canvas(draw)
    readings = read_digits(img, models)
    assert [r.digit("cnn") for r in readings] == [digit]
    if draw is not wide_two:
        assert len(P.segment(img)) == 2


def test_the_judge_is_not_asked_about_narrow_digits():
    asked = []

    def judge(x):
        asked.append(len(x))
        return np.full((len(x), 10), 0.1, np.float32)

    img = np.zeros((280, 280), np.uint8)
    cv2.line(img, (140, 40), (140, 240), 255, 20)
    assert len(P.segment(img, judge=judge)) == 1 and asked == []
    # A wide blob is put to it: whole, and cut into 2 and 3 in every way.
    assert len(P.segment(canvas(wide_two)[..., 3], judge=judge)) == 1
    assert asked == [1 + len(P.CUTS) * (2 + 3)]


def two_hundred(a):
    # As drawn in the browser with the default 22 px brush: a 2, then two 0s whose rims
    # touch. The column with the least ink lies inside a 0; the waist between them does not.
    def ellipse(cx, cy, rx, ry, n=24):
        return [(cx + rx * math.sin(2 * math.pi * k / n), cy - ry * math.cos(2 * math.pi * k / n))
                for k in range(n + 1)]
    strokes = [[(0.08, 0.38), (0.16, 0.3), (0.26, 0.36), (0.24, 0.48), (0.08, 0.68), (0.3, 0.68)],
               ellipse(0.45, 0.5, 0.1, 0.18), ellipse(0.7, 0.5, 0.1, 0.18)]
    for s in strokes:
        pts = np.array([(x * 280, y * 280) for x, y in s], np.int32)
        cv2.polylines(a, [pts], False, 255, 22, cv2.LINE_AA)


def test_a_row_with_touching_round_digits_is_read_digit_by_digit(models):
    readings = read_digits(canvas(two_hundred), models)
    for name in models:
        assert "".join(str(r.digit(name)) for r in readings) == "200", name
