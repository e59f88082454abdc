"""The models this project ships: one entry each, naming its builder and hyperparameters.

Adding a model is one builder (``keras_models.py``) plus one :class:`ModelSpec` here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .augment import AugmentConfig
from .train import NumpyConfig, StopFlag, TrainConfig, TrainResult, train_keras, train_numpy
from .views import ASPECT_VIEWS, DEFAULT_VIEWS, ViewConfig


@dataclass(frozen=True)
class ModelSpec:
    name: str            # key used on the command line, in artifacts and in the app
    title: str           # what the app calls it
    kind: str            # "numpy" (no TensorFlow) or "keras"
    filename: str        # weights file inside artifacts/
    train: TrainConfig   # how it is trained
    arch: object = None  # builder config (NumpyConfig, DenseConfig, CNNConfig) or None
    blurb: str = ""      # one line for the app
    views: ViewConfig = ASPECT_VIEWS  # test-time views averaged when reading real input;
                                      # the MLPs (not shift-invariant) measured worse with
                                      # turned and resized views, the convnets better


def _keras_arch(name: str):
    from . import keras_models as km
    return {"dense": km.DenseConfig(), "cnn": km.CNNConfig()}.get(name)


REGISTRY: dict[str, ModelSpec] = {
    "numpy": ModelSpec(
        "numpy", "NumPy MLP", "numpy", "numpy.npz",
        TrainConfig(epochs=15, batch_size=128, lr=1.5e-3, weight_decay=0.02),
        NumpyConfig(hidden=(800, 800), dropout=0.2),
        "Two hidden layers written from scratch in NumPy: forward, backward, Adam."),
    "dense": ModelSpec(
        "dense", "Keras dense", "keras", "dense.keras",
        TrainConfig(epochs=15, batch_size=128, lr=1e-3, weight_decay=0.02,
                    augment=AugmentConfig(hooked_nines=0.3)),
        None, "Keras multilayer perceptron: Dense + ReLU + Dropout blocks."),
    "cnn": ModelSpec(
        "cnn", "Keras CNN", "keras", "cnn.keras",
        TrainConfig(epochs=18, batch_size=128, lr=2e-3, weight_decay=0.01),
        None, "Convolutional network with BatchNorm and Dropout, trained on distorted digits.",
        DEFAULT_VIEWS),
    "lenet5": ModelSpec(
        "lenet5", "LeNet-5", "keras", "lenet5.keras",
        TrainConfig(epochs=12, batch_size=128, lr=2e-3, weight_decay=0.01),
        None, "LeCun's 1998 classic, as a reference architecture.", DEFAULT_VIEWS),
}

DEFAULT_MODELS = ("numpy", "dense", "cnn", "lenet5")


def build_keras(name: str, arch=None):
    """A fresh, untrained Keras model for registry entry ``name``."""
    from . import keras_models as km
    arch = arch if arch is not None else _keras_arch(name)
    builders = {"dense": lambda: km.build_dense(arch), "cnn": lambda: km.build_cnn(arch),
                "lenet5": km.build_lenet5}
    return builders[name]()


def train_model(name: str, data, callback=None, stop: StopFlag | None = None,
                epochs: int | None = None, train_cfg: TrainConfig | None = None,
                arch=None) -> TrainResult:
    """Train registry model ``name`` on ``data`` (a :class:`~mnist_core.data.Dataset`).

    ``epochs``/``train_cfg``/``arch`` override the shipped hyperparameters (the app's
    live training uses them).
    """
    spec = REGISTRY[name]
    cfg = train_cfg or spec.train
    if epochs is not None:
        cfg = replace(cfg, epochs=epochs)
    if spec.kind == "numpy":
        return train_numpy(data, cfg, arch or spec.arch, callback, stop)
    return train_keras(data, cfg, lambda: build_keras(name, arch), callback, stop)
