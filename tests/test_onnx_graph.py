"""Large batches through ONNX Runtime (mnist_core.engine.onnx_graph): the graph the layers
write gives the NumPy network's answers to float32 rounding, for every shipped model and
for a network holding every layer kind; without onnx or ONNX Runtime, when either refuses,
or when the environment switch says so, NumPy answers."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from conftest import SHIPPED_ARTIFACTS

from mnist_core.artifacts.files import load_models
from mnist_core.engine import onnx_graph
from mnist_core.engine.layers import (LAYERS, Activation, AveragePooling2D, BatchNormalization,
                                      Conv2D, Dense, Dropout, Flatten, MaxPooling2D, ReLU)
from mnist_core.engine.network import Sequential
from mnist_core.models.model import KerasModel

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

SMALL = onnx_graph.OnnxConfig(min_batch=8, chunk=16)  # this file's batches are small


def every_layer_net(seed: int = 0) -> Sequential:
    """Every layer kind the graph writes: BatchNorm folded into the conv and the dense
    layer before it and on its own (after a ReLU, where it cannot fold), activation
    layers fused and not, even and odd kernels, ragged pooling; random weights and
    statistics."""
    rng = np.random.default_rng(seed)
    net = Sequential.build([
        Conv2D(6, 5, padding="same", use_bias=False), BatchNormalization(), ReLU(),
        MaxPooling2D(2),                                                      # 14
        Conv2D(8, 4, padding="same", activation="relu"), BatchNormalization(),
        Conv2D(8, 3, activation="tanh"),                                      # 12
        AveragePooling2D(2),                                                  # 6
        Conv2D(5, 2), Activation("sigmoid"),                                  # 5
        MaxPooling2D(2),                                                      # 2, ragged
        Flatten(), Dense(16, "sigmoid"), Dropout(0.3),
        Dense(12, use_bias=False), BatchNormalization(), Activation("relu"),
        Dense(10, "softmax"),
    ], (28, 28, 1), "every", rng)
    for layer in net.layers:
        if layer.weights:
            layer.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32)
                               for w in layer.weights])
        if isinstance(layer, BatchNormalization):
            layer.gamma[...] = rng.uniform(0.5, 1.5, layer.gamma.shape)
            layer.moving_var[...] = rng.uniform(0.5, 2, layer.moving_var.shape)
    return net


@pytest.fixture(scope="module")
def shipped():
    return load_models(SHIPPED_ARTIFACTS)


def test_the_graph_computes_what_the_layers_compute():
    net = every_layer_net()
    assert {layer.kind for layer in net.layers} == set(LAYERS)
    x = np.random.default_rng(0).random((40, 28, 28, 1)).astype(np.float32)
    expected, _ = net.forward(x)  # one layer at a time, nothing folded
    got = onnx_graph.predict(types.SimpleNamespace(), net, x, SMALL)
    assert got is not None and got.shape == (40, 10) and got.dtype == np.float32
    assert np.abs(got - expected).max() < 1e-5
    assert np.array_equal(got.argmax(1), expected.argmax(1))
    # A graph of the unfolded network gives the same (graph_bytes folds it first).
    assert np.abs(got - net.folded().predict_proba(x)).max() < 1e-5


def test_a_network_without_a_softmax_or_flatten_first():
    """A dense network over vectors (the NumPy MLP's input) and a sigmoid head."""
    rng = np.random.default_rng(1)
    net = Sequential.build([Dense(9, "tanh"), BatchNormalization(), Dense(4, "sigmoid")],
                           (13,), "", rng)
    net.layers[1].moving_mean[...] = rng.normal(0, 0.3, 9)
    x = rng.random((20, 13)).astype(np.float32)
    got = onnx_graph.predict(types.SimpleNamespace(), net, x, SMALL)
    assert got is not None and np.abs(got - net.predict_proba(x)).max() < 1e-6


@pytest.mark.parametrize("head", ["activation", "conv"])
def test_a_softmax_over_a_maps_channels(head):
    """A softmax on a conv's output runs over its channels (the graph's maps are
    channels-first there), as NumPy's runs over the last axis."""
    rng = np.random.default_rng(2)
    soft = ([Conv2D(4, 3, padding="same"), Activation("softmax")] if head == "activation"
            else [Conv2D(4, 3, padding="same", activation="softmax")])
    net = Sequential.build([*soft, MaxPooling2D(2), Flatten(), Dense(10, "softmax")],
                           (6, 6, 1), "", rng)
    x = rng.random((16, 6, 6, 1)).astype(np.float32)
    got = onnx_graph.predict(types.SimpleNamespace(), net, x, SMALL)
    assert got is not None and np.abs(got - net.predict_proba(x)).max() < 1e-6


def test_shipped_models_agree_with_numpy(shipped):
    x = np.random.default_rng(1).random((64, 28, 28)).astype(np.float32)
    assert set(shipped) == {"numpy", "dense", "cnn", "lenet5"}
    for name, model in shipped.items():
        net = model.inference
        numpy_p = net.predict_proba(x)
        got = onnx_graph.predict(types.SimpleNamespace(), net, net.batch(x), SMALL)
        assert got is not None, name
        assert np.abs(got - numpy_p).max() < 1e-5, name
        assert np.array_equal(got.argmax(1), numpy_p.argmax(1)), name


def test_a_model_sends_a_large_batch_to_onnx_runtime_a_small_one_not(shipped, monkeypatch):
    model = shipped["lenet5"]
    monkeypatch.delattr(model, "_onnx_session", raising=False)
    calls = []
    real = onnx_graph.predict

    def spy(holder, net, x, cfg=onnx_graph.DEFAULT):
        out = real(holder, net, x, cfg)
        calls.append((len(x), out is not None))
        return out
    monkeypatch.setattr(onnx_graph, "predict", spy)
    monkeypatch.delenv(onnx_graph.ENGINE_ENV, raising=False)
    rng = np.random.default_rng(2)
    small = model.predict_proba(rng.random((3, 28, 28)).astype(np.float32))
    big_x = rng.random((onnx_graph.DEFAULT.min_batch, 28, 28)).astype(np.float32)
    big = model.predict_proba(big_x)
    assert calls == [(3, False), (len(big_x), True)]
    assert small.shape == (3, 10) and big.shape == (len(big_x), 10)
    monkeypatch.setenv(onnx_graph.ENGINE_ENV, "numpy")  # the switch benchmarks use
    numpy_p = model.predict_proba(big_x)
    assert calls[-1] == (len(big_x), False)
    assert np.abs(numpy_p - big).max() < 1e-5
    assert np.allclose(numpy_p.sum(1), 1, atol=1e-5)  # tempered probabilities, either way
    monkeypatch.setenv(onnx_graph.ENGINE_ENV, " NumPy ")
    assert onnx_graph.predict(types.SimpleNamespace(), model.inference,
                              model.inference.batch(big_x)) is None


@pytest.mark.parametrize("missing", ["onnxruntime", "onnx"])
def test_without_onnx_numpy_answers(monkeypatch, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # import fails, as if not installed
    net = every_layer_net(3)
    x = np.random.default_rng(3).random((SMALL.min_batch, 28, 28, 1)).astype(np.float32)
    holder = types.SimpleNamespace()
    assert onnx_graph.predict(holder, net, x, SMALL) is None
    assert holder._onnx_session is False  # tried once, not on every call
    assert onnx_graph.predict(holder, net, x, SMALL) is None
    if missing == "onnx":
        with pytest.raises(ImportError):
            onnx_graph.graph_bytes(net)


def test_a_graph_onnx_refuses_leaves_the_batch_to_numpy(monkeypatch):
    """A layer whose nodes the checker refuses: no session, NumPy answers."""
    net = every_layer_net(4)
    monkeypatch.setattr(MaxPooling2D, "onnx", lambda self, g, x: g.op("NoSuchOp", [x]))
    assert onnx_graph.session(net, SMALL) is None
    model = KerasModel(net)
    x = np.random.default_rng(4).random((onnx_graph.DEFAULT.min_batch, 28, 28)).astype(np.float32)
    np.testing.assert_array_equal(model.predict_proba(x), net.folded().predict_proba(x))
    assert model._onnx_session is False


def test_a_run_that_fails_leaves_the_batch_to_numpy():
    net = every_layer_net(5)
    model = KerasModel(net)
    x = np.random.default_rng(4).random((onnx_graph.DEFAULT.min_batch, 28, 28)).astype(np.float32)
    holder = types.SimpleNamespace()
    assert onnx_graph.predict(holder, net, net.batch(x[:SMALL.min_batch]), SMALL) is not None

    class Broken:
        def run(self, *args):
            raise RuntimeError("bad allocation")
    model._onnx_session = Broken()
    got = model.predict_proba(x)
    assert model._onnx_session is False
    assert np.abs(got - model.inference.predict_proba(x)).max() == 0  # NumPy's own answer


def test_the_graph_is_a_valid_onnx_model_with_named_input_and_output():
    import onnx
    net = every_layer_net()
    model = onnx.load_from_string(onnx_graph.graph_bytes(net))
    assert [i.name for i in model.graph.input] == ["x"]
    assert [o.name for o in model.graph.output] == ["y"]
    ops = {node.op_type for node in model.graph.node}
    assert {"Conv", "MaxPool", "AveragePool", "Gemm", "Flatten"} <= ops
    assert "BatchNormalization" not in ops  # folded, or an Add and a Mul


def test_a_kaggle_file_is_predicted_in_a_worker_as_it_would_be_in_process(shipped):
    from mnist_core import worker
    from mnist_core.classroom import kaggle

    model = shipped["cnn"]
    images = (np.random.default_rng(5).random((onnx_graph.DEFAULT.min_batch + 76, 28, 28))
              * 255).astype(np.uint8)
    seen: list[float] = []
    got = worker.submission_in_worker(model, images, progress=seen.append)
    assert got == kaggle.submission_csv(model.predict_proba, images)
    assert seen and seen[-1] == 1.0
