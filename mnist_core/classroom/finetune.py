"""Teaching the models a class's handwriting: the class's digits split by writer (some
writers train, the others only measure), mixed with MNIST replay so MNIST is not forgotten,
and the before/after table on the held-out writers and on the MNIST test set.

Images are ``(N, 28, 28) uint8 in [0, 255]`` as :mod:`mnist_core.datasets.data` keeps them; the
training set this builds is a :class:`~mnist_core.datasets.data.Dataset` that
:func:`mnist_core.worker.train_in_worker` takes as it is (its test split is the held-out
writers, so the worker's own scoring already measures them).

This module never imports streamlit or TensorFlow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

from ..models.architectures import Architecture, CNNConfig, DenseConfig, NumpyConfig
from ..training.augment import NONE
from ..datasets.data import Dataset, to_float
from ..models.model import Model
from ..artifacts.registry import REGISTRY
from ..training.config import TrainConfig
from ..models.views import predict_views


@dataclass(frozen=True)
class FinetuneConfig:
    """How a class's digits are split and mixed with MNIST."""

    held_out_share: float = 0.3   # share of writers kept out of training, to measure on
    min_writers: int = 2          # fewer cannot be split by writer
    replay: int = 6000            # MNIST training images mixed in, so MNIST is not forgotten
    class_repeats: int = 8        # each class digit seen this many times per epoch: a class
                                  # has tens to hundreds of digits beside thousands of replay
    seed: int = 0                 # which writers are held out, which MNIST images replayed
    lr_scale: float = 0.1         # fine-tuning steps are this fraction of training's: the
                                  # shipped weights are nudged, not thrown away
    val_share: int = 5            # one in this many training images validates (and fits
                                  # the taught model's temperature)


DEFAULT = FinetuneConfig()


class NotEnoughWriters(ValueError):
    """The class has too few writers to keep some out of training."""


@dataclass(frozen=True)
class WriterSplit:
    """Which digits train and which measure; ``train`` and ``held_out`` are index arrays
    into the class's digits, never sharing a writer."""

    train: np.ndarray
    held_out: np.ndarray
    train_writers: tuple[str, ...]
    held_out_writers: tuple[str, ...]


def split_by_writer(writers: Sequence[str], cfg: FinetuneConfig = DEFAULT) -> WriterSplit:
    """Whole writers to each side: about ``held_out_share`` of them held out (at least one,
    never all), chosen by a seeded shuffle of the sorted names so the split is repeatable.
    Raises :class:`NotEnoughWriters` below ``min_writers`` writers."""
    names = sorted(set(writers))
    if len(names) < max(2, cfg.min_writers):
        raise NotEnoughWriters(f"Teaching needs digits from at least {max(2, cfg.min_writers)} "
                               f"writers (some train, the others measure); this class has "
                               f"{len(names)}.")
    order = np.random.default_rng(cfg.seed).permutation(len(names))
    k = min(len(names) - 1, max(1, round(cfg.held_out_share * len(names))))
    held = {names[i] for i in order[:k]}
    w = np.asarray(list(writers), dtype=object)
    is_held = np.array([x in held for x in w], bool)
    return WriterSplit(np.flatnonzero(~is_held), np.flatnonzero(is_held),
                       tuple(sorted(set(names) - held)), tuple(sorted(held)))


def training_set(images: np.ndarray, labels: np.ndarray, split: WriterSplit, mnist: Dataset,
                 cfg: FinetuneConfig = DEFAULT) -> Dataset:
    """The class's training writers (each digit ``class_repeats`` times) plus ``replay``
    MNIST training images, shuffled; test split = the held-out writers' digits.

    ``images``: ``(N, 28, 28) uint8``; ``labels``: ``(N,) uint8 in [0, 9]``."""
    rng = np.random.default_rng(cfg.seed)
    replay = rng.choice(len(mnist.x_train), min(cfg.replay, len(mnist.x_train)), replace=False)
    x = np.concatenate([np.repeat(images[split.train], cfg.class_repeats, axis=0),
                        mnist.x_train[replay]])
    y = np.concatenate([np.repeat(labels[split.train], cfg.class_repeats),
                        mnist.y_train[replay]])
    order = rng.permutation(len(x))
    return Dataset(mnist.name, mnist.class_names, x[order], y[order].astype(np.uint8),
                   images[split.held_out], labels[split.held_out].astype(np.uint8),
                   f"class digits ({len(split.train_writers)} writers) + {len(replay)} "
                   f"MNIST replay")


