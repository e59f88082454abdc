"""The fast path's kernels (mnist_core.keras_numpy) against plain direct convolution, on
random data: Winograd from parity planes, planes handed from one conv to the next, pooled
im2col, odd sizes and batch remainders. No Keras needed (tests/test_keras_numpy.py
checks the whole plan against Keras)."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_core import keras_numpy as kn
from mnist_core.keras_numpy import KerasNumpyModel, Layer, apply_layer


def _direct(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Stride-1 "valid" correlation in float64, one kernel tap at a time."""
    kh, kw = kernel.shape[:2]
    n, h, w = x.shape[0], x.shape[1] - kh + 1, x.shape[2] - kw + 1
    out = np.zeros((n, h, w, kernel.shape[3]))
    for i in range(kh):
        for j in range(kw):
            out += x[:, i:i + h, j:j + w].astype(np.float64) @ kernel[i, j].astype(np.float64)
    return out


def _pool(x: np.ndarray, ph: int, pw: int) -> np.ndarray:
    n, h, w, c = x.shape
    x = x[:, :h - h % ph, :w - w % pw]
    return x.reshape(n, h // ph, ph, w // pw, pw, c).max(axis=(2, 4))


@pytest.mark.parametrize("n, h, w, cin, cout, pad", [
    (1, 14, 14, 32, 64, 1), (3, 8, 6, 5, 7, 1), (7, 10, 4, 1, 3, 0), (2, 2, 2, 3, 2, 1)])
def test_winograd_from_planes_matches_direct_convolution(n, h, w, cin, cout, pad):
    rng = np.random.default_rng(n * h + cin)
    x = rng.standard_normal((n, h, w, cin)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, cin, cout)).astype(np.float32)
    bias = rng.standard_normal(cout).astype(np.float32)
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    expected = _direct(padded, kernel) + bias
    planes = kn._planes(kn._parity_parts(x), pad)
    assert planes.shape == (2, 2, n, h // 2 + pad, w // 2 + pad, cin)
    for p in range(2):
        for q in range(2):
            np.testing.assert_array_equal(planes[p, q], padded[:, p::2, q::2])
    parts = kn._winograd_conv(planes, kn._winograd_kernel(kernel), bias)
    got = kn._interleave(parts)
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=2e-4 * np.sqrt(9 * cin))


@pytest.mark.parametrize("shape, kernel_shape, pool", [
    ((3, 32, 32, 1), (5, 5, 1, 8), (2, 2)),     # the CNN's first conv (padded)
    ((2, 13, 11, 3), (3, 3, 3, 4), (2, 2)),     # odd output: the ragged edge is dropped
    ((4, 12, 10, 2), (5, 5, 2, 3), (3, 2)),     # non-square pooling
    ((1, 7, 7, 1), (3, 3, 1, 2), (1, 1))])
def test_pooled_im2col_matches_direct_convolution_then_pooling(shape, kernel_shape, pool):
    rng = np.random.default_rng(sum(shape))
    x = rng.random(shape).astype(np.float32)
    kernel = rng.standard_normal(kernel_shape).astype(np.float32)
    got = kn._im2col_pool_conv(x, kernel, *pool)
    expected = _pool(_direct(x, kernel), *pool)
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-4)


def _conv(rng, size, cin, cout, padding, activation="linear"):
    return Layer("Conv2D", {"padding": padding, "activation": activation},
                 [(rng.standard_normal((size, size, cin, cout)) / size / np.sqrt(cin)
                   ).astype(np.float32), rng.standard_normal(cout).astype(np.float32) * 0.1])


def _bn(rng, c):
    return Layer("BatchNormalization", {"epsilon": 1e-3},
                 [rng.uniform(0.5, 1.5, c).astype(np.float32),
                  rng.standard_normal(c).astype(np.float32) * 0.1,
                  rng.standard_normal(c).astype(np.float32) * 0.1,
                  rng.uniform(0.5, 1.5, c).astype(np.float32)])


