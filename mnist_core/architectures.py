"""The architecture of every model, as small frozen configs (no TensorFlow on import).

Each config holds everything needed to rebuild its network and builds it with
``build()``: the NumPy MLP here in NumPy, the Keras ones through
:mod:`mnist_core.keras_models` (imported only then). The manifest records each shipped
model's config with its type (:func:`to_manifest`), so :func:`from_manifest` rebuilds the
same network from ``artifacts/manifest.json`` alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class NumpyConfig:
    """The NumPy MLP: ``784 -> hidden... -> 10``."""

    hidden: tuple[int, ...] = (1024, 1024)  # units per hidden layer
    activation: str = "relu"                # "relu" or the notebooks' "sigmoid"
    optimizer: str = "adam"                 # "adam" or plain "sgd" (the training loop's)
    dropout: float = 0.25                   # inverted dropout on hidden layers

    def build(self, seed: int = 0):
        """A fresh :class:`~mnist_core.numpy_net.NumpyMLP`, its weights drawn from ``seed``."""
        from .numpy_net import NumpyMLP
        return NumpyMLP((784, *self.hidden, 10), self.activation, self.dropout, seed)


@dataclass(frozen=True)
class DenseConfig:
    """The Keras multilayer perceptron: Flatten -> [Dense + ReLU + Dropout] x n -> softmax."""

    hidden: tuple[int, ...] = (1024, 1024)  # units per hidden layer
    dropout: float = 0.3                    # after every hidden layer

    def build(self, seed: int = 0):
        """A fresh ``keras.Sequential`` (Keras draws weights from its global seed, which
        the training loop sets; ``seed`` is unused)."""
        from .keras_models import build_dense
        return build_dense(self)


@dataclass(frozen=True)
class CNNConfig:
    """The Keras CNN: two conv blocks with BatchNorm, then a dropout-regularised classifier."""

    filters: tuple[int, int] = (32, 64)  # channels of the two conv blocks (5x5, then 3x3 kernels)
    dense: int = 256                      # units of the classifier's hidden layer
    dropout: float = 0.25                 # before and inside the classifier
    bn_momentum: float = 0.99             # BatchNorm running-statistics momentum; a run of a
                                          # few hundred batches needs ~0.9 to settle

    def build(self, seed: int = 0):
        """A fresh ``keras.Sequential`` (``seed`` unused, as for :class:`DenseConfig`)."""
        from .keras_models import build_cnn
        return build_cnn(self)


@dataclass(frozen=True)
class LeNet5Config:
    """LeNet-5 (LeCun et al. 1998): conv, pool, conv, pool, two dense layers, softmax."""

    filters: tuple[int, int] = (6, 16)   # channels of C1 (5x5, same padding) and C3 (5x5, valid)
    dense: tuple[int, int] = (120, 84)   # units of C5 (here a dense layer) and F6
    activation: str = "tanh"             # LeCun's squashing function, after every layer but
                                         # the softmax

    def build(self, seed: int = 0):
        """A fresh ``keras.Sequential`` (``seed`` unused, as for :class:`DenseConfig`)."""
        from .keras_models import build_lenet5
        return build_lenet5(self)


Architecture = NumpyConfig | DenseConfig | CNNConfig | LeNet5Config
ARCHITECTURES: dict[str, type] = {cls.__name__: cls for cls in
                                  (NumpyConfig, DenseConfig, CNNConfig, LeNet5Config)}


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
