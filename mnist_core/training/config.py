"""What a training is told and what it reports: :class:`TrainConfig`, the history row
:class:`EpochLog`, :class:`TrainResult`, the :class:`StopFlag` and the learning-rate
schedule (:func:`lr_at`)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .augment import AugmentConfig
from .augment_clothing import ClothingAugment


@dataclass(frozen=True)
class TrainConfig:
    """How one model is trained (its architecture is a config in :mod:`.architectures`)."""

    epochs: int = 10               # passes over the (augmented) training split
    batch_size: int = 128          # examples per gradient step
    lr: float = 1e-3               # peak learning rate; cosine-decayed to lr_final_frac * lr
    lr_final_frac: float = 0.02    # the schedule's floor, as a fraction of lr
    warmup_epochs: float = 0.3     # linear warm-up avoids early BatchNorm/Adam blow-ups
    weight_decay: float = 1e-4     # decoupled (AdamW-style) weight decay
    label_smoothing: float = 0.05  # softer targets, better-calibrated probability bars
    augment: AugmentConfig | ClothingAugment = AugmentConfig()  # NONE to train on raw
                                   # MNIST; ClothingAugment for Fashion-MNIST
    n_val: int = 5000              # validation images carved from train (test is never used)
    n_train: int | None = None     # cap on training images (None = all); the app uses this
    writers_share: float = 0.0     # share of each epoch's images drawn from the dataset's
                                   # extra images (real writers' renderings), when it has
                                   # any; MNIST stays the majority
    average_epochs: int = 0        # the model kept is the mean of the weights the last
                                   # this-many epochs ended on (SWA, :mod:`.average`),
                                   # BatchNorm re-estimated; 0 or 1: the last epoch's own
    seed: int = 0                  # seeds weights, shuffling, augmentation and the split


@dataclass
class EpochLog:
    """One row of training history."""

    epoch: int
    loss: float
    accuracy: float
    val_loss: float
    val_accuracy: float
    seconds: float
    lr: float


@dataclass
class TrainResult:
    model: object                 # the bare network: an engine Sequential, or a keras.Model
                                  # from train_keras (Model.from_net wraps either)
    history: list[EpochLog]
    seconds: float
    stopped_early: bool = False
    cpu_seconds: float = 0.0      # CPU time of the whole process (all threads) while
                                  # training: unlike wall time, not inflated by other work
                                  # sharing the machine
    unaveraged: object = None     # when the weights were averaged (average_epochs): the
                                  # network as its last epoch left it, of model's kind, to
                                  # compare the two; None otherwise


Callback = Callable[[str, dict], None]  # (event, info): "batch" or "epoch"


@dataclass
class StopFlag:
    """Set from another thread (the app's Stop button) to end training after a batch."""

    _event: threading.Event = field(default_factory=threading.Event)

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until set or ``timeout`` seconds pass; whether it is set."""
        return self._event.wait(timeout)


def lr_at(cfg: TrainConfig, progress: float) -> float:
    """Learning rate at ``progress`` in [0, 1] of training: warm-up then cosine decay."""
    warm = cfg.warmup_epochs / max(cfg.epochs, 1)
    if progress < warm:
        return cfg.lr * (0.1 + 0.9 * progress / warm)
    t = (progress - warm) / max(1e-9, 1 - warm)
    floor = cfg.lr * cfg.lr_final_frac
    return floor + 0.5 * (cfg.lr - floor) * (1 + np.cos(np.pi * min(1.0, t)))
