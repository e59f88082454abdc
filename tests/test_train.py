"""Training loops, schedule, augmentation and the registry, on tiny synthetic data."""

from __future__ import annotations

import io
from dataclasses import replace

import cv2
import numpy as np
import pytest
from conftest import make_images, tiny_numpy_arch, tiny_train_config

from mnist_core.training.augment import NONE, AugmentConfig, augment, style_variants
from mnist_core.datasets.data import to_float
from mnist_core.engine.layers import Dense
from mnist_core.engine.network import Sequential
from mnist_core.artifacts.registry import REGISTRY, train_model
from mnist_core.training.config import EpochLog, StopFlag, TrainConfig, lr_at
from mnist_core.training.train import ProgressBar


def train_tiny(data, callback=None, stop=None, **cfg):
    return train_model("numpy", data, callback=callback, stop=stop,
                       train_cfg=tiny_train_config(**cfg), arch=tiny_numpy_arch())


# ---------------------------------------------------------------------------------------
# NumPy loop
# ---------------------------------------------------------------------------------------

def test_numpy_training_learns(tiny_numpy_result):
    history = tiny_numpy_result.history
    assert [h.epoch for h in history] == [1, 2]
    assert history[1].loss < history[0].loss
    assert history[-1].val_accuracy > 0.5  # chance is 0.1
    net = tiny_numpy_result.model
    assert isinstance(net, Sequential)
    assert [d.kernel.shape for d in net.of_kind(Dense)] == [(784, 32), (32, 10)]
    assert not tiny_numpy_result.stopped_early
    assert tiny_numpy_result.seconds >= sum(h.seconds for h in history) * 0.99


def test_callback_reports_batches_and_epochs(tiny_dataset):
    events = []
    result = train_tiny(tiny_dataset, callback=lambda e, info: events.append((e, info)),
                        epochs=1, n_train=100)
    batches = [info for e, info in events if e == "batch"]
    epochs = [info for e, info in events if e == "epoch"]
    steps = int(np.ceil(100 / 32))  # n_train caps the training images
    assert batches[-1]["step"] == batches[-1]["steps"] == steps
    assert all(0 <= b["accuracy"] <= 1 and b["loss"] > 0 for b in batches)
    assert len(epochs) == 1 and epochs[0]["log"] is result.history[0]
    assert epochs[0]["model"] is result.model


def test_stop_flag_ends_training_after_a_batch(tiny_dataset):
    stop = StopFlag()
    seen = []

    def on_event(event, info):
        seen.append(event)
        if event == "batch":
            stop.set()

    result = train_tiny(tiny_dataset, callback=on_event, stop=stop, epochs=5)
    assert result.stopped_early
    assert len(result.history) == 1
    assert seen.count("batch") == 1
    assert isinstance(result.history[0], EpochLog)


def test_same_seed_same_training(tiny_dataset):
    cfg = dict(epochs=1, n_train=120, augment=AugmentConfig(), seed=3)
    arch = replace(tiny_numpy_arch(), dropout=0.2)  # exercise every random stream
    runs = [train_model("numpy", tiny_dataset, train_cfg=tiny_train_config(**cfg), arch=arch)
            for _ in range(2)]
    for a, b in zip(runs[0].model.params(), runs[1].model.params()):
        np.testing.assert_array_equal(a, b)
    assert runs[0].history[0].loss == runs[1].history[0].loss
    other = train_model("numpy", tiny_dataset, arch=arch,
                        train_cfg=tiny_train_config(**{**cfg, "seed": 4}))
    assert not np.array_equal(other.model.params()[0], runs[0].model.params()[0])


def test_registry_epochs_override(tiny_dataset):
    result = train_model("numpy", tiny_dataset, epochs=1, arch=tiny_numpy_arch(),
                         train_cfg=tiny_train_config(epochs=7, n_train=64))
    assert len(result.history) == 1


def test_registry_entries_are_consistent():
    assert set(REGISTRY) >= {"numpy", "dense", "cnn", "lenet5"}
    for name, spec in REGISTRY.items():
        assert spec.name == name
        assert spec.kind in ("numpy", "keras")
        assert spec.filename.endswith(".npz" if spec.kind == "numpy" else ".keras")


# ---------------------------------------------------------------------------------------
# Schedule and progress output
# ---------------------------------------------------------------------------------------

def test_lr_schedule_warmup_then_cosine():
    cfg = TrainConfig(epochs=10, lr=1e-2, lr_final_frac=0.02, warmup_epochs=1.0)
    assert lr_at(cfg, 0.0) == pytest.approx(1e-3)  # warm-up starts at a tenth
    assert lr_at(cfg, 0.05) == pytest.approx(1e-3 + 0.9e-2 * 0.5)
    assert lr_at(cfg, 0.1) == pytest.approx(1e-2)  # peak at the end of warm-up
    assert lr_at(cfg, 0.55) == pytest.approx((1e-2 + 2e-4) / 2)  # cosine midpoint
    assert lr_at(cfg, 1.0) == pytest.approx(2e-4)  # the floor
    warm = [lr_at(cfg, p) for p in np.linspace(0, 0.1, 11)]
    decay = [lr_at(cfg, p) for p in np.linspace(0.1, 1.0, 50)]
    assert np.all(np.diff(warm) > 0) and np.all(np.diff(decay) < 0)


