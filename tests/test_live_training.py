"""Short Train live runs of the NumPy engine (mnist_core/keras_numpy_train.py): BatchNorm's
moving statistics re-estimated over the training images after training ("precise BN"),
after a stop too, before the last validation row. No TensorFlow here."""

from __future__ import annotations

import numpy as np
from conftest import real_mnist_dir, tiny_train_config

from mnist_core.models.architectures import CNNConfig
from mnist_core.training.augment import NONE
from mnist_core.datasets.data import load_dataset
from mnist_core.keras_numpy_train import (DEFAULT_ENGINE, _precise_bn_sample, cnn_builder,
                                          layer_forward, precise_batchnorm, train_keras_numpy)
from mnist_core.artifacts.registry import REGISTRY
from mnist_core.training.train import StopFlag, TrainConfig, _prepare

SMALL_CNN = CNNConfig(filters=(4, 8), dense=16, dropout=0.25, bn_momentum=0.9)


def bn_stats(net) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(l.weights[-2].copy(), l.weights[-1].copy()) for l in net.layers
            if l.kind == "BatchNormalization"]


def batch_statistics(net, x: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each BatchNorm's batch mean and biased variance in one training-mode pass over all
    of ``x`` (dropout off)."""
    h, out = x, []
    for layer in net.layers:
        h, cache = layer_forward(layer, h, None)
        if layer.kind == "BatchNormalization":
            out.append(tuple(np.asarray(s, np.float64) for s in cache.extra[2:]))
    return out


def test_precise_batchnorm_sets_each_layers_population_statistics():
    net = cnn_builder(SMALL_CNN).build("cnn", seed=3)
    rng = np.random.default_rng(0)
    x = rng.random((40, 28, 28, 1), np.float32)
    params = [p.copy() for p in net.params()]
    assert all(np.all(m == 0) and np.all(v == 1) for m, v in bn_stats(net))

    # One batch of all the images: exactly the batch statistics of a training-mode pass.
    assert precise_batchnorm(net, x, batch_size=40) == 40
    whole = batch_statistics(net, x)
    assert len(whole) == 4
    for (m, v), (bm, bv) in zip(bn_stats(net), whole):
        np.testing.assert_allclose(m, bm, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(v, bv, rtol=1e-5, atol=1e-6)

    # In batches (10, 10, 10, 10): the first BatchNorm's input does not depend on the
    # batching, so its pooled mean and variance are still the whole set's; the deeper ones
    # see the layers above normalised batch by batch, as in training.
    precise_batchnorm(net, x, batch_size=10)
    (m, v), *deeper = bn_stats(net)
    np.testing.assert_allclose(m, whole[0][0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(v, whole[0][1], rtol=1e-4, atol=1e-6)
    assert any(not np.allclose(dv, wv, rtol=1e-4) for (_, dv), (_, wv) in zip(deeper, whole[1:]))
    # uint8 images give the same as their floats; the trainable weights never move.
    precise_batchnorm(net, (x[..., 0] * 255).round().astype(np.uint8), batch_size=40)
    again = batch_statistics(net, np.round(x * 255) / 255)
    np.testing.assert_allclose(bn_stats(net)[0][1], again[0][1], rtol=1e-4)
    assert all(np.array_equal(a, b) for a, b in zip(params, net.params()))


def test_one_epoch_on_1000_images_gives_a_sensible_cnn():
    """Train live's "1,000 images, 1 epoch" CNN (batch 128: 8 steps). Its moving statistics
    (momentum 0.9) move 1 - 0.9^8 = 57% of the way in 8 steps, from 0 and 1, while the
    weights have learnt: validation 11% (chance) without the re-estimate, 79% with it."""
    where = real_mnist_dir()
    assert where is not None, "real MNIST is needed ($MNIST_DATA or ../shared/data/mnist)"
    data = load_dataset(where)
    cfg = TrainConfig(epochs=1, batch_size=128, lr=3e-3, n_train=1000, augment=NONE)
    result = train_keras_numpy(data, cfg, REGISTRY["cnn"].live_arch)
    (log,) = result.history
    assert log.val_accuracy > 0.6
    # The validation row is the final model's.
    _, _, x_val, y_val = _prepare(data, cfg)
    p = result.model.predict_proba(x_val)
    assert float((p.argmax(1) == y_val).mean()) == log.val_accuracy


def test_a_stopped_run_ends_with_re_estimated_statistics(tiny_dataset):
    stop = StopFlag()
    cfg = tiny_train_config(epochs=5, batch_size=16)

    def callback(event, info):
        if event == "batch" and info["step"] >= 1:
            stop.set()

    result = train_keras_numpy(tiny_dataset, cfg, SMALL_CNN, callback=callback, stop=stop)
    assert result.stopped_early and len(result.history) == 1
    net = result.model
    kept = bn_stats(net)
    # The training-mode pass does not read the moving statistics: re-estimating again over
    # the same images gives what the stopped run ended with.
    x, _, x_val, y_val = _prepare(tiny_dataset, cfg, as_float=False)
    precise_batchnorm(net, _precise_bn_sample(x, cfg, DEFAULT_ENGINE), cfg.batch_size)
    for (m, v), (km, kv) in zip(bn_stats(net), kept):
        np.testing.assert_allclose(m, km, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(v, kv, rtol=1e-6, atol=1e-7)
    assert not all(np.allclose(v, 1.0, atol=0.2) for _, v in kept)  # not the moving averages
    p = net.predict_proba(x_val)
    assert float((p.argmax(1) == y_val).mean()) == result.history[-1].val_accuracy
