"""Test-time views: which views a digit gets, and how their probabilities are averaged."""

from __future__ import annotations

import cv2
import numpy as np

from mnist_core.preprocess import normalise_crop
from mnist_core.models.views import (DEFAULT_VIEWS, NO_VIEWS, ViewConfig, named_views, narrowed,
                              predict_views, views)


def _digit(strokes: list[tuple[tuple[int, int], tuple[int, int]]]) -> np.ndarray:
    """An MNIST-like 28x28 digit drawn from straight strokes at 4x, then normalised."""
    big = np.zeros((112, 112), np.float32)
    for p0, p1 in strokes:
        cv2.line(big, (p0[0] * 4, p0[1] * 4), (p1[0] * 4, p1[1] * 4), 1.0, 9, cv2.LINE_AA)
    rows, cols = np.nonzero(big > 0.25)
    return normalise_crop(big[rows.min():rows.max() + 1, cols.min():cols.max() + 1])[2]


def _box(img: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(img > 0.3)
    return rows.min(), rows.max(), cols.min(), cols.max()


ONE = _digit([((14, 4), (14, 24))])
NINE = _digit([((10, 4), (18, 4)), ((18, 4), (18, 12)), ((18, 12), (10, 12)), ((10, 12), (10, 4)),
               ((18, 12), (18, 24))])
WIDE = _digit([((4, 10), (24, 16))])  # a bar lying down: wider than tall


def test_first_view_is_the_input_and_tall_digits_are_not_narrowed():
    v = views(ONE)
    assert v.dtype == np.float32 and v.shape == (5, 28, 28)
    np.testing.assert_array_equal(v[0], ONE)
    assert narrowed(ONE, 0.5) is None


def test_square_digits_are_also_read_narrowed_in_every_way():
    named = named_views(WIDE)
    assert len(named) == 10
    captions = [c for c, _ in named]
    assert captions[:5] == ["as is", "↺ 8°", "↻ 8°", "×0.9", "×1.1"]
    assert captions[5:] == ["0.5 wide", "0.5 wide ↺ 8°", "0.5 wide ↻ 8°", "0.5 wide ×0.9",
                            "0.5 wide ×1.1"]
    thin = named[5][1]
    np.testing.assert_array_equal(thin, narrowed(WIDE, 0.5))
    t, b, l, r = _box(thin)
    t0, b0, l0, r0 = _box(WIDE)
    # Half as wide relative to its height, then re-fitted into the 20x20 box.
    assert (r - l + 1) / (b - t + 1) < 0.6 * (r0 - l0 + 1) / (b0 - t0 + 1)


def test_turned_and_scaled_views_move_the_ink_as_named():
    v = views(NINE, ViewConfig(rotate_deg=0.0, scales=(0.8, 1.2), squeeze=0.0))
    heights = [(_box(img)[1] - _box(img)[0]) for img in v]
    assert heights[1] < heights[0] < heights[2]
    assert views(NINE, NO_VIEWS).shape == (1, 28, 28)


class _Probe:
    """A model whose answer is the mean brightness of the image, on class 0, so averages
    can be checked exactly."""

    def __init__(self, views=NO_VIEWS):
        self.views = views

    def predict_proba(self, x):
        x = np.asarray(x, np.float32)
        p = np.zeros((len(x), 10), np.float32)
        p[:, 0] = x.reshape(len(x), -1).mean(1)
        p[:, 1] = 1 - p[:, 0]
        return p


def test_predict_views_averages_each_inputs_own_views():
    x = np.stack([ONE, WIDE, NINE])  # 5, 10 and 5 views: the grouping must not drift
    got = predict_views({"probe": _Probe()}, x, DEFAULT_VIEWS)["probe"]
    assert got.shape == (3, 10)
    for i, img in enumerate(x):
        want = views(img, DEFAULT_VIEWS).reshape(-1, 784).mean(1).mean()
        assert abs(got[i, 0] - want) < 1e-6
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-6)


def test_each_model_reads_its_own_views_unless_told_otherwise():
    x = np.stack([WIDE, NINE])
    got = predict_views({"once": _Probe(NO_VIEWS), "views": _Probe(DEFAULT_VIEWS)}, x)
    np.testing.assert_allclose(got["once"][:, 0], x.reshape(2, -1).mean(1), atol=1e-6)
    np.testing.assert_allclose(got["views"], predict_views({"p": _Probe()}, x, DEFAULT_VIEWS)["p"])
    assert not np.allclose(got["once"], got["views"])
