"""Large batches through ONNX Runtime (mnist_core.engine.onnx_graph) give the NumPy plan's answers,
and without ONNX Runtime the NumPy plan answers them."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from mnist_core.engine import onnx_graph
from mnist_core.keras_numpy import KerasNumpyModel, Layer, apply_layer

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

SMALL = onnx_batch.OnnxConfig(min_batch=8, chunk=16)  # this file's batches are small


def _layers(rng) -> list[Layer]:
    """Every layer kind the translation handles, BatchNorm both folded into the conv before
    it and on its own (after a ReLU, where it cannot fold), with random statistics."""
    def bn(c):
        return Layer("BatchNormalization", {"epsilon": 1e-3},
                     [rng.uniform(0.5, 1.5, c), rng.normal(0, 0.2, c), rng.normal(0, 0.2, c),
                      rng.uniform(0.5, 2, c)])

    def w(*shape):
        return rng.normal(0, 0.3, shape).astype(np.float32)

    return [
        Layer("Conv2D", {"padding": "same", "activation": "linear", "use_bias": False},
              [w(5, 5, 1, 6)]),
        bn(6),
        Layer("ReLU", {}, []),
        Layer("MaxPooling2D", {"pool_size": [2, 2], "strides": [2, 2]}, []),
        Layer("Conv2D", {"padding": "same", "activation": "relu", "use_bias": True},
              [w(3, 3, 6, 8), w(8)]),
        bn(8),
        Layer("Conv2D", {"padding": "valid", "activation": "tanh", "use_bias": True},
              [w(3, 3, 8, 8), w(8)]),
        Layer("AveragePooling2D", {"pool_size": [2, 2], "strides": [2, 2]}, []),
        Layer("Flatten", {}, []),
        Layer("Dense", {"activation": "sigmoid", "use_bias": True}, [w(288, 16), w(16)]),
        Layer("Dropout", {}, []),
        Layer("Dense", {"activation": "softmax", "use_bias": True}, [w(16, 10), w(10)]),
    ]


def test_the_graph_computes_what_keras_layers_compute():
    rng = np.random.default_rng(0)
    model = KerasNumpyModel(_layers(rng), (28, 28, 1))
    x = rng.random((40, 28, 28, 1)).astype(np.float32)
    expected = x
    for layer in model.layers:  # one Keras layer at a time, no fusion
        expected = apply_layer(expected, layer)
    got = onnx_batch.predict(model, x, SMALL)
    assert got is not None and got.shape == (40, 10) and got.dtype == np.float32
    assert np.abs(got - expected).max() < 1e-5
    assert np.array_equal(got.argmax(1), np.asarray(expected).argmax(1))


def test_shipped_architectures_agree_with_the_numpy_plan(models):
    x = np.random.default_rng(1).random((64, 28, 28)).astype(np.float32)
    keras_models = {n: m for n, m in models.items() if hasattr(m, "fast")}
    assert keras_models, "the fixture artifacts hold Keras models"
    for name, m in keras_models.items():
        net = m.fast
        plan = net.predict_proba(x)  # 64 images: below the default threshold, the plan
        got = onnx_batch.predict(net, x.reshape(-1, *net.input_shape), SMALL)
        assert got is not None, name
        assert np.abs(got - plan).max() < 1e-5, name
        assert np.array_equal(got.argmax(1), plan.argmax(1)), name


def test_a_keras_model_sends_a_large_batch_to_onnx_runtime_a_small_one_not(models,
                                                                          monkeypatch):
    model = next(m for m in models.values() if hasattr(m, "fast"))
    calls = []
    real = onnx_batch.predict

    def spy(net, x, cfg=onnx_batch.DEFAULT):
        out = real(net, x, cfg)
        calls.append((len(x), out is not None))
        return out
    monkeypatch.setattr(onnx_batch, "predict", spy)
    rng = np.random.default_rng(2)
    small = model.predict_proba(rng.random((3, 28, 28)).astype(np.float32))
    big_x = rng.random((onnx_batch.DEFAULT.min_batch, 28, 28)).astype(np.float32)
    big = model.predict_proba(big_x)
    assert calls == [(3, False), (len(big_x), True)]
    assert small.shape == (3, 10) and big.shape == (len(big_x), 10)
    monkeypatch.setenv(onnx_batch.ENGINE_ENV, "numpy")  # the switch benchmarks use
    plan = model.predict_proba(big_x)
    assert calls[-1] == (len(big_x), False)
    assert np.abs(plan - big).max() < 1e-5
    assert np.allclose(plan.sum(1), 1, atol=1e-5)  # tempered probabilities, either way


def test_without_onnx_runtime_the_numpy_plan_answers(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails, as if not installed
    rng = np.random.default_rng(3)
    model = KerasNumpyModel(_layers(rng), (28, 28, 1))
    x = rng.random((SMALL.min_batch, 28, 28, 1)).astype(np.float32)
    assert onnx_batch.predict(model, x, SMALL) is None
    assert model._onnx_session is False  # tried once, not on every call
    assert onnx_batch.predict_proba(model, x, SMALL).shape == (len(x), 10)


def test_a_run_that_fails_leaves_the_batch_to_the_numpy_plan():
    rng = np.random.default_rng(4)
    model = KerasNumpyModel(_layers(rng), (28, 28, 1))
    x = rng.random((SMALL.min_batch, 28, 28, 1)).astype(np.float32)
    assert onnx_batch.predict(model, x, SMALL) is not None

    class Broken:
        def run(self, *args):
            raise RuntimeError("bad allocation")
    model._onnx_session = Broken()
    assert onnx_batch.predict(model, x, SMALL) is None
    assert model._onnx_session is False
    got = onnx_batch.predict_proba(model, x, SMALL)
    assert np.abs(got - model.predict_proba(x)).max() == 0  # the plan's own answer


def test_a_kaggle_file_is_predicted_in_a_worker_as_it_would_be_in_process(models):
    from mnist_core import kaggle, package

    model = next(m for m in models.values() if hasattr(m, "fast"))
    images = (np.random.default_rng(5).random((onnx_batch.DEFAULT.min_batch + 76, 28, 28))
              * 255).astype(np.uint8)
    seen: list[float] = []
    got = package.submission_in_worker(model, images, progress=seen.append)
    assert got == kaggle.submission_csv(model.predict_proba, images)
    assert seen and seen[-1] == 1.0
