"""Weight averaging over the last epochs (TrainConfig.average_epochs): the kept network is
the mean of the epoch-end snapshots, in both training loops, and Keras's BatchNorm
statistics are re-estimated for it."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_images, tiny_numpy_arch, tiny_train_config

from mnist_core.datasets.data import to_float
from mnist_core.models.architectures import CNNConfig
from mnist_core.training.average import WeightAverage, keras_precise_batchnorm
from mnist_core.training.feed import prepare
from mnist_core.training.train import DEFAULT_ENGINE, fit, precise_bn_sample, train_network


def test_weight_average_takes_the_last_epochs_and_keeps_dtypes():
    avg = WeightAverage(tiny_train_config(epochs=5, average_epochs=3))
    assert [avg.wants(e) for e in range(5)] == [False, False, True, True, True]
    for k in (1.0, 2.0, 6.0):
        avg.add([np.full((2, 3), k, np.float32), np.full(4, 10 * k, np.float32)])
    mean = avg.mean()
    assert mean[0].dtype == np.float32 and mean[0].shape == (2, 3)
    np.testing.assert_allclose(mean[0], 3.0)
    np.testing.assert_allclose(mean[1], 30.0)
    # 0 or 1 epoch: nothing averaged, whatever the epoch
    assert not any(WeightAverage(tiny_train_config(epochs=5, average_epochs=1)).wants(e)
                   for e in range(5))
    with pytest.raises(ValueError):
        WeightAverage(tiny_train_config()).mean()


def _snapshots(epochs_seen: list):
    """A callback keeping a copy of the trainable weights at the end of every epoch."""
    def callback(event, info):
        if event == "epoch":
            epochs_seen.append([np.array(w) for w in _weights(info["model"])])
    return callback


def _weights(net) -> list[np.ndarray]:
    if hasattr(net, "params"):
        return net.params()
    return [np.asarray(w) for w in net.trainable_weights]


def test_numpy_loop_keeps_the_mean_of_the_last_epochs(tiny_dataset):
    cfg = tiny_train_config(epochs=4, average_epochs=3)
    seen: list = []
    result = train_network(tiny_dataset, cfg, tiny_numpy_arch(), _snapshots(seen))
    # The last epoch's event already carries the averaged network: its own end weights
    # are the unaveraged network's.
    last = _weights(result.unaveraged)
    for kept, a, b, c in zip(_weights(result.model), seen[1], seen[2], last, strict=True):
        np.testing.assert_allclose(kept, (a + b + c) / 3, rtol=1e-5, atol=1e-6)
    assert not np.allclose(_weights(result.model)[0], last[0])
    # without averaging there is nothing to compare with
    assert train_network(tiny_dataset, tiny_train_config(epochs=2), tiny_numpy_arch()).unaveraged is None


def test_numpy_loop_reestimates_batchnorm_for_the_averaged_weights(tiny_dataset):
    arch = CNNConfig(filters=(4, 8), dense=16, dropout=0.0, bn_momentum=0.9)
    cfg = tiny_train_config(epochs=3, average_epochs=2, n_train=200)
    result = train_network(tiny_dataset, cfg, arch)
    kept, before = result.model, result.unaveraged
    reference = kept.copy()
    x = precise_bn_sample(prepare(tiny_dataset, cfg, as_float=False)[0], cfg, DEFAULT_ENGINE)
    reference.precise_batchnorm(x, cfg.batch_size)
    for layer, ref, old in zip(kept.layers, reference.layers, before.layers):
        if hasattr(layer, "moving_mean"):
            # the kept statistics are the averaged weights' own, not the last epoch's
            assert not np.allclose(layer.moving_mean, old.moving_mean)
            np.testing.assert_allclose(layer.moving_mean, ref.moving_mean, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(layer.moving_var, ref.moving_var, rtol=1e-5, atol=1e-6)


def test_keras_loop_keeps_the_mean_of_the_last_epochs(tiny_dataset):
    cfg = tiny_train_config(epochs=3, average_epochs=2)
    seen: list = []
    result = fit(tiny_dataset, cfg, CNNConfig(filters=(4, 8), dense=16, dropout=0.25,
                                               bn_momentum=0.99), _snapshots(seen))
    before = [np.asarray(w) for w in result.unaveraged.trainable_weights]
    kept = [np.asarray(w) for w in result.model.trainable_weights]
    for k, a, b in zip(kept, seen[1], before, strict=True):
        np.testing.assert_allclose(k, (a + b) / 2, rtol=1e-5, atol=1e-6)
    # both answer; the averaged one is a network of its own
    x = to_float(tiny_dataset.x_test[:50])[..., None]
    p_kept, p_before = result.model.predict(x, verbose=0), result.unaveraged.predict(x, verbose=0)
    assert p_kept.shape == p_before.shape == (50, 10)
    assert not np.allclose(p_kept, p_before)


def test_keras_precise_batchnorm_sets_the_mean_of_batch_statistics():
    import keras
    dense = keras.layers.Dense(6)
    bn = keras.layers.BatchNormalization(momentum=0.99)
    drop = keras.layers.Dropout(0.5)
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), drop, dense, bn])
    x, _ = make_images(96, seed=3)
    x = to_float(x)
    assert keras_precise_batchnorm(model, x, batch_size=32) == 96
    # the BatchNorm's input, batch by batch, with dropout off
    h = np.asarray(dense(x.reshape(96, -1)))
    batches = [h[i:i + 32] for i in range(0, 96, 32)]
    np.testing.assert_allclose(np.asarray(bn.moving_mean),
                               np.mean([b.mean(0) for b in batches], 0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(bn.moving_variance),
                               np.mean([b.var(0) for b in batches], 0), rtol=1e-3, atol=1e-5)
    assert bn.momentum == 0.99 and drop.rate == 0.5   # put back
    no_bn = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(3)])
    assert keras_precise_batchnorm(no_bn, x, 32) == 0


def test_train_writes_the_last_epoch_beside_the_averaged_model(tiny_dataset, tmp_path):
    from mnist_core.artifacts.files import load_models
    from mnist_core.package import train_and_package

    cfg = tiny_train_config(epochs=3, average_epochs=2)
    trained = train_and_package(["numpy"], tiny_dataset, tmp_path / "out", train_cfg=cfg,
                                arch=tiny_numpy_arch(), last_epoch_out=tmp_path / "last")
    kept = load_models(tmp_path / "out")["numpy"]
    last = load_models(tmp_path / "last")["numpy"]
    x = to_float(tiny_dataset.x_test[:40])
    np.testing.assert_allclose(kept.predict_proba(x), trained["numpy"].model.predict_proba(x),
                               rtol=1e-5, atol=1e-6)
    assert not np.allclose(kept.predict_proba(x), last.predict_proba(x))
    # nothing averaged: nothing to compare, no folder filled
    train_and_package(["numpy"], tiny_dataset, tmp_path / "out2", train_cfg=tiny_train_config(),
                      arch=tiny_numpy_arch(), last_epoch_out=tmp_path / "none")
    assert not list((tmp_path / "none").glob("*"))
