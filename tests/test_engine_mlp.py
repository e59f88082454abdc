"""The from-scratch NumPy MLP (NumpyConfig) as a network of engine layers: gradients
against finite differences, softmax and cross-entropy, AdamW and SGD learning a toy
problem, and its ``.npz`` file through NumpyModel (never a pickle)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import make_images, numeric_grad, tiny_train_config

from mnist_core.datasets.data import to_float
from mnist_core.engine.layers import ACTIVATIONS, Context, Dense, Dropout, softmax
from mnist_core.engine.network import Sequential, softmax_cross_entropy
from mnist_core.engine.optim import SGD, AdamW
from mnist_core.models.architectures import NumpyConfig, build_net
from mnist_core.models.model import NumpyModel, model_from_bytes
from mnist_core.training.train import train_network

N_IN = 12  # a small input: cheap to difference


def float64_net(activation: str, dropout: float = 0.0, seed: int = 0) -> Sequential:
    """``12 -> 7 -> 5 -> 10`` with float64 weights and non-zero biases."""
    arch = NumpyConfig(hidden=(7, 5), activation=activation, dropout=dropout)
    net = Sequential.build(arch.layers(), (N_IN,), "", np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 100)
    for layer in net.of_kind(Dense):
        layer.set_weights([layer.kernel.astype(np.float64), rng.normal(0, 0.3, layer.units)])
    return net


def batch(n: int = 6, seed: int = 1):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (n, N_IN)), rng.integers(0, 10, n)


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-12))


def test_the_mlp_is_its_layer_list():
    net = build_net(NumpyConfig(hidden=(32, 16), activation="sigmoid", dropout=0.2))
    assert [(l.kind, getattr(l, "units", None), getattr(l, "activation", None))
            for l in net.layers] == [("Dense", 32, "sigmoid"), ("Dropout", None, None),
                                     ("Dense", 16, "sigmoid"), ("Dropout", None, None),
                                     ("Dense", 10, "softmax")]
    assert net.input_shape == (784,) and net.of_kind(Dropout)[0].rate == 0.2
    assert net.count_params() == 784 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10


# ---------------------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("dropout", [0.0, 0.3])
@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_backward_matches_finite_differences(activation, dropout):
    net = float64_net(activation, dropout)
    x, y = batch()

    def ctx() -> Context:  # the same dropout mask on every forward pass
        return Context(train=True, rng=np.random.default_rng(42))

    def loss() -> float:
        return net.loss_and_grads(x, y, 0.1, ctx())[0]

    _, logits, grads, _ = net.loss_and_grads(x, y, 0.1, ctx())
    assert logits.dtype == np.float64
    params = net.params()
    assert [g.shape for g in grads] == [p.shape for p in params] and len(params) == 6
    for i, (p, g) in enumerate(zip(params, grads)):
        err = rel_error(g, numeric_grad(loss, p))
        assert err < 1e-6, f"parameter {i} ({p.shape}): relative error {err:.2e}"


def test_dropout_masks_change_the_gradients():
    net = float64_net("relu", 0.5)
    x, y = batch()
    a = net.loss_and_grads(x, y, 0.0, Context(train=True, rng=np.random.default_rng(1)))[2]
    b = net.loss_and_grads(x, y, 0.0, Context(train=True, rng=np.random.default_rng(2)))[2]
    assert not np.allclose(a[0], b[0])


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_gradient(smoothing):
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (5, 10))
    y = rng.integers(0, 10, 5)
    loss, grad = softmax_cross_entropy(logits, y, smoothing)
    numeric = numeric_grad(lambda: softmax_cross_entropy(logits, y, smoothing)[0], logits)
    assert rel_error(grad, numeric) < 1e-6
    # Loss matches the textbook formula with smoothed one-hot targets.
    target = np.full((5, 10), smoothing / 10)
    target[np.arange(5), y] += 1 - smoothing
    expected = -(target * np.log(softmax(logits))).sum(axis=1).mean()
    assert loss == pytest.approx(expected, rel=1e-10)
    # Extreme logits stay finite.
    huge = np.array([[1000.0, -1000.0, 0.0]])
    loss, grad = softmax_cross_entropy(huge, np.array([1]))
    assert np.isfinite(loss) and loss == pytest.approx(2000.0) and np.all(np.isfinite(grad))


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_input_gradient_is_gradient_of_target_log_probability(activation):
    net = float64_net(activation, seed=3)
    x, targets = batch(4, seed=5)
    for image, target in zip(x, targets):
        grad = net.input_gradient(image, int(target))
        assert grad.shape == image.shape and grad.dtype == np.float64
        image = image.copy()

        def log_p() -> float:
            return float(np.log(net.predict_proba(image[None])[0, target]))

        assert rel_error(grad, numeric_grad(log_p, image)) < 1e-6


def test_softmax_is_overflow_safe():
    p = softmax(np.array([[1000.0, 1000.0, -1000.0], [0.0, 0.0, 0.0]]))
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p, [[0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]], atol=1e-12)


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "softmax", "linear"])
def test_each_activation_derivative_matches_finite_differences(name):
    f, d = ACTIVATIONS[name]
    rng = np.random.default_rng(0)
    z, g = rng.normal(0, 2, (3, 5)), rng.normal(0, 1, (3, 5))
    z[np.abs(z) < 1e-3] = 0.5  # no ReLU kink within the step
    numeric = numeric_grad(lambda: float((f(z) * g).sum()), z)
    np.testing.assert_allclose(d(z, f(z), g), numeric, rtol=1e-6, atol=1e-9)


# ---------------------------------------------------------------------------------------
# Optimisers
# ---------------------------------------------------------------------------------------

def _image_batch(n: int = 64):
    x, y = make_images(n, seed=11)
    return to_float(x).reshape(n, -1), y.astype(np.int64)


def _loss(net, x, y) -> float:
    return softmax_cross_entropy(net.forward(x, logits=True)[0], y)[0]


@pytest.mark.parametrize("make, lr, steps", [(lambda p: AdamW(p), 3e-3, 15),
                                             (lambda p: SGD(p), 0.5, 30)], ids=["adamw", "sgd"])
def test_optimiser_steps_lower_the_loss(make, lr, steps):
    x, y = _image_batch()
    net = build_net(NumpyConfig(hidden=(32,), dropout=0.0), seed=0)
    before = _loss(net, x, y)
    optimizer = make(net.params())
    ctx = Context(train=True, rng=np.random.default_rng(0))
    for _ in range(steps):
        _, _, grads, _ = net.loss_and_grads(x, y, 0.0, ctx)
        optimizer.step(grads, lr)
    after = _loss(net, x, y)
    assert after < 0.5 * before, (before, after)
    assert all(p.dtype == np.float32 for p in net.params())


def test_sgd_decays_kernels_not_biases():
    w, b = np.ones((3, 2), np.float32), np.ones(2, np.float32)
    SGD([w, b], weight_decay=0.5).step([np.zeros_like(w), np.zeros_like(b)], 0.1)
    np.testing.assert_allclose(w, 0.95)
    np.testing.assert_allclose(b, 1.0)


def test_adamw_decays_every_variable_as_keras_does():
    """keras.optimizers.AdamW decays biases too, by ``lr * weight_decay`` a step
    (tests/test_engine_train.py holds the steps to Keras's)."""
    w, b = np.ones((3, 2), np.float32), np.ones(2, np.float32)
    AdamW([w, b], weight_decay=0.5).step([np.zeros_like(w), np.zeros_like(b)], 0.1)
    np.testing.assert_allclose(w, 0.95)
    np.testing.assert_allclose(b, 0.95)


def test_adam_first_step_size_is_lr():
    p = np.zeros(3, np.float32)
    AdamW([p]).step([np.array([2.0, -0.5, 1e-2], np.float32)], 0.01)
    np.testing.assert_allclose(p, [-0.01, 0.01, -0.01], rtol=1e-3)


def test_the_sgd_architecture_trains_with_sgd(tiny_dataset, monkeypatch):
    from mnist_core.training import train
    used = []
    real = train.SGD
    monkeypatch.setattr(train, "SGD", lambda *a, **k: used.append(1) or real(*a, **k))
    arch = NumpyConfig(hidden=(32,), optimizer="sgd", dropout=0.0)
    result = train_network(tiny_dataset, tiny_train_config(lr=0.1), arch)
    assert used == [1] and result.history[-1].val_accuracy > 0.5


# ---------------------------------------------------------------------------------------
# Construction, reproducibility, predictions
# ---------------------------------------------------------------------------------------

def test_same_seed_same_weights():
    arch = NumpyConfig(hidden=(16,))
    a, b, c = build_net(arch, 5), build_net(arch, 5), build_net(arch, 6)
    for wa, wb in zip(a.params(), b.params()):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(a.params()[0], c.params()[0])
    assert a.count_params() == 784 * 16 + 16 + 16 * 10 + 10


def test_initialisation_scale():
    relu = build_net(NumpyConfig(hidden=(800,), activation="relu")).params()[0]
    sigmoid = build_net(NumpyConfig(hidden=(800,), activation="sigmoid")).params()[0]
    assert relu.dtype == np.float32
    assert relu.std() == pytest.approx(np.sqrt(2 / 784), rel=0.02)     # He
    assert sigmoid.std() == pytest.approx(np.sqrt(1 / 784), rel=0.02)  # LeCun
    assert not build_net(NumpyConfig(hidden=(800,))).params()[1].any()  # zero biases


def test_unknown_activations_are_refused():
    with pytest.raises(ValueError, match="activation"):
        Dense(10, activation="swish")
    with pytest.raises(ValueError, match="activation"):
        build_net(NumpyConfig(hidden=(8,), activation="gelu"))


def test_predict_proba_shapes_and_batching():
    x, _ = make_images(10, seed=2)
    net = build_net(NumpyConfig(hidden=(16,)), seed=1)
    p = net.predict_proba(to_float(x))
    assert p.shape == (10, 10) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(net.predict_proba(to_float(x), batch_size=3), p, atol=1e-6)
    assert net.predict_proba(np.zeros((0, 28, 28), np.float32)).shape == (0, 10)


def test_dropout_only_in_training():
    x = build_net(NumpyConfig()).batch(to_float(make_images(8, seed=3)[0]))
    net = build_net(NumpyConfig(hidden=(64,), dropout=0.5), seed=0)
    np.testing.assert_array_equal(net.forward(x)[0], net.forward(x)[0])
    train = Context(train=True, rng=np.random.default_rng(0))
    assert not np.allclose(net.forward(x, train)[0], net.forward(x)[0])


# ---------------------------------------------------------------------------------------
# The .npz file
# ---------------------------------------------------------------------------------------

def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _arrays(data: bytes) -> dict:
    with np.load(io.BytesIO(data)) as f:
        return dict(f)


def test_save_load_round_trip(tmp_path):
    arch = NumpyConfig(hidden=(20, 12), activation="sigmoid", dropout=0.1)
    net = build_net(arch, seed=4)
    net.params()[1] += 0.25  # make sure biases are saved too
    model = NumpyModel.from_net(net, arch=arch)
    path = model.save(tmp_path / "net.npz")
    loaded = NumpyModel.load(path)
    assert [(l.kind, getattr(l, "units", None), getattr(l, "activation", None))
            for l in loaded.network.layers] == \
        [(l.kind, getattr(l, "units", None), getattr(l, "activation", None)) for l in net.layers]
    assert loaded.network.of_kind(Dropout)[0].rate == pytest.approx(0.1)
    assert all(np.array_equal(a, b) for a, b in zip(loaded.network.params(), net.params()))
    x = to_float(make_images(16, seed=4)[0])
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))
    np.testing.assert_array_equal(model_from_bytes(path.read_bytes()).predict_proba(x),
                                  model.predict_proba(x))
    assert set(_arrays(model.to_bytes())) == {"sizes", "activation", "dropout",
                                              "W0", "W1", "W2", "b0", "b1", "b2"}


