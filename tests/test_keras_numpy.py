"""The NumPy evaluation of saved Keras models matches Keras itself."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from mnist_core import keras_models as km  # noqa: E402
from mnist_core.keras_numpy import KerasNumpyModel  # noqa: E402


def _randomise_batchnorm(model, rng):
    # Fresh BatchNorm layers are the identity; random statistics make the test meaningful.
    for layer in model.layers:
        if layer.__class__.__name__ == "BatchNormalization":
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.2, beta.shape),
                               rng.normal(0, 0.2, mean.shape), rng.uniform(0.5, 2, var.shape)])


@pytest.mark.parametrize("build", [lambda: km.build_dense(km.DenseConfig(hidden=(64, 32))),
                                   lambda: km.build_cnn(km.CNNConfig(filters=(8, 16), dense=32)),
                                   km.build_lenet5],
                         ids=["dense", "cnn", "lenet5"])
def test_numpy_forward_matches_keras(tmp_path, build):
    rng = np.random.default_rng(0)
    model = build()
    _randomise_batchnorm(model, rng)
    path = tmp_path / "m.keras"
    model.save(path)
    x = rng.random((37, 28, 28)).astype(np.float32)
    expected = model.predict(x[..., None], verbose=0)
    fast = KerasNumpyModel.load(path)
    got = fast.predict_proba(x)
    assert got.shape == (37, 10) and got.dtype == np.float32
    assert np.abs(got - expected).max() < 1e-5
    assert fast.count_params() == model.count_params()


def test_unknown_layers_are_refused_not_run(tmp_path):
    path = tmp_path / "m.keras"
    km.build_lenet5().save(path)
    with zipfile.ZipFile(path) as z:
        files = {n: z.read(n) for n in z.namelist()}
    config = json.loads(files["config.json"])
    config["config"]["layers"][1]["class_name"] = "Lambda"
    files["config.json"] = json.dumps(config).encode()
    bad = tmp_path / "bad.keras"
    with zipfile.ZipFile(bad, "w") as z:
        for n, data in files.items():
            z.writestr(n, data)
    with pytest.raises(ValueError, match="Lambda"):
        KerasNumpyModel.load(bad)


def _mixed_model():
    """Every path of the fused plan: a Winograd conv with its 2x2 pool taken on the tiles
    (valid, 28 -> 26 -> 13), an odd-sized 3x3 conv that falls back to im2col with a
    BatchNorm folded in, a Winograd conv whose output is put back together (6x6, no
    pool), each of these writing the next conv's padded input, a BatchNorm after pooling
    (not foldable), separate activation layers, average pooling, a 5x5 conv with its
    bias, and dense layers."""
    layers = keras.layers
    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(6, 3, activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(8, 3, padding="same", use_bias=False),
        layers.BatchNormalization(),
        layers.Activation("tanh"),
        layers.Conv2D(8, 5, padding="same", activation="sigmoid"),
        layers.MaxPooling2D(),
        layers.BatchNormalization(),
        layers.ReLU(),
        layers.Conv2D(12, 3, padding="same"),
        layers.Conv2D(12, 3, padding="same", activation="relu"),
        layers.AveragePooling2D(2),
        layers.Flatten(),
        layers.Dense(16, use_bias=False),
        layers.BatchNormalization(),
        layers.Activation("relu"),
        layers.Dense(10, activation="softmax"),
    ])


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    rng = np.random.default_rng(1)
    model = _mixed_model()
    _randomise_batchnorm(model, rng)
    path = tmp_path_factory.mktemp("mixed") / "m.keras"
    model.save(path)
    x = rng.random((300, 28, 28)).astype(np.float32)
    return KerasNumpyModel.load(path), x, model.predict(x[..., None], verbose=0, batch_size=300)


def test_fused_plan_matches_keras_on_every_path(mixed):
    fast, x, expected = mixed
    got = fast.predict_proba(x)
    assert got.shape == (300, 10) and got.dtype == np.float32
    assert np.abs(got - expected).max() < 1e-5


def test_batches_chunks_and_threads_give_the_same_answers(mixed, monkeypatch):
    from mnist_core import keras_numpy
    fast, x, _ = mixed
    whole = fast.predict_proba(x)
    one_by_one = np.concatenate([fast.predict_proba(x[i:i + 1]) for i in range(0, 300, 29)])
    np.testing.assert_allclose(one_by_one, whole[::29], atol=1e-6)
    monkeypatch.setattr(keras_numpy, "WORKERS", 2)
    np.testing.assert_allclose(fast.predict_proba(x, batch_size=7), whole, atol=1e-6)
    assert fast.predict_proba(x[:0]).shape == (0, 10)


def test_layer_by_layer_forward_matches_the_fused_plan(mixed):
    from mnist_core.keras_numpy import apply_layer
    fast, x, _ = mixed
    h = x[:20, ..., None]
    for layer in fast.layers:
        h = apply_layer(h, layer)
    np.testing.assert_allclose(h, fast.predict_proba(x[:20]), atol=1e-6)


def test_unsupported_conv_settings_are_refused_at_load(tmp_path):
    model = keras.Sequential([keras.Input(shape=(28, 28, 1)),
                              keras.layers.Conv2D(4, 3, dilation_rate=2),
                              keras.layers.Flatten(), keras.layers.Dense(10)])
    path = tmp_path / "dilated.keras"
    model.save(path)
    with pytest.raises(ValueError, match="undilated"):
        KerasNumpyModel.load(path)


def test_padding_buffers_of_different_kernels_stay_apart(tmp_path):
    # A 3x3 "same" conv on 14x14 and a 5x5 one on 12x12 both pad to 16x16 (one channel):
    # each keeps its own zero border, whatever ran before it in the thread.
    layers = keras.layers
    model = keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.MaxPooling2D(),                          # 14x14x1
        layers.Conv2D(1, 3, padding="same"),            # pads to 16x16x1
        layers.Conv2D(1, 3, activation="tanh"),         # 12x12x1
        layers.Conv2D(1, 5, padding="same"),            # pads to 16x16x1
        layers.Flatten(),
        layers.Dense(10, activation="softmax"),
    ])
    path = tmp_path / "pads.keras"
    model.save(path)
    x = np.random.default_rng(2).random((9, 28, 28)).astype(np.float32)
    fast = KerasNumpyModel.load(path)
    for _ in range(2):  # the second pass reuses the first one's buffers
        got = fast.predict_proba(x)
    assert np.abs(got - model.predict(x[..., None], verbose=0)).max() < 1e-5