def train_config(name: str, epochs: int, n_images: int, cfg: FinetuneConfig = DEFAULT
                 ) -> TrainConfig:
    """How registry model ``name`` is taught: its shipped training config for ``epochs``
    over all ``n_images`` of the training set (:func:`training_set`), at ``lr_scale`` x its
    rate, with no augmentation and no writers' renderings (the class's digits are the real
    writing), ``1 / val_share`` of the images validating."""
    base = REGISTRY[name].train
    return replace(base, epochs=epochs, augment=NONE, writers_share=0.0, n_train=None,
                   lr=base.lr * cfg.lr_scale, n_val=max(1, n_images // cfg.val_share))


def start_arch(name: str, models: Mapping[str, Model]) -> Architecture:
    """Where teaching model ``name`` starts: the shipped network's weights when ``models``
    has it (:func:`warm_arch`), else Train live's short architecture, fresh."""
    warm = warm_arch(models[name]) if name in models else None
    return warm or REGISTRY[name].live_arch


def accuracy(model: Model, x: np.ndarray, y: np.ndarray) -> float:
    """How often ``model`` reads ``x`` (``(N, 28, 28) uint8``) as ``y``, read as the app
    reads a digit (with its views); NaN for no images."""
    if not len(x):
        return float("nan")
    p = predict_views({"m": model}, to_float(x))["m"]
    return float((p.argmax(1) == np.asarray(y)).mean())


def before_after(before: Mapping[str, Model], after: Mapping[str, Model],
                 held_x: np.ndarray, held_y: np.ndarray, mnist_x: np.ndarray,
                 mnist_y: np.ndarray) -> list[dict]:
    """One row per model in ``after``: its accuracy and ``before[name]``'s on the held-out
    writers and on the MNIST test images."""
    rows = []
    for name, new in after.items():
        old = before.get(name)
        rows.append({
            "model": name,
            "held_out_before": accuracy(old, held_x, held_y) if old else float("nan"),
            "held_out_after": accuracy(new, held_x, held_y),
            "mnist_before": accuracy(old, mnist_x, mnist_y) if old else float("nan"),
            "mnist_after": accuracy(new, mnist_x, mnist_y),
        })
    return rows


# ---------------------------------------------------------------------------------------
# Starting from the shipped weights
# ---------------------------------------------------------------------------------------
# These configs are the shipped architecture plus its trained file, and start training from
# that trained network instead of a fresh one (models.architectures.build_net reads the
# ``weights`` field): the worker then fine-tunes it in NumPy, with no change to the
# training code and no TensorFlow. Module-level classes, so the worker can unpickle them.

@dataclass(frozen=True)
class WarmNumpy(NumpyConfig):
    """:class:`NumpyConfig` starting from a trained ``.npz`` file."""

    weights: bytes = b""      # the model's file (``Model.to_bytes``)


@dataclass(frozen=True)
class WarmDense(DenseConfig):
    """:class:`DenseConfig` starting from a trained ``.keras`` file."""

    weights: bytes = b""      # the model's .keras file (``Model.to_bytes``)


@dataclass(frozen=True)
class WarmCnn(CNNConfig):
    """:class:`CNNConfig` starting from a trained ``.keras`` file, as :class:`WarmDense`."""

    weights: bytes = b""


_WARM = {NumpyConfig: WarmNumpy, DenseConfig: WarmDense, CNNConfig: WarmCnn}


def warm_arch(model: Model):
    """``model``'s architecture config, building ``model``'s trained network (see above);
    None when the model's architecture is not one of numpy, dense, cnn."""
    arch = getattr(model, "arch", None)
    warm = _WARM.get(type(arch))
    if warm is None:
        return None
    return warm(**{k: v for k, v in asdict(arch).items()}, weights=model.to_bytes())
