"""Training in the engine (Sequential.loss_and_grads, AdamW, train_network) against Keras
itself: every architecture built by Keras from the same layer list, the files the engine
writes loaded by Keras with ``safe_mode`` and laid out as Keras lays them out, parameter
gradients against central differences (float64) and GradientTape, BatchNorm's moving
statistics and AdamW's steps against Keras's, a short real training run, "precise BN"
after training and after a stop, fine-tuning from a warm config, and the app's worker
training Keras architectures without importing TensorFlow."""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile

import h5py
import numpy as np
import pytest
from conftest import SHIPPED_ARTIFACTS, numeric_grad, real_mnist_dir, tiny_train_config

from mnist_core.artifacts.registry import REGISTRY
from mnist_core.datasets.data import Dataset, load_dataset, to_float
from mnist_core.engine import keras_file
from mnist_core.engine.layers import (Activation, AveragePooling2D, BatchNormalization,
                                      Context, Conv2D, Dense, Dropout, Flatten, MaxPooling2D,
                                      ReLU)
from mnist_core.engine.network import Sequential
from mnist_core.engine.optim import AdamW
from mnist_core.models.architectures import (CNNConfig, DenseConfig, LeNet5Config, NumpyConfig,
                                             build_net)
from mnist_core.models.model import KerasModel
from mnist_core.training.augment import NONE
from mnist_core.training.train import (DEFAULT_ENGINE, EngineConfig, start_net, precise_bn_sample, train_network)
from mnist_core.training.config import StopFlag, TrainConfig
from mnist_core.training.feed import prepare

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from mnist_core.models import keras_tf  # noqa: E402

# Small versions of every Keras architecture (dropout 0: Keras's masks cannot be reproduced).
SMALL = [DenseConfig(hidden=(32, 16), dropout=0.0),
         CNNConfig(filters=(4, 8), dense=16, dropout=0.0, bn_momentum=0.9),
         LeNet5Config(filters=(3, 4), dense=(12, 8))]
SMALL_IDS = ["dense", "cnn", "lenet5"]
EVERY_ARCH = SMALL + [NumpyConfig(hidden=(24, 16), dropout=0.1)] + [
    REGISTRY[name].live_arch for name in ("numpy", "dense", "cnn", "lenet5")]
EVERY_ID = SMALL_IDS + ["numpy"] + [f"live-{name}" for name in ("numpy", "dense", "cnn", "lenet5")]


