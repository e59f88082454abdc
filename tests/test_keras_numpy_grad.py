"""Look inside's Keras views in NumPy (mnist_core/keras_numpy_grad.py) against Keras itself:
input gradients against TensorFlow's GradientTape and central differences, feature maps and
hidden activations against Keras's own layer outputs, for the shipped models and for small
random networks holding every layer type the NumPy evaluator reads."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SHIPPED_ARTIFACTS

from mnist_core.models.model import KerasModel, _keras_bytes

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")
from keras import layers  # noqa: E402


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
# Small random networks: every layer type, odd shapes
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
    return KerasModel.from_bytes(_keras_bytes(net), name=name), net


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
    """Central differences of the fast path's log-probability (``predict_proba``, float32)
    at pixels where no max-pooling window or ReLU kink lies within the step."""
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


def test_importing_the_gradients_loads_no_tensorflow():
    import subprocess
    import sys

    from conftest import REPO
    code = ("import sys, numpy as np, mnist_core.keras_numpy_grad; "
            "from mnist_core.artifacts.files import load_models; "
            "ms = load_models('artifacts'); x = np.zeros((28, 28), np.float32); "
            "[m.input_gradient(x, 1) for m in ms.values()]; "
            "[m.feature_maps(x) if m.family == 'conv' else m.hidden_activations(x) "
            "for m in ms.values()]; "
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"
