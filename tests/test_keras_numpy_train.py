"""The Keras architectures trained in NumPy (mnist_core/keras_numpy_train.py) against
Keras itself: configs and weight files laid out as Keras writes them, parameter gradients
against central differences (float64) and against TensorFlow's GradientTape, BatchNorm's
moving statistics and AdamW's steps against Keras's, a short real training run, the saved
file read by Keras and by the NumPy evaluator, fine-tuning from a shipped file, and the
app's worker training dense and CNN models without importing TensorFlow."""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile

import h5py
import numpy as np
import pytest
from conftest import SHIPPED_ARTIFACTS, numeric_grad, tiny_train_config

from mnist_core import package
from mnist_core.models.architectures import CNNConfig, DenseConfig, LeNet5Config
from mnist_core.training.augment import NONE
from mnist_core.datasets.data import load_dataset, to_float
from mnist_core.keras_numpy import KerasNumpyModel
from mnist_core.keras_numpy_train import (AdamW, Builder, KerasNet, loss_and_grads,
                                          train_keras_numpy, update_moving_stats)
from mnist_core.models.model import KerasModel, _keras_bytes
from mnist_core.artifacts.registry import REGISTRY
from mnist_core.training.train import TrainConfig

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from mnist_core.models.keras_tf import build_cnn, build_dense, build_lenet5  # noqa: E402

# Small versions of every architecture (dropout 0: Keras's masks cannot be reproduced).
SMALL = [(build_dense, DenseConfig(hidden=(32, 16), dropout=0.0)),
         (build_cnn, CNNConfig(filters=(4, 8), dense=16, dropout=0.0, bn_momentum=0.9)),
         (build_lenet5, LeNet5Config(filters=(3, 4), dense=(12, 8)))]


def keras_file(build, arch) -> bytes:
    """A fresh Keras model's file, as a fresh Keras session names its layers."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(1)
    return _keras_bytes(build(arch))


def archive(data: bytes) -> tuple[dict, dict]:
    """``(config.json, {h5 path: (shape or None, attrs)})`` of a ``.keras`` file."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        config = json.loads(z.read("config.json"))
        names = z.namelist()
        h5bytes = z.read("model.weights.h5")
        meta = json.loads(z.read("metadata.json"))
    assert names == ["metadata.json", "config.json", "model.weights.h5"]
    assert set(meta) == {"keras_version", "date_saved"}
    layout = {}
    with h5py.File(io.BytesIO(h5bytes), "r") as h5:
        h5.visititems(lambda name, obj: layout.__setitem__(
            name, (getattr(obj, "shape", None), dict(obj.attrs))))
    return config, layout


def without_sharing_ids(value):
    """Keras marks a dtype policy object it saw twice in one save with an id."""
    if isinstance(value, dict):
        return {k: without_sharing_ids(v) for k, v in value.items() if k != "shared_object_id"}
    if isinstance(value, list):
        return [without_sharing_ids(v) for v in value]
    return value