def test_the_shipped_layout_is_read():
    """A file written array by array, as the notebooks' MLP saved it."""
    rng = np.random.default_rng(0)
    sizes = (784, 24, 10)
    w = [rng.normal(0, 0.1, (a, b)).astype(np.float32) for a, b in zip(sizes, sizes[1:])]
    b = [rng.normal(0, 0.1, n).astype(np.float32) for n in sizes[1:]]
    data = _npz(sizes=np.array(sizes), activation=np.array("relu"), dropout=np.array(0.0),
                W0=w[0], W1=w[1], b0=b[0], b1=b[1])
    net = NumpyModel.from_bytes(data).network
    x = rng.random((5, 784)).astype(np.float32)
    h = np.maximum(x @ w[0] + b[0], 0) @ w[1] + b[1]
    np.testing.assert_allclose(net.predict_proba(x), softmax(h), atol=1e-6)


def test_load_rejects_wrong_shapes():
    good = NumpyModel.from_net(build_net(NumpyConfig(hidden=(20,)))).to_bytes()
    arrays = _arrays(good)
    arrays["W1"] = np.zeros((21, 10), np.float32)
    with pytest.raises(ValueError, match="layer 1"):
        NumpyModel.from_bytes(_npz(**arrays))
    arrays = _arrays(good)
    arrays["sizes"] = np.array([100, 20, 10])
    with pytest.raises(ValueError, match="28x28"):
        NumpyModel.from_bytes(_npz(**arrays))


def test_load_refuses_pickles():
    arrays = _arrays(NumpyModel.from_net(build_net(NumpyConfig(hidden=(20,)))).to_bytes())
    arrays["W0"] = np.array([{"__reduce__": "boom"}], dtype=object)  # pickled on save
    with pytest.raises(ValueError, match="pickle"):
        NumpyModel.from_bytes(_npz(**arrays))
