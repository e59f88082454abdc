"""Every architecture, defined once: a frozen config whose :meth:`layers` is the network
as one literal list of :mod:`~mnist_core.engine.layers`, read top to bottom.

The same list builds the NumPy network (:func:`build_net`: the app, Train live, Teach,
Look inside) and, through its Keras config, the ``keras.Sequential`` that the offline
``train`` command fits with TensorFlow (:func:`mnist_core.models.keras_tf.build`). The
manifest records each shipped model's config with its type (:func:`to_manifest`), so
:func:`from_manifest` rebuilds the same network from ``artifacts/manifest.json`` alone.
Importing this never loads TensorFlow.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from ..engine.layers import (BatchNormalization, Conv2D, Dense, Dropout, Flatten,
                             Layer, MaxPooling2D, ReLU)
from ..engine.network import Sequential

IMAGE = (28, 28, 1)  # one input image: height, width, channels
CLASSES = 10


@dataclass(frozen=True)
class NumpyConfig:
    """The NumPy MLP written from scratch: ``784 -> hidden... -> 10``."""

    hidden: tuple[int, ...] = (1024, 1024)  # units per hidden layer
    activation: str = "relu"                # "relu" or the notebooks' "sigmoid"
    optimizer: str = "adam"                 # "adam" or plain "sgd" (engine.optim)
    dropout: float = 0.25                   # inverted dropout on hidden layers

    input_shape = (784,)                    # the image as one vector
    keras_name = ""                         # saved as .npz, never as a Keras model

    def layers(self) -> list[Layer]:
        # He's start for ReLU, LeCun's for sigmoid (the notebooks' Gaussian weights).
        init = "he_normal" if self.activation == "relu" else "lecun_normal"
        hidden = [[Dense(units, self.activation, init=init), Dropout(self.dropout)]
                  for units in self.hidden]
        return [*sum(hidden, []), Dense(CLASSES, "softmax", init=init)]


@dataclass(frozen=True)
class DenseConfig:
    """The Keras multilayer perceptron: Flatten -> [Dense + ReLU + Dropout] x n -> softmax."""

    hidden: tuple[int, ...] = (1024, 1024)  # units per hidden layer
    dropout: float = 0.3                    # after every hidden layer

    input_shape = IMAGE
    keras_name = "dense"

    def layers(self) -> list[Layer]:
        hidden = [[Dense(units, "relu"), Dropout(self.dropout)] for units in self.hidden]
        return [Flatten(), *sum(hidden, []), Dense(CLASSES, "softmax")]


@dataclass(frozen=True)
class CNNConfig:
    """Two conv blocks with BatchNorm, then a dropout-regularised classifier. The first
    conv of each block is 5x5 for reach, the second 3x3 for depth at low cost; pooling
    halves the grid twice (28 -> 14 -> 7)."""

    filters: tuple[int, int] = (32, 64)  # channels of the two conv blocks
    dense: int = 256                      # units of the classifier's hidden layer
    dropout: float = 0.25                 # before and inside the classifier
    bn_momentum: float = 0.99             # BatchNorm running-statistics momentum; a run of a
                                          # few hundred batches needs ~0.9 to settle

    input_shape = IMAGE
    keras_name = "cnn"

    def layers(self) -> list[Layer]:
        (f1, f2), m = self.filters, self.bn_momentum
        return [
            Conv2D(f1, 5, padding="same", use_bias=False), BatchNormalization(m), ReLU(),
            MaxPooling2D(2),
            Conv2D(f2, 3, padding="same", use_bias=False), BatchNormalization(m), ReLU(),
            Conv2D(f2, 3, padding="same", use_bias=False), BatchNormalization(m), ReLU(),
            MaxPooling2D(2),
            Flatten(),
            Dropout(self.dropout),
            Dense(self.dense, use_bias=False), BatchNormalization(m), ReLU(),
            Dropout(self.dropout),
            Dense(CLASSES, "softmax"),
        ]


@dataclass(frozen=True)
class LeNet5Config:
    """LeNet-5 (LeCun et al. 1998): conv, pool, conv, pool, two dense layers, softmax."""

    filters: tuple[int, int] = (6, 16)   # channels of C1 (5x5, same padding) and C3 (5x5, valid)
    dense: tuple[int, int] = (120, 84)   # units of C5 (here a dense layer) and F6
    activation: str = "tanh"             # LeCun's squashing function, after every layer but
                                         # the softmax

    input_shape = IMAGE
    keras_name = "lenet5"

    def layers(self) -> list[Layer]:
        (c1, c3), (c5, f6), act = self.filters, self.dense, self.activation
        return [
            Conv2D(c1, 5, padding="same", activation=act),
            MaxPooling2D(2),
            Conv2D(c3, 5, activation=act),
            MaxPooling2D(2),
            Flatten(),
            Dense(c5, activation=act),
            Dense(f6, activation=act),
            Dense(CLASSES, "softmax"),
        ]


Architecture = NumpyConfig | DenseConfig | CNNConfig | LeNet5Config
ARCHITECTURES: dict[str, type] = {cls.__name__: cls for cls in
                                  (NumpyConfig, DenseConfig, CNNConfig, LeNet5Config)}
# Streams of the SeedSequence(seed) tree: weights here; training draws its own.
INIT_STREAM = 0


def build_net(arch: Architecture, seed: int = 0) -> Sequential:
    """A fresh network of ``arch``, weights drawn from ``seed``'s own stream."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(INIT_STREAM,)))
    return Sequential.build(arch.layers(), arch.input_shape, arch.keras_name, rng)