def images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` shipped gallery digits: ``(n, 28, 28, 1) float32`` and their labels."""
    from mnist_core.artifacts.files import load_gallery
    gallery = load_gallery(SHIPPED_ARTIFACTS)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(gallery.images), n, replace=False)
    return to_float(gallery.images[pick])[..., None], gallery.labels[pick].astype(np.int64)


def load_keras(data: bytes):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        with open(path, "wb") as f:
            f.write(data)
        return keras.saving.load_model(path, safe_mode=True)


# ---------------------------------------------------------------------------------------
# The file: Keras's own layout
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("build, arch", SMALL + [
    (build_cnn, REGISTRY["cnn"].live_arch), (build_dense, REGISTRY["dense"].live_arch)])
def test_a_fresh_network_is_the_keras_builders_network(build, arch):
    ref_config, ref_layout = archive(keras_file(build, arch))
    net = KerasNet.from_arch(arch, seed=0)
    config, layout = archive(net.to_bytes())
    assert config == without_sharing_ids(ref_config)
    assert layout == ref_layout  # every group, dataset shape and name attribute
    # Keras's initial values: glorot_uniform kernels within their limits, zero biases,
    # BatchNorm gamma 1, beta 0, moving mean 0, moving variance 1.
    for layer in net.layers:
        if layer.kind in ("Conv2D", "Dense"):
            k = layer.weights[0]
            receptive = int(np.prod(k.shape[:-2])) if k.ndim > 2 else 1
            limit = np.sqrt(6 / (receptive * (k.shape[-2] + k.shape[-1])))
            assert np.abs(k).max() <= limit and np.abs(k).max() > 0.8 * limit
            assert abs(float(k.std()) - limit / np.sqrt(3)) < 0.15 * limit
            assert all(not w.any() for w in layer.weights[1:])
        if layer.kind == "BatchNormalization":
            gamma, beta, mean, var = layer.weights
            assert (gamma == 1).all() and (beta == 0).all() and (mean == 0).all() and (var == 1).all()
    # Seeded: the same seed, the same weights; another seed, others.
    again, other = KerasNet.from_arch(arch, seed=0), KerasNet.from_arch(arch, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(net.params(), again.params()))
    assert not np.array_equal(net.params()[0], other.params()[0])


# ---------------------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------------------

def every_layer_net() -> KerasNet:
    """A small float64 network with every layer type the trainer knows, weights (and
    BatchNorm's moving statistics) random."""
    net = (Builder((10, 10, 2)).conv2d(3, 3, "same", "tanh").batch_norm().relu().max_pool()
           .conv2d(4, 3, "valid", use_bias=False).batch_norm()
           # Layers the architectures do not use but .keras files may hold.
           .activation("sigmoid").avg_pool((3, 1))
           .flatten().dropout(0.3).dense(6, "relu").batch_norm().dense(5, "softmax")
           .build("t", 3))
    assert [layer.kind for layer in net.layers][6:8] == ["Activation", "AveragePooling2D"]
    rng = np.random.default_rng(5)
    for layer in net.layers:
        layer.weights = [rng.normal(0, 0.6, w.shape) + (1.0 if i == 0 and layer.kind ==
                                                        "BatchNormalization" else 0.0)
                         for i, w in enumerate(layer.weights)]
        if layer.kind == "BatchNormalization":
            layer.weights[3] = np.abs(layer.weights[3]) + 0.5
    return net


def test_parameter_gradients_match_finite_differences():
    net = every_layer_net()
    rng = np.random.default_rng(0)
    x, y = rng.random((4, 10, 10, 2)), np.array([0, 3, 4, 1])

    def loss() -> float:  # the same dropout mask every time
        return loss_and_grads(net, x, y, 0.1, np.random.default_rng(9))[0]

    _, logits, grads, _ = loss_and_grads(net, x, y, 0.1, np.random.default_rng(9))
    assert logits.shape == (4, 5) and logits.dtype == np.float64
    params = net.params()
    assert [g.shape for g in grads] == [p.shape for p in params] and len(params) == 13
    for p, g in zip(params, grads):
        numeric = numeric_grad(loss, p)
        assert np.abs(numeric).max() > 1e-4  # every parameter matters
        np.testing.assert_allclose(g, numeric, rtol=1e-5, atol=1e-9 + 1e-7 * np.abs(numeric).max())


def test_dropout_keeps_one_minus_rate_scaled_up():
    net = Builder((100,)).dropout(0.25).dense(10, "softmax").build("d", 0)
    from mnist_core.keras_numpy_train import layer_forward
    x = np.ones((400, 100), np.float32)
    y, cache = layer_forward(net.layers[0], x, np.random.default_rng(0))
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.01 and np.allclose(y[kept], 1 / 0.75)
    assert layer_forward(net.layers[0], x, None)[0] is x  # no rng: inference


@pytest.mark.parametrize("build, arch", SMALL, ids=["dense", "cnn", "lenet5"])
def test_gradients_and_moving_statistics_match_gradient_tape(build, arch):
    data = keras_file(build, arch)
    model = load_keras(data)
    net = KerasNet.from_bytes(data)
    x, y = images(24)
    loss, _, grads, caches = loss_and_grads(net, x, y, 0.05, None)
    cce = keras.losses.CategoricalCrossentropy(label_smoothing=0.05)
    with tf.GradientTape() as tape:
        p = model(x, training=True)  # BatchNorm: batch statistics, moving ones updated
        ref_loss = cce(np.eye(10, dtype=np.float32)[y], p)
    ref = tape.gradient(ref_loss, model.trainable_weights)
    assert loss == pytest.approx(float(ref_loss), rel=1e-5)
    assert len(grads) == len(ref)
    for mine, theirs in zip(grads, ref):
        theirs = theirs.numpy()
        assert mine.shape == theirs.shape
        np.testing.assert_allclose(mine, theirs, rtol=0, atol=2e-4 * np.abs(theirs).max())
    update_moving_stats(net.layers, caches)
    ours = [w for layer in net.layers for w in layer.weights]
    for mine, theirs in zip(ours, model.get_weights()):  # moving statistics included
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)


def test_adamw_steps_match_keras():
    rng = np.random.default_rng(0)
    shapes = [(5, 3), (3,), (2, 2, 1, 4)]
    start = [rng.normal(size=s).astype(np.float32) for s in shapes]
    variables = [keras.Variable(w) for w in start]
    ref = keras.optimizers.AdamW(learning_rate=1e-2, weight_decay=0.05)
    mine = [w.copy() for w in start]
    opt = AdamW(mine, weight_decay=0.05)
    for step in range(5):
        lr = 1e-2 * (1 - step / 10)  # the schedule changes it every step, as train_keras
        grads = [rng.normal(size=s).astype(np.float32) for s in shapes]
        ref.learning_rate.assign(lr)
        ref.apply_gradients(zip([tf.constant(g) for g in grads], variables))
        opt.step(grads, lr)
    for a, b in zip(mine, variables):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("build, arch", SMALL[1:2], ids=["cnn"])
def test_training_steps_match_keras_train_on_batch(build, arch):
    """Loss, gradients, BatchNorm statistics and AdamW together: three steps of
    ``train_on_batch`` and three of ours leave the same weights."""
    data = keras_file(build, arch)
    model = load_keras(data)
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=3e-3, weight_decay=0.01),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.05))
    net = KerasNet.from_bytes(data)
    opt = AdamW(net.params(), weight_decay=0.01)
    for step in range(3):
        x, y = images(32, seed=step)
        model.train_on_batch(x, np.eye(10, dtype=np.float32)[y])
        _, _, grads, caches = loss_and_grads(net, x, y, 0.05, None)
        update_moving_stats(net.layers, caches)
        opt.step(grads, 3e-3)
    ours = [w for layer in net.layers for w in layer.weights]
    for mine, theirs in zip(ours, model.get_weights()):
        # Adam divides by the gradient's running RMS, so where a gradient is ~0 float32
        # rounding may move a weight by up to a step (3 steps of lr): a few elements only.
        close = np.isclose(mine, theirs, rtol=1e-4, atol=2e-5)
        assert close.mean() > 0.998 and np.abs(mine - theirs).max() < 3 * 3e-3


# ---------------------------------------------------------------------------------------
# Training and the saved file
# ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def short_run(request):
    from conftest import real_mnist_dir
    where = real_mnist_dir()
    assert where is not None, "real MNIST is needed ($MNIST_DATA or ../shared/data/mnist)"
    data = load_dataset(where)
    cfg = TrainConfig(epochs=1, batch_size=32, lr=3e-3, n_train=2000, augment=NONE)
    events = []
    result = train_keras_numpy(data, cfg, REGISTRY["cnn"].live_arch,
                               callback=lambda e, info: events.append((e, info)))
    return data, result, events


def test_a_short_cnn_run_learns(short_run):
    data, result, events = short_run
    (log,) = result.history
    kinds = [e for e, _ in events]
    assert kinds[0] == "batch" and kinds[-1] == "epoch" and kinds.count("epoch") == 1
    steps = events[0][1]["steps"]
    assert steps == 63 and [info["step"] for e, info in events if e == "batch"] == [
        1, 21, 41, 61, 63]
    assert log.epoch == 1 and 0 < log.lr < 3e-3 and log.seconds > 0 and not result.stopped_early
    p = result.model.predict_proba(to_float(data.x_test[:2000]))
    accuracy = float((p.argmax(1) == data.y_test[:2000]).mean())
    # Measured: 0.926 on the first 2,000 test digits of the full test set's 0.9255 (val
    # 0.913); TensorFlow's loop on the same config: test 0.932, val 0.920. (In batches of
    # 64, BatchNorm's moving statistics lag the weights after 32 steps: val 0.44 here,
    # 0.19 with TensorFlow; re-estimated after training, as the engine now does (precise
    # BN, tests/test_live_training.py), 0.908. This run's val with it: 0.923, 0.913 without.)
    assert accuracy > 0.85 and log.val_accuracy > 0.85 and log.accuracy > 0.6


def test_the_saved_file_round_trips_through_keras_and_numpy(short_run):
    data, result, _ = short_run
    net = result.model
    blob = net.to_bytes()
    x = to_float(data.x_test[:200])
    mine = KerasNumpyModel.load(io.BytesIO(blob)).predict_proba(x)
    theirs = load_keras(blob).predict(x[..., None], verbose=0)
    np.testing.assert_allclose(mine, theirs, atol=2e-5)
    model = KerasModel.from_net(net, REGISTRY["cnn"], arch=REGISTRY["cnn"].live_arch)
    assert model.to_bytes() == blob or archive(model.to_bytes()) == archive(blob)
    np.testing.assert_allclose(model.predict_proba(x), mine, atol=1e-6)
    again = KerasNet.from_bytes(blob)
    assert again.config == net.config
    assert all(np.array_equal(a.weights[i], b.weights[i]) for a, b in zip(again.layers, net.layers)
               for i in range(len(a.weights)))


def test_fine_tuning_starts_from_the_shipped_weights():
    from mnist_core import finetune
    shipped = KerasModel.load(SHIPPED_ARTIFACTS / "cnn.keras", REGISTRY["cnn"])
    warm = finetune.warm_arch(shipped)
    net = KerasNet.from_arch(warm, seed=0)
    with zipfile.ZipFile(SHIPPED_ARTIFACTS / "cnn.keras") as z:
        assert net.config == json.loads(z.read("config.json"))
    for a, b in zip(net.layers, shipped.fast.layers):
        assert all(np.array_equal(u, v) for u, v in zip(a.weights, b.weights))
    from mnist_core.artifacts.files import load_gallery
    gallery = load_gallery(SHIPPED_ARTIFACTS)
    from mnist_core.datasets.data import Dataset
    data = Dataset("mnist", tuple("0123456789"), gallery.images[:300], gallery.labels[:300],
                   gallery.images[300:], gallery.labels[300:], "gallery")
    cfg = tiny_train_config(epochs=1, batch_size=64, lr=2e-4, n_val=60)
    result = train_keras_numpy(data, cfg, warm)
    tuned = result.model
    moved = [float(np.abs(a.weights[0] - b.weights[0]).max())
             for a, b in zip(tuned.layers, shipped.fast.layers) if a.weights]
    assert all(m > 0 for m in moved)  # every layer trained...
    x = to_float(gallery.images[300:])
    before = shipped.fast.predict_proba(x).argmax(1)
    after = tuned.predict_proba(x).argmax(1)
    assert (after == before).mean() > 0.9  # ...from the shipped network, not from scratch


# ---------------------------------------------------------------------------------------
# The app's worker
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["dense", "cnn"])
def test_the_worker_trains_keras_models_without_tensorflow(tiny_dataset, name,
                                                           worker_payloads):
    payloads = worker_payloads
    events = []
    spec = REGISTRY[name]
    record = package.train_in_worker(name, tiny_dataset, train_cfg=tiny_train_config(),
                                     arch=spec.live_arch,
                                     callback=lambda event, info: events.append(event))
    (payload,) = payloads
    assert payload["imported"] == []  # neither tensorflow nor keras, in the worker
    assert payload["peak_rss_kb"] > 0
    assert events.count("epoch") == 2 and events[-1] == "evaluate"
    model = record.model
    assert isinstance(model, KerasModel) and model.arch == spec.live_arch
    assert len(record.history) == 2 and record.metrics["accuracy"] > 0.3
    probs = model.predict_proba(to_float(tiny_dataset.x_test))
    assert (probs.argmax(1) == tiny_dataset.y_test).mean() == pytest.approx(
        record.metrics["accuracy"])


def test_teach_fine_tunes_a_shipped_keras_model_in_the_worker_without_tensorflow(
        worker_payloads):
    """Teach's path: the shipped dense network's file rides in its warm architecture to
    the worker, which fine-tunes it in NumPy."""
    from mnist_core import finetune
    from mnist_core.artifacts.files import load_gallery
    from mnist_core.datasets.data import Dataset
    payloads = worker_payloads
    shipped = KerasModel.load(SHIPPED_ARTIFACTS / "dense.keras", REGISTRY["dense"])
    gallery = load_gallery(SHIPPED_ARTIFACTS)
    data = Dataset("mnist", tuple("0123456789"), gallery.images[:300], gallery.labels[:300],
                   gallery.images[300:], gallery.labels[300:], "gallery")
    record = package.train_in_worker(
        "dense", data, arch=finetune.warm_arch(shipped),
        train_cfg=tiny_train_config(epochs=1, batch_size=64, lr=1e-4, n_val=60))
    assert payloads[0]["imported"] == []
    x = to_float(gallery.images[300:])
    agree = (record.model.predict_proba(x).argmax(1) == shipped.predict_proba(x).argmax(1))
    assert agree.mean() > 0.9 and record.model.to_bytes() != shipped.to_bytes()