def keras_bytes(arch) -> bytes:
    """A fresh Keras model's file, as a fresh Keras session names its layers."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(1)
    return keras_tf.to_bytes(keras_tf.build(arch))


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


def gallery_dataset() -> Dataset:
    from mnist_core.artifacts.files import load_gallery
    gallery = load_gallery(SHIPPED_ARTIFACTS)
    return Dataset("mnist", tuple("0123456789"), gallery.images[:300], gallery.labels[:300],
                   gallery.images[300:], gallery.labels[300:], "gallery")


def load_keras(data: bytes):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        with open(path, "wb") as f:
            f.write(data)
        return keras.saving.load_model(path, safe_mode=True)


def all_weights(net: Sequential) -> list[np.ndarray]:
    return [w for layer in net.layers for w in layer.weights]


# ---------------------------------------------------------------------------------------
# One definition: Keras and the engine build the same network from each architecture
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", EVERY_ARCH, ids=EVERY_ID)
def test_keras_builds_the_engines_network_from_the_same_layer_list(arch):
    keras.backend.clear_session()
    model = keras_tf.build(arch)
    net = build_net(arch, seed=0)
    assert [l.__class__.__name__ for l in model.layers] == [l.kind for l in net.layers]
    assert [tuple(l.output.shape)[1:] for l in model.layers] == net.shapes()[1:]
    assert tuple(model.input_shape)[1:] == net.input_shape
    assert model.count_params() == net.count_params()
    assert len(model.trainable_weights) == len(net.params())
    rng = np.random.default_rng(4)
    x = rng.random((9, *net.input_shape)).astype(np.float32)
    # The engine's weights into Keras, BatchNorm's statistics made random first.
    for layer in net.of_kind(BatchNormalization):
        layer.moving_mean[...] = rng.normal(0, 0.2, layer.moving_mean.shape)
        layer.moving_var[...] = rng.uniform(0.5, 2, layer.moving_var.shape)
    model.set_weights(all_weights(net))
    np.testing.assert_allclose(net.predict_proba(x), model(x, training=False), atol=1e-5)
    # ... and Keras's own initial weights into the engine.
    keras.utils.set_random_seed(7)
    fresh = keras_tf.build(arch)
    for layer, klayer in zip(net.layers, fresh.layers):
        layer.set_weights([np.asarray(w) for w in klayer.get_weights()])
    np.testing.assert_allclose(net.predict_proba(x), fresh(x, training=False), atol=1e-5)
    np.testing.assert_allclose(net.folded().predict_proba(x), fresh(x, training=False),
                               atol=1e-5)


@pytest.mark.parametrize("arch", SMALL + [REGISTRY["cnn"].live_arch, REGISTRY["dense"].live_arch],
                         ids=SMALL_IDS + ["live-cnn", "live-dense"])
def test_the_written_file_is_the_file_keras_writes(arch):
    """Keras loads the engine's file with safe_mode and, saving it again, writes the same
    config and the same weight groups, shapes and names."""
    net = build_net(arch, seed=0)
    blob = keras_file.write(net)
    model = load_keras(blob)
    assert [l.name for l in model.layers] == [l.name for l in net.layers]
    assert all(np.array_equal(a, b) for a, b in zip(all_weights(net), model.get_weights()))
    config, layout = archive(blob)
    ref_config, ref_layout = archive(keras_tf.to_bytes(model))
    assert config == without_sharing_ids(ref_config)
    assert layout == ref_layout  # every group, dataset shape and name attribute
    # And a fresh Keras model of the architecture is laid out the same way.
    fresh_config, fresh_layout = archive(keras_bytes(arch))
    assert config == without_sharing_ids(fresh_config) and layout == fresh_layout
    x = images(16)[0]
    np.testing.assert_allclose(net.predict_proba(x), model.predict(x, verbose=0), atol=1e-5)


@pytest.mark.parametrize("arch", [SMALL[0], REGISTRY["cnn"].live_arch, SMALL[2]],
                         ids=["dense", "live-cnn", "lenet5"])
def test_a_fresh_network_has_keras_initial_values_seeded(arch):
    """glorot_uniform kernels within their limits, zero biases, BatchNorm gamma 1, beta 0,
    moving mean 0, moving variance 1; the same seed the same weights, another others."""
    net = build_net(arch, seed=0)
    for layer in net.layers:
        if layer.kind in ("Conv2D", "Dense"):
            k = layer.weights[0]
            assert k.dtype == np.float32
            receptive = int(np.prod(k.shape[:-2])) if k.ndim > 2 else 1
            limit = np.sqrt(6 / (receptive * (k.shape[-2] + k.shape[-1])))
            assert np.abs(k).max() <= limit and np.abs(k).max() > 0.8 * limit
            assert abs(float(k.std()) - limit / np.sqrt(3)) < 0.15 * limit
            assert all(not w.any() for w in layer.weights[1:])
        if layer.kind == "BatchNormalization":
            gamma, beta, mean, var = layer.weights
            assert (gamma == 1).all() and (beta == 0).all() and (mean == 0).all() and (var == 1).all()
    again, other = build_net(arch, seed=0), build_net(arch, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(net.params(), again.params()))
    assert not np.array_equal(net.params()[0], other.params()[0])


# ---------------------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------------------

def every_layer_net() -> Sequential:
    """A small float64 network with every layer kind, weights (and BatchNorm's moving
    statistics) random."""
    net = Sequential.build([
        Conv2D(3, 3, "same", "tanh"), BatchNormalization(), ReLU(), MaxPooling2D(2),
        Conv2D(4, 3, "valid", use_bias=False), BatchNormalization(),
        Activation("sigmoid"), AveragePooling2D((3, 1)),
        Flatten(), Dropout(0.3), Dense(6, "relu"), BatchNormalization(), Dense(5, "softmax"),
    ], (10, 10, 2), "t", np.random.default_rng(3))
    rng = np.random.default_rng(5)
    for layer in net.layers:
        weights = [rng.normal(0, 0.6, w.shape) + (1.0 if i == 0 and layer.kind ==
                                                  "BatchNormalization" else 0.0)
                   for i, w in enumerate(layer.weights)]
        if layer.kind == "BatchNormalization":
            weights[3] = np.abs(weights[3]) + 0.5
        layer.set_weights(weights)
    return net


def test_parameter_gradients_match_finite_differences():
    net = every_layer_net()
    rng = np.random.default_rng(0)
    x, y = rng.random((4, 10, 10, 2)), np.array([0, 3, 4, 1])

    def ctx() -> Context:  # the same dropout mask every time
        return Context(train=True, rng=np.random.default_rng(9))

    def loss() -> float:
        return net.loss_and_grads(x, y, 0.1, ctx())[0]

    _, logits, grads, _ = net.loss_and_grads(x, y, 0.1, ctx())
    assert logits.shape == (4, 5) and logits.dtype == np.float64
    params = net.params()
    assert [g.shape for g in grads] == [p.shape for p in params] and len(params) == 13
    for p, g in zip(params, grads):
        numeric = numeric_grad(loss, p)
        assert np.abs(numeric).max() > 1e-4  # every parameter matters
        np.testing.assert_allclose(g, numeric, rtol=1e-5, atol=1e-9 + 1e-7 * np.abs(numeric).max())


def test_inference_mode_gradients_line_up_with_the_parameters():
    """With BatchNorm on its moving statistics (a frozen-BN fine-tune), each gradient is
    still the one of the parameter at its place."""
    net = every_layer_net()
    rng = np.random.default_rng(1)
    x, y = rng.random((3, 10, 10, 2)), np.array([1, 2, 0])
    infer = Context(train=False)
    _, _, grads, _ = net.loss_and_grads(x, y, 0.0, infer)
    params = net.params()
    assert [g.shape for g in grads] == [p.shape for p in params]
    for p, g in zip(params, grads):
        numeric = numeric_grad(lambda: net.loss_and_grads(x, y, 0.0, infer)[0], p)
        np.testing.assert_allclose(g, numeric, rtol=1e-5, atol=1e-9 + 1e-7 * np.abs(numeric).max())


def test_the_loss_needs_a_softmax_head():
    net = Sequential.build([Flatten(), Dense(4, "relu")], (3, 3, 1), "x", np.random.default_rng(0))
    with pytest.raises(ValueError, match="softmax"):
        net.loss_and_grads(np.zeros((2, 3, 3, 1), np.float32), np.array([0, 1]), 0.0,
                           Context(train=True))


@pytest.mark.parametrize("arch", SMALL, ids=SMALL_IDS)
def test_gradients_and_moving_statistics_match_gradient_tape(arch):
    data = keras_bytes(arch)
    model = load_keras(data)
    net = keras_file.read(data)
    x, y = images(24)
    loss, _, grads, caches = net.loss_and_grads(x, y, 0.05, Context(train=True))
    cce = keras.losses.CategoricalCrossentropy(label_smoothing=0.05)
    with tf.GradientTape() as tape:
        p = model(x, training=True)  # BatchNorm: batch statistics, moving ones updated
        ref_loss = cce(np.eye(10, dtype=np.float32)[y], p)
    ref = tape.gradient(ref_loss, model.trainable_weights)
    assert loss == pytest.approx(float(ref_loss), rel=1e-5)
    assert len(grads) == len(ref)
    for mine, theirs in zip(grads, ref):
        theirs = theirs.numpy()
        assert mine.shape == theirs.shape and mine.dtype == np.float32
        np.testing.assert_allclose(mine, theirs, rtol=0, atol=2e-4 * np.abs(theirs).max())
    net.update_moving_stats(caches)
    for mine, theirs in zip(all_weights(net), model.get_weights()):  # moving statistics too
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
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-5, atol=1e-6)


def test_training_steps_match_keras_train_on_batch():
    """Loss, gradients, BatchNorm statistics and AdamW together: three steps of
    ``train_on_batch`` and three of ours leave the same weights."""
    data = keras_bytes(SMALL[1])
    model = load_keras(data)
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=3e-3, weight_decay=0.01),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.05))
    net = keras_file.read(data)
    opt = AdamW(net.params(), weight_decay=0.01)
    for step in range(3):
        x, y = images(32, seed=step)
        model.train_on_batch(x, np.eye(10, dtype=np.float32)[y])
        _, _, grads, caches = net.loss_and_grads(x, y, 0.05, Context(train=True))
        net.update_moving_stats(caches)
        opt.step(grads, 3e-3)
    for mine, theirs in zip(all_weights(net), model.get_weights()):
        # Adam divides by the gradient's running RMS, so where a gradient is ~0 float32
        # rounding may move a weight by up to a step (3 steps of lr): a few elements only.
        close = np.isclose(mine, theirs, rtol=1e-4, atol=2e-5)
        assert close.mean() > 0.998 and np.abs(mine - theirs).max() < 3 * 3e-3
    assert not np.allclose(all_weights(net)[0], all_weights(keras_file.read(data))[0])


# ---------------------------------------------------------------------------------------
# Training and the saved file
# ---------------------------------------------------------------------------------------

def real_data():
    where = real_mnist_dir()
    assert where is not None, "real MNIST is needed ($MNIST_DATA or ../shared/data/mnist)"
    return load_dataset(where)


@pytest.fixture(scope="module")
def short_run():
    data = real_data()
    cfg = TrainConfig(epochs=1, batch_size=32, lr=3e-3, n_train=2000, augment=NONE)
    events = []
    result = train_network(data, cfg, REGISTRY["cnn"].live_arch,
                           callback=lambda e, info: events.append((e, info)))
    return data, result, events


def test_a_short_cnn_run_learns(short_run):
    data, result, events = short_run
    (log,) = result.history
    kinds = [e for e, _ in events]
    assert kinds[0] == "batch" and kinds[-1] == "epoch" and kinds.count("epoch") == 1
    assert events[-1][1]["model"] is result.model
    steps = events[0][1]["steps"]
    assert steps == 63 and [info["step"] for e, info in events if e == "batch"] == [
        1, 21, 41, 61, 63]
    assert log.epoch == 1 and 0 < log.lr < 3e-3 and log.seconds > 0 and not result.stopped_early
    assert isinstance(result.model, Sequential)
    p = result.model.folded().predict_proba(to_float(data.x_test[:2000]))
    accuracy = float((p.argmax(1) == data.y_test[:2000]).mean())
    assert accuracy > 0.85 and log.val_accuracy > 0.85 and log.accuracy > 0.6


def test_the_saved_file_round_trips_through_keras_and_numpy(short_run):
    data, result, _ = short_run
    net = result.model
    blob = keras_file.write(net)
    x = to_float(data.x_test[:200])
    mine = keras_file.read(blob).predict_proba(x)
    theirs = load_keras(blob).predict(x[..., None], verbose=0)
    np.testing.assert_allclose(mine, theirs, atol=2e-5)
    model = KerasModel.from_net(net, REGISTRY["cnn"], arch=REGISTRY["cnn"].live_arch)
    assert model.to_bytes() == blob or archive(model.to_bytes()) == archive(blob)
    np.testing.assert_allclose(model.predict_proba(x), mine, atol=1e-6)
    again = keras_file.read(blob)
    assert keras_file.model_config(again) == keras_file.model_config(net)
    assert all(np.array_equal(a, b) for a, b in zip(all_weights(again), all_weights(net)))


def test_fine_tuning_starts_from_the_shipped_weights():
    from mnist_core.classroom import finetune
    shipped = KerasModel.load(SHIPPED_ARTIFACTS / "cnn.keras", REGISTRY["cnn"])
    warm = finetune.warm_arch(shipped)
    net = start_net(warm, seed=0)
    with zipfile.ZipFile(SHIPPED_ARTIFACTS / "cnn.keras") as z:
        shipped_config = json.loads(z.read("config.json"))
    assert keras_file.model_config(net) == without_sharing_ids(shipped_config)
    assert all(np.array_equal(a, b) for a, b in zip(all_weights(net),
                                                     all_weights(shipped.network)))
    data = gallery_dataset()
    cfg = tiny_train_config(epochs=1, batch_size=64, lr=2e-4, n_val=60)
    tuned = train_network(data, cfg, warm).model
    moved = [float(np.abs(a.weights[0] - b.weights[0]).max())
             for a, b in zip(tuned.layers, shipped.network.layers) if a.weights]
    assert all(m > 0 for m in moved)  # every layer trained...
    x = to_float(data.x_test)
    before = shipped.predict_proba(x).argmax(1)
    after = tuned.folded().predict_proba(x).argmax(1)
    assert (after == before).mean() > 0.9  # ...from the shipped network, not from scratch
    # The shipped model itself is untouched.
    again = KerasModel.load(SHIPPED_ARTIFACTS / "cnn.keras", REGISTRY["cnn"])
    assert all(np.array_equal(a, b) for a, b in zip(all_weights(again.network),
                                                     all_weights(shipped.network)))


# ---------------------------------------------------------------------------------------
# Precise BatchNorm and the stop flag (Train live)
# ---------------------------------------------------------------------------------------

SMALL_CNN = CNNConfig(filters=(4, 8), dense=16, dropout=0.25, bn_momentum=0.9)


def bn_stats(net) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(l.moving_mean.copy(), l.moving_var.copy()) for l in net.of_kind(BatchNormalization)]


def batch_statistics(net, x: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each BatchNorm's batch mean and biased variance in one training-mode pass over all
    of ``x`` (dropout off)."""
    h, out = x, []
    for layer in net.layers:
        h, cache = layer.forward(h, Context(train=True))
        if isinstance(layer, BatchNormalization):
            out.append(tuple(np.asarray(s, np.float64) for s in cache[2:]))
    return out