def mismatch(arch: Architecture, net: Sequential) -> str | None:
    """How ``net`` (read from a file) differs from ``arch``, in words, or None: the same
    layers in the same order, the same activations, weights of the same shapes."""
    want = arch.layers()
    if tuple(net.input_shape) != tuple(arch.input_shape):
        return f"its input is {net.input_shape}, not {tuple(arch.input_shape)}"
    if [type(w).__name__ for w in want] != [type(g).__name__ for g in net.layers]:
        return (f"its layers are {', '.join(type(g).__name__ for g in net.layers)}, not "
                f"{', '.join(type(w).__name__ for w in want)}")
    shape = tuple(arch.input_shape)
    for i, (w, g) in enumerate(zip(want, net.layers)):
        if getattr(w, "activation", None) != getattr(g, "activation", None):
            return f"layer {i + 1} ({type(g).__name__}) uses {g.activation}, not {w.activation}"
        expected = [tuple(s) for s in w.weight_shapes(shape)]
        found = [tuple(x.shape) for x in g.weights]
        if expected != found:
            return f"layer {i + 1} ({type(g).__name__}) holds weights {found}, not {expected}"
        shape = w.out_shape(shape)
    return None


def to_manifest(arch: Architecture) -> dict:
    """``arch`` as JSON-ready data: its fields plus ``"type"``, the config's class name."""
    return {"type": type(arch).__name__, **asdict(arch)}


def from_manifest(entry: dict | None) -> Architecture | None:
    """The config :func:`to_manifest` wrote; ``None`` for an entry without a ``"type"`` (a
    manifest from before architectures were recorded). Raises ``ValueError`` for an
    unknown type or field."""
    if not isinstance(entry, dict) or "type" not in entry:
        return None
    cls = ARCHITECTURES.get(entry["type"])
    if cls is None:
        raise ValueError(f"unknown architecture type {entry['type']!r}; known: "
                         f"{', '.join(ARCHITECTURES)}")
    known = {f.name for f in fields(cls)}
    values = {k: v for k, v in entry.items() if k != "type"}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"{entry['type']} has no field(s) {', '.join(sorted(unknown))}")
    # JSON turns the configs' tuples into lists; frozen configs need them hashable again.
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
