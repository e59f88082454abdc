"""The models this project ships: one entry each, with its class, architecture and training.

Adding a model is one architecture config (:mod:`mnist_core.models.architectures`: a
frozen config and its layer list) plus one :class:`ModelSpec` here. Nothing else asks which kind a model is: the
spec names its :class:`~mnist_core.models.model.Model` class once.

Each dataset has its registry (:data:`REGISTRIES`): the same four kinds under the same
names, trained its own way (:data:`REGISTRY` for MNIST's digits, :data:`FASHION_REGISTRY`
for Fashion-MNIST's clothing); :func:`registry_for` picks one by a dataset's name, as the
manifest records it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..datasets.data import canonical
from ..models.architectures import (Architecture, CNNConfig, DenseConfig, LeNet5Config,
                                    NumpyConfig, build_net)
from ..training.augment import AugmentConfig
from ..training.augment_clothing import ClothingAugment
from ..models.model import KerasModel, Model, NumpyModel
from ..training.config import StopFlag, TrainConfig, TrainResult
from ..training.train import fit
from ..models.views import ASPECT_VIEWS, DEFAULT_VIEWS, NO_VIEWS, ViewConfig


@dataclass(frozen=True)
class ModelSpec:
    name: str                  # key used on the command line, in artifacts and in the app
    title: str                 # what the app calls it
    backend: type[Model]       # the Model class that trains, runs, saves, loads and explains
                               # it: NumpyModel (no TensorFlow) or KerasModel
    train: TrainConfig         # how the shipped model is trained
    arch: Architecture         # the shipped model's full architecture
    live_arch: Architecture    # the architecture a short classroom run (Train live: a few
                               # thousand images, a few epochs) starts from; the page
                               # changes only what its widgets set
    blurb: str = ""            # one line for the app
    views: ViewConfig = ASPECT_VIEWS  # test-time views averaged when reading real input;
                                      # the MLPs (not shift-invariant) measured worse with
                                      # turned and resized views, the convnets better

    @property
    def filename(self) -> str:
        """The weights file inside ``artifacts/``."""
        return self.name + self.backend.file_ext

    @property
    def kind(self) -> str:
        """``"numpy"`` or ``"keras"`` (for messages and tests; code uses :attr:`backend`)."""
        return self.backend.kind

    def build(self, arch: Architecture | None = None) -> Model:
        """A fresh, untrained model of ``arch`` (default: the shipped architecture)."""
        arch = arch if arch is not None else self.arch
        return self.backend.from_net(build_net(arch, self.train.seed), self, arch=arch)


# Share of each training epoch drawn from real writers' renderings (handwriting-train,
# :mod:`.writers`), chosen on held-out writers (benchmarks/WRITERS_MIX.md).
WRITERS_SHARE = 0.15

REGISTRY: dict[str, ModelSpec] = {
    "numpy": ModelSpec(
        "numpy", "NumPy MLP", NumpyModel,
        TrainConfig(epochs=15, batch_size=128, lr=1.5e-3, weight_decay=0.02,
                    writers_share=WRITERS_SHARE),
        NumpyConfig(hidden=(800, 800), dropout=0.2),
        # No dropout: a short run on few images underfits rather than overfits.
        NumpyConfig(hidden=(128,), dropout=0.0),
        "Two hidden layers written from scratch in NumPy: forward, backward, Adam."),
    "dense": ModelSpec(
        "dense", "Keras dense", KerasModel,
        TrainConfig(epochs=15, batch_size=128, lr=1e-3, weight_decay=0.02,
                    augment=AugmentConfig(hooked_nines=0.3), writers_share=WRITERS_SHARE),
        DenseConfig(hidden=(1024, 1024), dropout=0.3),
        DenseConfig(hidden=(128,), dropout=0.1),
        "Keras multilayer perceptron: Dense + ReLU + Dropout blocks."),
    "cnn": ModelSpec(
        "cnn", "Keras CNN", KerasModel,
        TrainConfig(epochs=18, batch_size=128, lr=2e-3, weight_decay=0.01,
                    writers_share=WRITERS_SHARE),
        CNNConfig(filters=(32, 64), dense=256, dropout=0.25, bn_momentum=0.99),
        # BatchNorm statistics must settle within a few dozen batches.
        CNNConfig(filters=(16, 32), dense=128, dropout=0.25, bn_momentum=0.9),
        "Convolutional network with BatchNorm and Dropout, trained on distorted digits.",
        DEFAULT_VIEWS),
    "lenet5": ModelSpec(
        "lenet5", "LeNet-5", KerasModel,
        TrainConfig(epochs=12, batch_size=128, lr=2e-3, weight_decay=0.01,
                    writers_share=WRITERS_SHARE),
        LeNet5Config(), LeNet5Config(),
        "LeCun's 1998 classic, as a reference architecture.", DEFAULT_VIEWS),
}

# Fashion-MNIST's models: the same four kinds, trained on clothing with flips and small
# shifts (no digit distortions or writing styles, no real writers), read on one view (a
# digit's views guess at tilted or stretched writing; a garment photo is cropped and
# fitted as the dataset's own were). Epochs sized so the four train within 30 minutes on
# two cores (README, Dataset: Fashion-MNIST).
MLP_CLOTHING = ClothingAugment(shift_px=0)   # the MLPs' clothing augmentation: flips only
FASHION_REGISTRY: dict[str, ModelSpec] = {
    # Each is the digit model of its kind (name, title, class, classroom architecture),
    # trained its own way and read on one view.
    "numpy": replace(
        REGISTRY["numpy"],
        # An MLP is not shift-invariant, and the dataset's images are all fitted and
        # centred the same way: flips only (a pixel of shift cost the dense network a
        # point of test accuracy: 88.9%).
        train=TrainConfig(epochs=30, batch_size=128, lr=1e-3, weight_decay=0.02,
                          augment=MLP_CLOTHING),
        arch=NumpyConfig(hidden=(800, 800), dropout=0.3), views=NO_VIEWS),
    "dense": replace(
        REGISTRY["dense"],
        train=TrainConfig(epochs=30, batch_size=128, lr=1e-3, weight_decay=0.02,
                          augment=MLP_CLOTHING),
        arch=DenseConfig(hidden=(1024, 1024), dropout=0.4), views=NO_VIEWS),
    "cnn": replace(
        REGISTRY["cnn"],
        train=TrainConfig(epochs=20, batch_size=128, lr=2e-3, weight_decay=0.01,
                          augment=ClothingAugment()),
        # The digit CNN's layer list with a 128-unit classifier: 32 and 64 filters.
        arch=CNNConfig(filters=(32, 64), dense=128, dropout=0.25, bn_momentum=0.99),
        blurb="Convolutional network with BatchNorm and Dropout, trained on flipped and "
              "shifted clothing.", views=NO_VIEWS),
    "lenet5": replace(
        REGISTRY["lenet5"],
        train=TrainConfig(epochs=30, batch_size=128, lr=2e-3, weight_decay=0.01,
                          augment=ClothingAugment()),
        views=NO_VIEWS),
}

# Dataset (canonical name, as Dataset.name and manifests have it) -> its models.
REGISTRIES: dict[str, dict[str, ModelSpec]] = {"mnist": REGISTRY,
                                                "fashion-mnist": FASHION_REGISTRY}


def registry_for(dataset: str | None) -> dict[str, ModelSpec]:
    """The registry of ``dataset`` (any name :func:`~mnist_core.datasets.data.canonical`
    knows; None, as in a manifest from before datasets were recorded: MNIST's)."""
    return REGISTRIES[canonical(dataset or "mnist")]


DEFAULT_MODELS = ("numpy", "dense", "cnn", "lenet5")


def train_model(name: str, data, callback=None, stop: StopFlag | None = None,
                epochs: int | None = None, train_cfg: TrainConfig | None = None,
                arch: Architecture | None = None) -> TrainResult:
    """Train registry model ``name`` on ``data`` (a :class:`~mnist_core.datasets.data.Dataset`);
    the result holds the bare network (``Model.from_net`` wraps it).

    ``epochs``/``train_cfg``/``arch`` override the shipped hyperparameters (the app's
    live training uses them). :func:`mnist_core.package.train_and_package` also
    evaluates, packages and (optionally) writes the models.
    """
    spec = registry_for(data.name)[name]
    cfg = train_cfg or spec.train
    if epochs is not None:
        cfg = replace(cfg, epochs=epochs)
    return fit(data, cfg, arch if arch is not None else spec.arch, callback, stop)

