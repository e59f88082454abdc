"""Input gradients of the engine (``Sequential.input_gradient``, each layer's
``backward``) against TensorFlow's GradientTape and central differences: the shipped
models, small random networks holding every layer kind, each layer kind on its own in
float64; and Look inside's views (feature maps, hidden activations) against Keras's own
layer outputs."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SHIPPED_ARTIFACTS, numeric_grad

from mnist_core.engine.layers import (INFER, LAYERS, Activation, AveragePooling2D,
                                      BatchNormalization, Context, Conv2D, Dense, Dropout,
                                      Flatten, MaxPooling2D, ReLU)
from mnist_core.models.model import KerasModel

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")
from keras import layers  # noqa: E402

from mnist_core.models.keras_tf import to_bytes  # noqa: E402


def tape_gradient(net, image: np.ndarray, target: int) -> np.ndarray:
    """d log p(target) / d pixel by GradientTape, through the log-softmax of the logits
    where the last layer is a softmax (so it stays exact for tiny probabilities)."""
    t = tf.constant(image[None, ..., None].astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(t)
        p = net(t, training=False)
        logp = tf.math.log(p[0, target])
    return tape.gradient(logp, t).numpy()[0, ..., 0]


def probe(net, wanted, image: np.ndarray) -> list[np.ndarray]:
    model = keras.Model(net.inputs, [layer.output for layer in wanted])
    outs = model(image[None, ..., None].astype(np.float32), training=False)
    return [np.asarray(o)[0] for o in (outs if isinstance(outs, (list, tuple)) else [outs])]


def assert_close_gradients(mine: np.ndarray, ref: np.ndarray, rel: float = 1e-4) -> None:
    assert mine.shape == ref.shape == (28, 28) and mine.dtype == np.float32
    scale = float(np.abs(ref).max())
    assert scale > 0
    np.testing.assert_allclose(mine, ref, atol=rel * scale, rtol=0)


def digits(n: int = 3) -> list[np.ndarray]:
    from mnist_core.artifacts.files import load_gallery
    from mnist_core.datasets.data import to_float
    gallery = load_gallery(SHIPPED_ARTIFACTS)
    return [to_float(gallery.images[i]) for i in range(n)]


# ---------------------------------------------------------------------------------------
# The shipped models
# ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=["dense", "cnn", "lenet5"])
def shipped(request):
    from mnist_core.artifacts.registry import REGISTRY
    path = SHIPPED_ARTIFACTS / f"{request.param}.keras"
    model = KerasModel.load(path, REGISTRY[request.param])
    net = keras.models.load_model(path, compile=False, safe_mode=True)
    return model, net


def test_shipped_gradients_match_gradient_tape(shipped):
    model, net = shipped
    for image in digits():
        own = int(model.predict_proba(image[None])[0].argmax())
        for target in {own, (own + 3) % 10}:  # its answer and an unlikely class
            assert_close_gradients(model.input_gradient(image, target),
                                   tape_gradient(net, image, target))


def test_shipped_views_match_keras_layer_outputs(shipped):
    model, net = shipped
    image = digits(1)[0]
    if model.family == "mlp":
        dense = [layer for layer in net.layers if layer.__class__.__name__ == "Dense"][:-1]
        for mine, ref in zip(model.hidden_activations(image), probe(net, dense, image),
                             strict=True):
            assert mine.dtype == np.float32
            np.testing.assert_allclose(mine, ref, atol=1e-4 * max(1, np.abs(ref).max()))
        return
    # Feature maps: each conv, after the BatchNorm and ReLU right behind it.
    taps, names = [], []
    for i, layer in enumerate(net.layers):
        if layer.__class__.__name__ == "Conv2D":
            tap = layer
            for nxt in net.layers[i + 1:i + 3]:
                if nxt.__class__.__name__ not in ("BatchNormalization", "ReLU", "Activation"):
                    break
                tap = nxt
            taps.append(tap)
            names.append(layer.name)
    maps = model.feature_maps(image)
    assert [name for name, _ in maps] == names
    for (_, mine), ref in zip(maps, probe(net, taps, image), strict=True):
        assert mine.dtype == np.float32
        np.testing.assert_allclose(mine, np.transpose(ref, (2, 0, 1)),
                                   atol=1e-4 * max(1, np.abs(ref).max()))


# ---------------------------------------------------------------------------------------
# Small random networks: every layer kind, odd shapes
# ---------------------------------------------------------------------------------------

def randomised(net, seed: int):
    """``net`` with random weights everywhere, BatchNorm statistics included (fresh ones
    are 0 and 1, which would hide a wrong normalisation)."""
    rng = np.random.default_rng(seed)
    weights = []
    for layer in net.layers:
        for w in layer.weights:
            name = w.path.split("/")[-1]
            shape = tuple(w.shape)
            if name == "moving_variance":
                weights.append(rng.uniform(0.5, 2.0, shape))
            elif name == "gamma":
                weights.append(rng.uniform(0.5, 1.5, shape))
            else:
                fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 4
                weights.append(rng.normal(0, 1.2 / np.sqrt(fan_in), shape))
    net.set_weights([w.astype(np.float32) for w in weights])
    return net


def conv_everything():
    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(3, 5, padding="same", activation="tanh"),
        layers.MaxPooling2D(),
        layers.Conv2D(4, 4, padding="same", use_bias=False),  # even kernel: uneven padding
        layers.BatchNormalization(),
        layers.ReLU(),
        layers.Conv2D(4, 3, activation="sigmoid"),            # valid: 14 -> 12
        layers.AveragePooling2D(pool_size=(3, 3)),            # 12 -> 4
        layers.Conv2D(5, 2, padding="valid"),                 # 4 -> 3
        layers.MaxPooling2D(),                                # 3 -> 1, one row cropped
        layers.Activation("relu"),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(10),
        layers.Activation("softmax"),
    ])


def dense_everything():
    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Flatten(),
        layers.Dense(20, activation="sigmoid"),
        layers.BatchNormalization(center=False),
        layers.Dense(16, activation="relu"),
        layers.Dropout(0.3),
        layers.BatchNormalization(scale=False),
        layers.Dense(12, activation="tanh"),
        layers.Dense(10, activation="softmax"),
    ])


def probabilities_without_softmax():
    """A network whose output is not a softmax: its log is differentiated as it is."""
    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Flatten(),
        layers.Dense(8, activation="tanh"),
        layers.Dense(10, activation="sigmoid"),
    ])


BUILDERS = {"conv": conv_everything, "dense": dense_everything,
            "sigmoid-output": probabilities_without_softmax}


@pytest.fixture(scope="module", params=[(name, seed) for name in BUILDERS for seed in (0, 1)],
                ids=lambda p: f"{p[0]}-{p[1]}")
def random_net(request):
    name, seed = request.param
    keras.utils.set_random_seed(seed)
    net = randomised(BUILDERS[name](), seed)
    return KerasModel.from_bytes(to_bytes(net), name=name), net


def test_the_random_networks_hold_every_layer_kind():
    kinds = {layer.__class__.__name__ for build in BUILDERS.values() for layer in build().layers}
    assert kinds == set(LAYERS)


def random_images(seed: int, n: int = 2) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.random((28, 28)).astype(np.float32) for _ in range(n)]


def test_random_networks_predict_like_keras(random_net):
    model, net = random_net
    x = np.stack(random_images(5, 4))
    np.testing.assert_allclose(model.predict_proba(x), net(x[..., None], training=False),
                               atol=1e-5)


def test_random_network_gradients_match_gradient_tape(random_net):
    model, net = random_net
    for image in random_images(7):
        for target in (0, 4, 9):
            assert_close_gradients(model.input_gradient(image, target),
                                   tape_gradient(net, image, target))


def test_random_network_gradients_match_finite_differences(random_net):
    """Central differences of the predict path's log-probability (``predict_proba``,
    float32) at pixels where no max-pooling window or ReLU kink lies within the step."""
    model, _ = random_net
    image = random_images(11, 1)[0]
    eps, checked = 1e-2, 0
    for target in (2, 7):
        grad = model.input_gradient(image, target)
        for r, c in [(3, 4), (10, 10), (14, 15), (20, 8), (25, 24), (27, 0)]:
            up, down = image.copy(), image.copy()
            up[r, c] += eps
            down[r, c] -= eps
            p = model.predict_proba(np.stack([up, down]).astype(np.float32))[:, target]
            numeric = float(np.log(p[0]) - np.log(p[1])) / (2 * eps)
            assert grad[r, c] == pytest.approx(numeric, rel=0.05, abs=1e-3), (target, r, c)
            checked += 1
    assert checked == 12


def test_float64_input_gradient_matches_finite_differences(random_net):
    """The whole chain in float64, every pixel of a small crop: exact to rounding."""
    model, _ = random_net
    net = model.network.copy()
    for layer in net.layers:
        layer.set_weights([w.astype(np.float64) for w in layer.weights])
    image = random_images(13, 1)[0].astype(np.float64)
    target = 3
    grad = net.input_gradient(image, target)
    assert grad.dtype == np.float64 and grad.shape == (28, 28)
    crop = image[8:14, 9:15].copy()

    def log_p() -> float:
        x = image.copy()
        x[8:14, 9:15] = crop
        return float(np.log(net.predict_proba(x[None])[0, target]))

    numeric = numeric_grad(log_p, crop)
    assert np.abs(numeric).max() > 1e-6
    np.testing.assert_allclose(grad[8:14, 9:15], numeric, rtol=1e-5,
                               atol=1e-7 * np.abs(numeric).max() + 1e-10)


# ---------------------------------------------------------------------------------------
# Each layer kind's backward, float64, inference and training mode
# ---------------------------------------------------------------------------------------

def _layer_cases():
    return {
        "dense-tanh": (Dense(5, "tanh"), (7,)),
        "dense-softmax": (Dense(5, "softmax"), (7,)),
        "dense-sigmoid-nobias": (Dense(5, "sigmoid", use_bias=False), (7,)),
        "conv-same-even": (Conv2D(3, 4, padding="same", activation="tanh"), (6, 5, 2)),
        "conv-valid": (Conv2D(3, (3, 2), activation="sigmoid"), (6, 5, 2)),
        "batchnorm-4d": (BatchNormalization(), (4, 3, 3)),
        "batchnorm-2d-noscale": (BatchNormalization(scale=False), (5,)),
        "batchnorm-2d-nocenter": (BatchNormalization(center=False), (5,)),
        "activation-softmax": (Activation("softmax"), (6,)),
        "activation-sigmoid": (Activation("sigmoid"), (4, 3, 2)),
        "relu": (ReLU(), (4, 3, 2)),
        "maxpool-ragged": (MaxPooling2D((2, 3)), (5, 7, 2)),
        "avgpool-ragged": (AveragePooling2D((3, 2)), (7, 5, 2)),
        "flatten": (Flatten(), (3, 2, 2)),
        "dropout": (Dropout(0.4), (6,)),
    }


@pytest.mark.parametrize("train", [False, True], ids=["infer", "train"])
@pytest.mark.parametrize("case", list(_layer_cases()))
def test_each_layer_backward_matches_finite_differences(case, train):
    layer, shape = _layer_cases()[case]
    rng = np.random.default_rng(3)
    layer.init(shape, rng)
    layer.set_weights([w.astype(np.float64) + rng.normal(0, 0.3, w.shape)
                       if i < layer.n_trainable else
                       (np.abs(w.astype(np.float64) + rng.normal(0, 0.3, w.shape)) + 0.2)
                       for i, w in enumerate(layer.weights)])
    x = rng.normal(0, 1, (4, *shape))
    weights = rng.normal(0, 1, (4, *layer.out_shape(shape)))  # L = sum(y * weights)

    def ctx():  # the same dropout mask on every pass
        return Context(train=True, rng=np.random.default_rng(9)) if train else INFER

    def loss() -> float:
        return float((layer.forward(x, ctx())[0] * weights).sum())

    y, cache = layer.forward(x, ctx())
    assert y.shape == weights.shape and y.dtype == np.float64
    dx, dw = layer.backward(cache, weights)
    numeric = numeric_grad(loss, x)
    assert np.abs(numeric).max() > 1e-3
    np.testing.assert_allclose(dx, numeric, rtol=1e-5, atol=1e-8)
    assert len(dw) == layer.n_trainable
    for w, g in zip(layer.weights, dw):
        np.testing.assert_allclose(g, numeric_grad(loss, w), rtol=1e-5, atol=1e-8)
    # need_dx=False: the same weight gradients, no input gradient.
    _, cache = layer.forward(x, ctx())
    none, dw2 = layer.backward(cache, weights, need_dx=False)
    assert none is None
    for a, b in zip(dw, dw2):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_max_pooling_routes_a_tie_to_the_first_maximum_as_tensorflow():
    x = np.zeros((1, 4, 4, 1), np.float32)
    x[0, 0, 1, 0] = x[0, 1, 0, 0] = 1.0  # two maxima in the first window
    g = np.ones((1, 2, 2, 1), np.float32)
    pool = MaxPooling2D(2)
    mine = pool.backward(pool.forward(x)[1], g)[0]
    t = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(t)
        y = tf.nn.max_pool2d(t, 2, 2, "VALID")
    ref = tape.gradient(y, t, output_gradients=tf.constant(g)).numpy()
    np.testing.assert_array_equal(mine, ref)
    assert mine.sum() == 4


def test_importing_the_gradients_loads_no_tensorflow():
    import subprocess
    import sys

    from conftest import REPO
    code = ("import sys, numpy as np; "
            "from mnist_core.artifacts.files import load_models; "
            "ms = load_models('artifacts'); x = np.zeros((28, 28), np.float32); "
            "[m.input_gradient(x, 1) for m in ms.values()]; "
            "[m.feature_maps(x) if m.family == 'conv' else m.hidden_activations(x) "
            "for m in ms.values()]; "
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"