def _dense(rng, n_in, n_out, activation):
    return Layer("Dense", {"activation": activation},
                 [(rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(np.float32),
                  rng.standard_normal(n_out).astype(np.float32) * 0.1])


def _chain_model() -> KerasNumpyModel:
    """Three 3x3 convs in a row (planes handed over twice, "same" then "valid"), a pooled
    5x5 conv and a ragged pool: every new path of the plan."""
    rng = np.random.default_rng(5)
    relu = Layer("ReLU", {}, [])
    pool = Layer("MaxPooling2D", {"pool_size": [2, 2]}, [])
    layers = [
        _conv(rng, 5, 1, 6, "same"), _bn(rng, 6), relu, pool,       # 14x14x6, pooled im2col
        _conv(rng, 3, 6, 8, "same"), _bn(rng, 8), relu,             # Winograd -> planes
        _conv(rng, 3, 8, 8, "same", "relu"),                        # planes in, planes out
        _conv(rng, 3, 8, 5, "valid"), relu,                         # planes in, 12x12x5
        _conv(rng, 3, 5, 4, "valid", "relu"),                       # 10x10x4
        Layer("MaxPooling2D", {"pool_size": [3, 3]}, []),           # 3x3x4, ragged edge
        Layer("Flatten", {}, []), _dense(rng, 36, 10, "softmax")]
    return KerasNumpyModel(layers, (28, 28, 1))


@pytest.mark.parametrize("batch_bytes, planes", [
    (kn.BATCH_BYTES, [None, 1, None, 0, None, None]),  # the 8->8 and 8->5 convs: 2 segments
    (2**30, [None, 1, 0, 0, None, None])])              # one segment
def test_plan_hands_planes_between_consecutive_winograd_convs(monkeypatch, batch_bytes, planes):
    monkeypatch.setattr(kn, "BATCH_BYTES", batch_bytes)
    model = _chain_model()
    steps = [s for seg, _ in model._segments for s in seg if isinstance(s, kn._Linear)]
    assert [s.planes_pad for s in steps] == planes


@pytest.mark.parametrize("batch_bytes", [kn.BATCH_BYTES, 40_000, 2**30])
def test_chain_matches_layer_by_layer_forward_with_batch_remainders(monkeypatch, batch_bytes):
    monkeypatch.setattr(kn, "BATCH_BYTES", batch_bytes)  # small: batches of a few images
    monkeypatch.setattr(kn, "WORKERS", 2)
    model = _chain_model()
    x = np.random.default_rng(0).random((83, 28, 28)).astype(np.float32)
    h = x[..., None]
    for layer in model.layers:
        h = apply_layer(h, layer)
    for got in (model.predict_proba(x), model.predict_proba(x, batch_size=37),
                np.concatenate([model.predict_proba(x[i:i + 1]) for i in range(len(x))])):
        assert got.shape == (83, 10) and got.dtype == np.float32
        np.testing.assert_allclose(got, h, atol=1e-5)


def test_odd_maps_fall_back_to_im2col():
    rng = np.random.default_rng(9)
    layers = [_conv(rng, 3, 1, 4, "same", "relu"),       # 13x13: odd, no whole 2x2 tiles
              _conv(rng, 3, 4, 3, "valid", "tanh"),      # 11x11
              Layer("Flatten", {}, []), _dense(rng, 363, 10, "softmax")]
    model = KerasNumpyModel(layers, (13, 13, 1))
    assert not model._segments[0][0][0].runs_winograd((1, 13, 13, 1))
    x = rng.random((9, 13, 13)).astype(np.float32)
    h = x[..., None]
    for layer in layers:
        h = apply_layer(h, layer)
    np.testing.assert_allclose(model.predict_proba(x), h, atol=1e-5)


def test_planes_written_in_place_of_the_next_convs_input():
    # Equal convs in a row read and write the same planes array; a sigmoid (not 0 at 0)
    # goes through the copy that keeps the zero border.
    rng = np.random.default_rng(11)
    layers = [_conv(rng, 3, 1, 4, "same", "relu"), _conv(rng, 3, 4, 4, "same", "relu"),
              _conv(rng, 3, 4, 4, "same", "sigmoid"), _conv(rng, 3, 4, 4, "same", "tanh"),
              _conv(rng, 3, 4, 4, "same"), Layer("Flatten", {}, []),
              _dense(rng, 256, 10, "softmax")]
    model = KerasNumpyModel(layers, (8, 8, 1))
    steps = [s for seg, _ in model._segments for s in seg if isinstance(s, kn._Linear)]
    assert [s.planes_pad for s in steps[:5]] == [1, 1, 1, 1, None]
    x = rng.random((21, 8, 8)).astype(np.float32)
    h = x[..., None]
    for layer in layers:
        h = apply_layer(h, layer)
    for _ in range(2):  # the second pass reuses the first one's buffers
        np.testing.assert_allclose(model.predict_proba(x), h, atol=1e-5)
        np.testing.assert_allclose(model.predict_proba(x[:1]), h[:1], atol=1e-5)
