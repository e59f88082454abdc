"""Scanned paper in training (issue 22): each effect of :mod:`mnist_core.training.augment`'s
scanned-paper section does what its name says, and the chain, the MNIST pass and the
writers' scanned renderings give model inputs."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_core.preprocess import preprocess
from mnist_core.preprocess.geometry import stroke_width
from mnist_core.training import augment as a


def _ring(side: int = 100, radius: int = 30, width: int = 9) -> np.ndarray:
    """A 0: a ring of ``width`` px, ``2 * radius`` px tall, white on black."""
    yy, xx = np.mgrid[0:side, 0:side]
    r = np.hypot(yy - side / 2, xx - side / 2)
    return (np.abs(r - radius) < width / 2).astype(np.float32)


def _bar(h: int = 80, w: int = 10, side: int = 100) -> np.ndarray:
    """A 1: an upright bar ``h`` x ``w`` in a ``side`` square."""
    img = np.zeros((side, side), np.float32)
    y, x = (side - h) // 2, (side - w) // 2
    img[y:y + h, x:x + w] = 1
    return img


def _box(img: np.ndarray, level: float = 0.5) -> tuple[int, int]:
    """Height and width of the ink above ``level``."""
    rows, cols = np.nonzero(img > level)
    return int(np.ptp(rows) + 1), int(np.ptp(cols) + 1)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_stroke_thickness_widens_or_narrows_strokes_and_never_erases_the_digit():
    ring = _ring()
    before = stroke_width(ring)
    thick = a.stroke_thickness(ring, rng(), a.ThicknessConfig(thick_p=1.0))
    thin = a.stroke_thickness(ring, rng(), a.ThicknessConfig(thick_p=0.0))
    assert stroke_width(thick) > before + 2 and stroke_width(thin) < before - 2
    assert thick.shape == ring.shape and thick.dtype == np.float32
    # A hairline that a finer pen would erase is left as it is.
    hair = _ring(width=2)
    kept = a.stroke_thickness(hair, rng(), a.ThicknessConfig(thick_p=0.0, radius=(0.05, 0.05)))
    assert np.array_equal(kept, hair)


def test_pen_pressure_only_lightens_and_pencil_is_greyer_and_grainy():
    ring = _ring()
    pen = a.pen_pressure(ring, rng(), a.PressureConfig(pencil_p=0.0, variation=0.0))
    assert (pen <= ring + 1e-6).all() and (pen[ring == 0] == 0).all()
    level = pen[ring == 1]
    assert np.ptp(level) < 1e-6 and 0.75 <= level[0] <= 1.0    # one pen level, no field
    pencil = a.pen_pressure(ring, rng(), a.PressureConfig(pencil_p=1.0, variation=0.0))
    inked = pencil[ring == 1]
    assert inked.mean() < 0.75 and inked.std() > 0.05           # grey, grainy
    varied = a.pen_pressure(ring, rng(), a.PressureConfig(pencil_p=0.0, variation=0.5))
    assert np.ptp(varied[ring == 1]) > 0.2                      # pressure changes along it


def test_ink_bleed_spreads_ink_and_fills_small_loops():
    ring = _ring(radius=8, width=8)                             # a 0 with a 8-px hole
    hole = ring[48:53, 48:53]
    assert hole.max() == 0
    bled = a.ink_bleed(ring, rng(), a.BleedConfig(blur=(0.15, 0.15), gain=(2.0, 2.0)))
    assert (bled > 0.5).sum() > (ring > 0.5).sum()
    assert bled[48:53, 48:53].min() > 0.5                       # the loop filled in
    soft = a.ink_bleed(ring, rng(), a.BleedConfig(blur=(0.05, 0.05), gain=(1.0, 1.0)))
    assert soft.sum() == pytest.approx(ring.sum(), rel=0.02)    # gain 1 only blurs


def test_resample_dpi_gives_the_digit_the_pixels_its_size_and_dpi_give():
    bar = _bar(h=80)
    cfg = a.ResampleConfig(dpi=(200, 200), height_mm=(5.0, 5.0))
    low = a.resample_dpi(bar, rng(), cfg)
    expected = 5.0 / 25.4 * 200                                  # 39.4 pixels
    assert abs(_box(low, 0.2)[0] - expected) <= 1.5
    assert low.dtype == np.float32 and 0 <= low.min() and low.max() <= 1
    # Never enlarged: a digit already coarser than the scan stays as it is.
    small = _bar(h=20, w=4, side=30)
    assert a.resample_dpi(small, rng(), cfg).shape == small.shape


def test_scan_levels_binarise_or_keep_grey():
    ramp = np.tile(np.linspace(0, 1, 50, dtype=np.float32), (10, 1))
    binary = a.scan_levels(ramp, rng(), a.LevelsConfig(binary_p=1.0))
    assert set(np.unique(binary).tolist()) == {0.0, 1.0}
    grey = a.scan_levels(ramp, rng(), a.LevelsConfig(binary_p=0.0))
    assert len(np.unique(grey)) > 40 and (np.diff(grey[0]) >= 0).all()
    assert grey[0, 0] == 0 and grey[0, -1] == 1
    # A faint pencil digit is not wiped out: the threshold follows the ink's own level.
    faint = _ring() * 0.3
    assert (a.scan_levels(faint, rng(), a.LevelsConfig(binary_p=1.0)) > 0).sum() > 0.8 * (faint > 0).sum()


def test_form_box_stretches_to_fill_or_keeps_the_aspect():
    bar = _bar(h=80, w=20)
    full = a.form_box(bar, rng(), a.BoxConfig(stretch_p=1.0, side=(16, 16), margin=(0, 0), cut_p=0))
    assert full.shape == (16, 16) and _box(full) == (16, 16)    # a 1 made square
    kept = a.form_box(bar, rng(), a.BoxConfig(stretch_p=0.0, side=(16, 16), margin=(0, 0), cut_p=0))
    h, w = _box(kept)
    assert h == 16 and 3 <= w <= 5                               # still 4:1
    cut = a.form_box(_ring(), rng(), a.BoxConfig(stretch_p=0.0, side=(32, 32), margin=(0, 0),
                                                  cut_p=1.0, cut=(0.2, 0.2)))
    whole = a.form_box(_ring(), rng(), a.BoxConfig(stretch_p=0.0, side=(32, 32), margin=(0, 0), cut_p=0))
    assert not np.allclose(cut, whole)
    assert not a.form_box(np.zeros((50, 50), np.float32), rng()).any()


def test_scan_chain_is_seeded_and_keeps_a_digit():
    ring = _ring(side=100, radius=40)
    one = a.scan(ring, rng(3))
    assert one.shape == (64, 64) and one.dtype == np.float32
    assert 0 <= one.min() and one.max() <= 1 and (one > 0.5).sum() > 20
    assert np.array_equal(one, a.scan(ring, rng(3)))
    assert not np.array_equal(one, a.scan(ring, rng(4)))


def test_scanned_digits_turns_the_share_asked_into_mnist_style_inputs():
    x = np.zeros((40, 28, 28), np.float32)
    x[:, 4:24, 12:16] = 1                                        # forty 1s
    assert np.array_equal(a.scanned_digits(x, rng(), 0.0), x)
    out = a.scanned_digits(x, rng(), 1.0)
    assert out.shape == x.shape and out.dtype == np.float32
    assert 0 <= out.min() and out.max() <= 1
    changed = ~np.all(np.isclose(out, x), axis=(1, 2))
    assert changed.all()
    for img in out:                                              # MNIST's frame
        rows, cols = np.nonzero(img > 0.1)
        assert max(np.ptp(rows), np.ptp(cols)) + 1 <= 21
        cy, cx = (np.indices(img.shape) * img).sum((1, 2)) / img.sum()
        assert abs(cy - 14) <= 1.5 and abs(cx - 14) <= 1.5
    half = a.scanned_digits(x, rng(1), 0.5)
    n = (~np.all(np.isclose(half, x), axis=(1, 2))).sum()
    assert 10 <= n <= 30
    assert np.array_equal(a.scanned_digits(x, rng(1), 0.5), half)


def test_render_scan_gives_what_the_app_reads_as_a_digit():
    strokes = [np.array([[0, 0], [80, 0], [30, 200]], np.float32)]   # a 7
    img = a.render_scan(strokes, rng())
    assert img.shape == (64, 64) and img.dtype == np.uint8 and img.max() > 128
    final = preprocess(img).final
    assert final.shape == (28, 28) and final.max() == pytest.approx(1.0)