def test_progress_bar_prints_epoch_line():
    stream = io.StringIO()
    bar = ProgressBar("numpy", 3, stream=stream)
    bar("batch", dict(epoch=0, step=5, steps=10, loss=0.5, accuracy=0.9, epoch_start=0.0))
    bar("epoch", dict(log=EpochLog(1, 0.5, 0.9, 0.4, 0.95, 1.5, 1e-3)))
    text = stream.getvalue()
    assert "numpy 1/3" in text and "val_acc 0.9500" in text and text.endswith("\n")


# ---------------------------------------------------------------------------------------
# Augmentation
# ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def images():
    return to_float(make_images(12, seed=8)[0])


def test_augment_keeps_shape_dtype_range(images):
    out = augment(images, np.random.default_rng(0))
    assert out.shape == images.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    assert not np.allclose(out, images)
    assert out.sum() > 0.3 * images.sum()  # distorted, not erased


def test_augment_is_deterministic_for_a_seeded_rng(images):
    a = augment(images, np.random.default_rng(7))
    b = augment(images, np.random.default_rng(7))
    c = augment(images, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_augment_none_is_identity(images):
    np.testing.assert_allclose(augment(images, np.random.default_rng(0), NONE), images,
                               atol=1e-6)


def _nine() -> np.ndarray:
    """A 9 as MNIST writes it: a loop, and a straight stem down its right side."""
    img = np.zeros((28, 28), np.float32)
    cv2.circle(img, (14, 9), 5, 1.0, 2)
    cv2.line(img, (19, 9), (18, 24), 1.0, 2)
    return img


def test_hooked_nines_get_a_tail_turning_left_and_nothing_else_changes():
    nines = np.stack([_nine()] * 6)
    labels = np.array([9, 9, 9, 9, 3, 3])
    out = style_variants(nines, labels, np.random.default_rng(0), rate=1.0, hooked_nines=1.0)
    np.testing.assert_array_equal(out[4:], nines[4:])           # not a 9: untouched
    def bottom_span(img):
        ys, xs = np.nonzero(img > 0.5)
        bottom = xs[ys >= ys.max() - 2]
        return bottom.max() - bottom.min(), bottom.min()

    stem_span, stem_left = bottom_span(nines[0])
    for img in out[:4]:
        # The lowest ink now runs left from the stem's foot: a tail, not a stem's end.
        span, left = bottom_span(img)
        assert span >= stem_span + 2 and left < stem_left - 1
    # Off (the default), the 9s are left alone and the draws for other styles unchanged.
    plain = style_variants(nines, labels, np.random.default_rng(0), rate=1.0)
    np.testing.assert_array_equal(plain, nines)


def test_some_zeros_get_a_slash_through_them_and_other_digits_do_not():
    zero = np.zeros((28, 28), np.float32)
    cv2.ellipse(zero, (14, 14), (6, 9), 0, 0, 360, 1.0, 2)
    zeros, labels = np.stack([zero] * 40), np.array([0] * 20 + [3] * 20)
    out = style_variants(zeros, labels, np.random.default_rng(0), rate=1.0)
    np.testing.assert_array_equal(out[20:], zeros[20:])
    slashed = [img for img in out[:20] if not np.array_equal(img, zero)]
    assert 0 < len(slashed) < 20                 # some, at STYLE_RATES["slash"]
    for img in slashed:
        # Ink in the ring's empty middle, on the rising diagonal: a slash through it.
        assert img[12:17, 12:17].max() > 0.5
    assert style_variants(zeros, labels, np.random.default_rng(0), rate=0.0)[:20].tolist() == \
        zeros[:20].tolist()


# ---------------------------------------------------------------------------------------
# Keras loop
# ---------------------------------------------------------------------------------------

def test_keras_training_and_fast_predict(tiny_keras_result, tiny_dataset):
    from mnist_core.models.keras_tf import fast_predict_fn

    history = tiny_keras_result.history
    assert len(history) == 1 and history[0].val_accuracy > 0.3
    assert np.isfinite(history[0].loss) and 0 < history[0].lr <= 3e-3
    model = tiny_keras_result.model
    x = to_float(tiny_dataset.x_test[:50])
    fast = fast_predict_fn(model)(x)
    slow = model.predict(x[..., None], verbose=0)
    assert fast.shape == (50, 10) and fast.dtype == np.float32
    np.testing.assert_allclose(fast, slow, atol=1e-5)
    np.testing.assert_allclose(fast.sum(axis=1), 1, atol=1e-5)
    # Above the internal batch size the fast path splits and still agrees.
    many = to_float(np.repeat(tiny_dataset.x_test[:2], 1100, axis=0))
    np.testing.assert_allclose(fast_predict_fn(model)(many)[[0, 1, -2, -1]],
                               np.repeat(fast[:2], 2, axis=0), atol=1e-5)


@pytest.mark.parametrize("n_images, n_val, n_train, expect_val, expect_train", [
    (600, 5000, None, 120, 480),      # a small CSV: a fifth for validation
    (600, 100, None, 100, 500),
    (600, 100, 50, 100, 50),          # the cap on training images
    (3, 5000, None, 1, 2),            # never an empty validation split
])
def test_the_training_split_is_sized_in_one_place(n_images, n_val, n_train, expect_val,
                                                  expect_train):
    """What the app tells a learner it trains on (training_size) is what prepare() gives."""
    from conftest import make_dataset

    from mnist_core.training.feed import prepare, training_size, validation_size
    cfg = TrainConfig(n_val=n_val, n_train=n_train)
    data = make_dataset(n_train=n_images, n_test=10)
    x, _, x_val, _ = prepare(data, cfg)
    assert (validation_size(n_images, cfg), training_size(n_images, cfg)) == \
        (expect_val, expect_train) == (len(x_val), len(x))
