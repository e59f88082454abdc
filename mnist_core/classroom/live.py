"""Live architectures from the registry: what Train live's widgets offer, and the
architecture and training config a choice of them makes.

A live run starts from the registry's short-run architecture (``ModelSpec.live_arch``)
and changes only what the widgets set (:func:`live_run`); everything else (dropout,
BatchNorm momentum...) stays as the registry has it. The widgets speak in strings ("128,
128" hidden units): :func:`spelled` and :func:`numbers` turn tuples into those and back.

This module never imports streamlit or TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..models.architectures import Architecture
from ..training.augment import NONE, AugmentConfig
from ..artifacts.registry import REGISTRY
from ..training.config import TrainConfig

KINDS = ("numpy", "dense", "cnn")                 # the models a live run can train
MLPS = ("numpy", "dense")                         # set by hidden layers; the rest by filters
HIDDEN = ("64", "128", "256", "512", "128, 128", "256, 256", "512, 512")  # units per layer
FILTERS = ("8, 16", "16, 32", "32, 64")           # the CNN's two conv blocks' channels
DENSE_UNITS = (64, 128, 256)                      # the CNN classifier's hidden layer
RATES = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0)   # learning rates offered
# Each optimizer's starting rate: plain gradient descent needs a far bigger step than Adam.
DEFAULT_RATE = {"adam": 3e-3, "sgd": 1.0}
BATCH_SIZES = (16, 32, 64, 128, 256, 512)


@dataclass(frozen=True)
class LiveSettings:
    """What Train live's widgets chose (the defaults: the widgets' own)."""

    hidden: str = "128"          # MLPs: units per hidden layer, one of HIDDEN
    filters: str = "16, 32"      # CNN: channels of its two conv blocks, one of FILTERS
    dense: int = 128             # CNN: units of the classifier's hidden layer
    activation: str = "relu"     # NumPy MLP only: "relu" or the notebooks' "sigmoid"
    optimizer: str = "adam"      # NumPy MLP only: "adam" or plain gradient descent "sgd"
    lr: float = DEFAULT_RATE["adam"]   # peak learning rate, one of RATES
    epochs: int = 3              # passes over the training images
    batch_size: int = 128        # images per step, one of BATCH_SIZES
    n_train: int = 10_000        # training images (the page caps them)
    augment: bool = False        # random tilts, slants and stroke widths while training


@dataclass(frozen=True)
class LiveRun:
    """One live training, ready for :func:`mnist_core.worker.train_in_worker`."""

    arch: Architecture           # the registry's live architecture with the widgets' values
    train: TrainConfig           # epochs, batch, rate, images and augmentation chosen
    settings: dict               # what the user chose, in words, for the results


def spelled(values: tuple[int, ...]) -> str:
    """``(128, 128)`` -> ``"128, 128"``, as the widgets show layer sizes."""
    return ", ".join(str(v) for v in values)


def numbers(text: str) -> tuple[int, ...]:
    """``"128, 128"`` -> ``(128, 128)``."""
    return tuple(int(t) for t in text.split(","))


def starting_settings(name: str) -> LiveSettings:
    """The widgets' starting values for model ``name``: its registry live architecture
    (hidden layers, or filters and classifier units), the rest as :class:`LiveSettings`."""
    arch = REGISTRY[name].live_arch
    if name in MLPS:
        return LiveSettings(hidden=spelled(arch.hidden))
    return LiveSettings(filters=spelled(arch.filters), dense=arch.dense)


def live_run(name: str, chosen: LiveSettings) -> LiveRun:
    """Model ``name`` (one of :data:`KINDS`) as the widgets set it: the registry's live
    architecture with their layer sizes (and, for the NumPy MLP, its activation and
    optimizer), and a training config of their epochs, batch size, rate, images and
    augmentation. Raises ``KeyError`` for a model Train live does not offer."""
    if name not in KINDS:
        raise KeyError(f"{name!r} is not trained live; choose one of {', '.join(KINDS)}")
    arch = REGISTRY[name].live_arch
    if name in MLPS:
        settings: dict = {"hidden": chosen.hidden}
        arch = replace(arch, hidden=numbers(chosen.hidden))
    else:
        settings = {"filters": chosen.filters, "dense": chosen.dense}
        arch = replace(arch, filters=numbers(chosen.filters), dense=chosen.dense)
    if name == "numpy":
        arch = replace(arch, activation=chosen.activation, optimizer=chosen.optimizer)
        settings.update(activation=chosen.activation, optimizer=chosen.optimizer)
    settings.update(lr=chosen.lr, epochs=chosen.epochs, batch_size=chosen.batch_size,
                    n_train=chosen.n_train, augment=chosen.augment)
    train = TrainConfig(epochs=chosen.epochs, batch_size=chosen.batch_size, lr=chosen.lr,
                        n_train=chosen.n_train,
                        augment=AugmentConfig() if chosen.augment else NONE)
    return LiveRun(arch, train, settings)