def test_precise_batchnorm_sets_each_layers_population_statistics():
    net = build_net(SMALL_CNN, seed=3)
    rng = np.random.default_rng(0)
    x = rng.random((40, 28, 28, 1), np.float32)
    params = [p.copy() for p in net.params()]
    assert all(np.all(m == 0) and np.all(v == 1) for m, v in bn_stats(net))

    # One batch of all the images: exactly the batch statistics of a training-mode pass.
    assert net.precise_batchnorm(x, batch_size=40) == 40
    whole = batch_statistics(net, x)
    assert len(whole) == 4
    for (m, v), (bm, bv) in zip(bn_stats(net), whole):
        np.testing.assert_allclose(m, bm, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(v, bv, rtol=1e-5, atol=1e-6)

    # In batches (10, 10, 10, 10): the first BatchNorm's input does not depend on the
    # batching, so its pooled mean and variance are still the whole set's; the deeper ones
    # see the layers above normalised batch by batch, as in training.
    net.precise_batchnorm(x, batch_size=10)
    (m, v), *deeper = bn_stats(net)
    np.testing.assert_allclose(m, whole[0][0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(v, whole[0][1], rtol=1e-4, atol=1e-6)
    assert any(not np.allclose(dv, wv, rtol=1e-4) for (_, dv), (_, wv) in zip(deeper, whole[1:]))
    # uint8 images give the same as their floats; the trainable weights never move.
    net.precise_batchnorm((x[..., 0] * 255).round().astype(np.uint8), batch_size=40)
    again = batch_statistics(net, np.round(x * 255) / 255)
    np.testing.assert_allclose(bn_stats(net)[0][1], again[0][1], rtol=1e-4)
    assert all(np.array_equal(a, b) for a, b in zip(params, net.params()))
    # No BatchNorm, nothing run.
    assert build_net(SMALL[0]).precise_batchnorm(x, 10) == 0


def test_one_epoch_on_1000_images_gives_a_sensible_cnn():
    """Train live's "1,000 images, 1 epoch" CNN (batch 128: 8 steps). Its moving statistics
    (momentum 0.9) move 1 - 0.9^8 = 57% of the way in 8 steps, from 0 and 1, while the
    weights have learnt: validation at chance without the re-estimate, ~80% with it."""
    data = real_data()
    cfg = TrainConfig(epochs=1, batch_size=128, lr=3e-3, n_train=1000, augment=NONE)
    result = train_network(data, cfg, REGISTRY["cnn"].live_arch)
    (log,) = result.history
    assert log.val_accuracy > 0.6
    # The validation row is the final model's.
    _, _, x_val, y_val = prepare(data, cfg)
    p = result.model.folded().predict_proba(x_val)
    assert float((p.argmax(1) == y_val).mean()) == log.val_accuracy


def test_a_stopped_run_ends_with_re_estimated_statistics(tiny_dataset):
    stop = StopFlag()
    cfg = tiny_train_config(epochs=5, batch_size=16)

    def callback(event, info):
        if event == "batch" and info["step"] >= 1:
            stop.set()

    result = train_network(tiny_dataset, cfg, SMALL_CNN, callback=callback, stop=stop)
    assert result.stopped_early and len(result.history) == 1
    net = result.model
    kept = bn_stats(net)
    # The training-mode pass does not read the moving statistics: re-estimating again over
    # the same images gives what the stopped run ended with.
    x, _, x_val, y_val = prepare(tiny_dataset, cfg, as_float=False)
    net.precise_batchnorm(precise_bn_sample(x, cfg, DEFAULT_ENGINE), cfg.batch_size)
    for (m, v), (km, kv) in zip(bn_stats(net), kept):
        np.testing.assert_allclose(m, km, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(v, kv, rtol=1e-6, atol=1e-7)
    assert not all(np.allclose(v, 1.0, atol=0.2) for _, v in kept)  # not the moving averages
    p = net.folded().predict_proba(x_val)
    assert float((p.argmax(1) == y_val).mean()) == result.history[-1].val_accuracy


def test_without_precise_batchnorm_the_moving_averages_stay(tiny_dataset):
    """``bn_images=0`` keeps the moving averages; the same seed's default run ends with
    them re-estimated, and its trainable weights are the same (precise BN never moves
    them)."""
    cfg = tiny_train_config(epochs=1, batch_size=64)
    averaged = train_network(tiny_dataset, cfg, SMALL_CNN, engine=EngineConfig(bn_images=0)).model
    precise = train_network(tiny_dataset, cfg, SMALL_CNN).model
    assert all(np.array_equal(a, b) for a, b in zip(averaged.params(), precise.params()))
    assert not any(np.allclose(a[1], b[1], rtol=1e-3)
                   for a, b in zip(bn_stats(averaged), bn_stats(precise)))
    x = prepare(tiny_dataset, cfg, as_float=False)[0]
    averaged.precise_batchnorm(precise_bn_sample(x, cfg, DEFAULT_ENGINE), cfg.batch_size)
    for (m, v), (pm, pv) in zip(bn_stats(averaged), bn_stats(precise)):
        np.testing.assert_allclose(m, pm, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(v, pv, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------------------------------
# The app's worker
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["dense", "cnn"])
def test_the_worker_trains_keras_models_without_tensorflow(tiny_dataset, name,
                                                           worker_payloads):
    from mnist_core import worker
    payloads = worker_payloads
    events = []
    spec = REGISTRY[name]
    record = worker.train_in_worker(name, tiny_dataset, train_cfg=tiny_train_config(),
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
    from mnist_core import worker
    from mnist_core.classroom import finetune
    payloads = worker_payloads
    shipped = KerasModel.load(SHIPPED_ARTIFACTS / "dense.keras", REGISTRY["dense"])
    data = gallery_dataset()
    record = worker.train_in_worker(
        "dense", data, arch=finetune.warm_arch(shipped),
        train_cfg=tiny_train_config(epochs=1, batch_size=64, lr=1e-4, n_val=60))
    assert payloads[0]["imported"] == []
    x = to_float(data.x_test)
    agree = (record.model.predict_proba(x).argmax(1) == shipped.predict_proba(x).argmax(1))
    assert agree.mean() > 0.9 and record.model.to_bytes() != shipped.to_bytes()
