"""The from-scratch NumPy MLP: gradients against finite differences, optimisers, persistence."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_images, numeric_grad

from mnist_core.datasets.data import to_float
from mnist_core.numpy_net import SGD, Adam, NumpyMLP, cross_entropy, softmax

SMALL = (12, 7, 5, 4)  # input, two hidden layers, four classes: cheap to difference


def float64_net(activation: str, dropout: float = 0.0, seed: int = 0) -> NumpyMLP:
    """A small net with float64 weights and non-zero biases, for finite differences."""
    net = NumpyMLP(SMALL, activation=activation, dropout=dropout, seed=seed)
    rng = np.random.default_rng(seed + 100)
    net.weights = [w.astype(np.float64) for w in net.weights]
    net.biases = [rng.normal(0, 0.3, b.shape) for b in net.biases]
    return net


def batch(n: int = 6, seed: int = 1):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (n, SMALL[0])).astype(np.float32), rng.integers(0, SMALL[-1], n)


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-12))


# ---------------------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("dropout", [0.0, 0.3])
@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_backward_matches_finite_differences(activation, dropout):
    net = float64_net(activation, dropout)
    x, y = batch()

    def loss() -> float:
        net.rng = np.random.default_rng(42)  # the same dropout mask on every forward pass
        return cross_entropy(net.forward(x, train=True), y, 0.1)[0]

    net.rng = np.random.default_rng(42)
    _, dlogits = cross_entropy(net.forward(x, train=True), y, 0.1)
    grads = net.backward(dlogits)
    params = net.parameters()
    assert [g.shape for g in grads] == [p.shape for p in params]
    for i, (p, g) in enumerate(zip(params, grads)):
        err = rel_error(g, numeric_grad(loss, p))
        assert err < 1e-4, f"parameter {i} ({p.shape}): relative error {err:.2e}"


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_gradient(smoothing):
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (5, 10))
    y = rng.integers(0, 10, 5)
    loss, grad = cross_entropy(logits, y, smoothing)
    numeric = numeric_grad(lambda: cross_entropy(logits, y, smoothing)[0], logits)
    assert rel_error(grad, numeric) < 1e-6
    # Loss matches the textbook formula with smoothed one-hot targets.
    target = np.full((5, 10), smoothing / 10)
    target[np.arange(5), y] += 1 - smoothing
    expected = -(target * np.log(softmax(logits))).sum(axis=1).mean()
    assert loss == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_input_gradient_is_gradient_of_target_log_probability(activation):
    net = float64_net(activation, seed=3)
    x, target = batch(4, seed=5)
    grad = net.input_gradient(x, target)
    assert grad.shape == x.shape

    def total_log_p() -> float:  # per-sample terms, so the sum's gradient is per-sample
        p = softmax(net.forward(x))
        return float(np.log(p[np.arange(len(x)), target]).sum())

    # forward() works in float32 on the inputs, so step by a power of two, not 1e-6.
    numeric = numeric_grad(total_log_p, x, eps=2.0 ** -10)
    assert rel_error(grad, numeric) < 1e-3


def test_softmax_is_overflow_safe():
    p = softmax(np.array([[1000.0, 1000.0, -1000.0], [0.0, 0.0, 0.0]]))
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p, [[0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]], atol=1e-12)


# ---------------------------------------------------------------------------------------
# Optimisers
# ---------------------------------------------------------------------------------------

def _image_batch(n: int = 64):
    x, y = make_images(n, seed=11)
    return to_float(x).reshape(n, -1), y.astype(np.int64)


def _loss(net, x, y) -> float:
    return cross_entropy(net.forward(x), y)[0]


@pytest.mark.parametrize("optimizer", [Adam(lr=3e-3), SGD(lr=0.2, momentum=0.5)],
                         ids=["adam", "sgd"])
def test_optimiser_steps_lower_the_loss(optimizer):
    x, y = _image_batch()
    net = NumpyMLP((784, 32, 10), seed=0)
    before = _loss(net, x, y)
    for _ in range(15):
        _, dlogits = cross_entropy(net.forward(x, train=True), y)
        optimizer.step(net.parameters(), net.backward(dlogits))
    after = _loss(net, x, y)
    assert after < 0.5 * before, (before, after)
    assert all(p.dtype == np.float32 for p in net.parameters())


@pytest.mark.parametrize("optimizer", [Adam(lr=0.1, weight_decay=0.5),
                                       SGD(lr=0.1, weight_decay=0.5)], ids=["adam", "sgd"])
def test_weight_decay_shrinks_weights_not_biases(optimizer):
    w = np.ones((3, 2), np.float32)
    b = np.ones(2, np.float32)
    optimizer.step([w, b], [np.zeros_like(w), np.zeros_like(b)])
    np.testing.assert_allclose(w, 0.95)
    np.testing.assert_allclose(b, 1.0)


def test_adam_first_step_size_is_lr():
    p = np.zeros(3, np.float32)
    Adam(lr=0.01).step([p], [np.array([2.0, -0.5, 1e-3], np.float32)])
    np.testing.assert_allclose(p, [-0.01, 0.01, -0.01], rtol=1e-3)


# ---------------------------------------------------------------------------------------
# Construction, reproducibility, persistence
# ---------------------------------------------------------------------------------------

def test_same_seed_same_weights():
    a, b, c = NumpyMLP((784, 16, 10), seed=5), NumpyMLP((784, 16, 10), seed=5), \
        NumpyMLP((784, 16, 10), seed=6)
    for wa, wb in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(a.weights[0], c.weights[0])
    assert a.count_params() == 784 * 16 + 16 + 16 * 10 + 10


def test_initialisation_scale():
    relu = NumpyMLP((784, 800, 10), "relu", seed=0).weights[0]
    sigmoid = NumpyMLP((784, 800, 10), "sigmoid", seed=0).weights[0]
    assert relu.std() == pytest.approx(np.sqrt(2 / 784), rel=0.02)     # He
    assert sigmoid.std() == pytest.approx(np.sqrt(1 / 784), rel=0.02)  # Xavier-style


def test_constructor_validates():
    with pytest.raises(ValueError, match="activation"):
        NumpyMLP((784, 10), activation="tanh")
    with pytest.raises(ValueError, match="sizes"):
        NumpyMLP((784,))


def test_predict_proba_shapes_and_batching():
    x, _ = make_images(10, seed=2)
    net = NumpyMLP((784, 16, 10), seed=1)
    p = net.predict_proba(to_float(x))
    assert p.shape == (10, 10) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(net.predict_proba(to_float(x), batch_size=3), p, atol=1e-6)
    assert net.predict_proba(np.zeros((0, 28, 28), np.float32)).shape == (0, 10)


def test_dropout_only_in_training():
    x = to_float(make_images(8, seed=3)[0])
    net = NumpyMLP((784, 64, 10), dropout=0.5, seed=0)
    np.testing.assert_array_equal(net.forward(x), net.forward(x))
    assert not np.allclose(net.forward(x, train=True), net.forward(x))


def test_save_load_round_trip(tmp_path):
    net = NumpyMLP((784, 20, 12, 10), activation="sigmoid", dropout=0.1, seed=4)
    net.biases[0] += 0.25  # make sure biases are saved too
    path = tmp_path / "net.npz"
    net.save(path)
    loaded = NumpyMLP.load(path)
    assert (loaded.sizes, loaded.activation, loaded.dropout) == ((784, 20, 12, 10), "sigmoid", 0.1)
    x = to_float(make_images(16, seed=4)[0])
    np.testing.assert_array_equal(loaded.predict_proba(x), net.predict_proba(x))


def test_load_rejects_wrong_shapes(tmp_path):
    path = tmp_path / "net.npz"
    NumpyMLP((784, 20, 10), seed=0).save(path)
    with np.load(path) as f:
        arrays = dict(f)
    arrays["W1"] = np.zeros((21, 10), np.float32)
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="layer 1"):
        NumpyMLP.load(path)
