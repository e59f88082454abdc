"""What every layer shares: the pass's :class:`Context`, the activations beside their
derivatives, Keras's initialisers and config pieces, and the :class:`Layer` base class."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np


@dataclass(frozen=True)
class Context:
    """How a forward pass runs: inference (the default) or one training step."""

    train: bool = False                   # BatchNorm on batch statistics, Dropout on
    rng: np.random.Generator | None = None  # Dropout's masks (None: no dropout)
    chunk_bytes: int = 8 * 2**20          # a convolution's im2col columns are built for at
                                          # most this many bytes of images at a time: 512
                                          # CNN images would otherwise hold ~300 MB of
                                          # columns, and a few MB stay in cache


INFER = Context()


# ---------------------------------------------------------------------------------------
# Activations: each function beside its derivative
# ---------------------------------------------------------------------------------------

def softmax(z: np.ndarray) -> np.ndarray:
    """Rows of ``z`` ``(..., K)`` -> probabilities summing to 1 (overflow-safe)."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# name -> (f(z), d: (z, y = f(z), g = dL/dy) -> dL/dz)
ACTIVATIONS: dict[str, tuple[Any, Any]] = {
    "linear": (lambda z: z, lambda z, y, g: g),
    "relu": (lambda z: np.maximum(z, 0), lambda z, y, g: g * (z > 0)),
    "tanh": (np.tanh, lambda z, y, g: g * (1 - y * y)),
    "sigmoid": (lambda z: 1 / (1 + np.exp(-z)), lambda z, y, g: g * y * (1 - y)),
    "softmax": (softmax, lambda z, y, g: y * (g - (g * y).sum(axis=-1, keepdims=True))),
}
_ONNX_OPS = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid", "softmax": "Softmax"}


def _onnx_activation(g, name: str, x: str) -> str:
    """``name``'s node on tensor ``x``; a softmax over the channels, where ``x`` is
    channels-first (ONNX's default axis would be the width)."""
    if name == "linear":
        return x
    attrs = {"axis": 1} if name == "softmax" and g.is_channels_first(x) else {}
    return g.op(_ONNX_OPS[name], [x], **attrs)


def _check_activation(name: str) -> str:
    if name not in ACTIVATIONS:
        raise ValueError(f"activation {name!r} is not supported")
    return name


# ---------------------------------------------------------------------------------------
# Keras's serialized config pieces
# ---------------------------------------------------------------------------------------

def _initializer(name: str, config: dict | None = None) -> dict:
    return {"module": "keras.initializers", "class_name": name, "config": config or {},
            "registered_name": None}


_GLOROT = _initializer("GlorotUniform", {"seed": None, "input_axes": None,
                                         "output_axes": None})


def glorot_uniform(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Keras's ``GlorotUniform``: U(-l, l), ``l = sqrt(6 / (fan_in + fan_out))``, a conv
    kernel ``(kh, kw, in, out)`` counting its receptive field in both fans. float32."""
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape).astype(np.float32)


def he_normal(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """N(0, 2 / fan_in), untruncated: the NumPy MLP's ReLU start (Nielsen's, He's)."""
    return (rng.standard_normal(shape) * np.sqrt(2.0 / shape[0])).astype(np.float32)


def lecun_normal(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """N(0, 1 / fan_in), untruncated: the NumPy MLP's sigmoid start."""
    return (rng.standard_normal(shape) * np.sqrt(1.0 / shape[0])).astype(np.float32)


INITIALIZERS = {"glorot_uniform": glorot_uniform, "he_normal": he_normal,
                "lecun_normal": lecun_normal}


# ---------------------------------------------------------------------------------------
# The base class
# ---------------------------------------------------------------------------------------

class Layer:
    """One layer: hyperparameters set at construction, weights by :meth:`init` or a file.

    ``forward(x, ctx)`` returns ``(y, cache)``; ``backward(cache, g)`` takes ``g = dL/dy``
    and returns ``(dL/dx or None when not need_dx, [dL/dw for each trainable weight])``.
    """

    kind: ClassVar[str] = ""        # the Keras class name (config.json's "class_name")
    built_by_keras: ClassVar[bool] = False  # Keras records a build_config for it
    name: str = ""                  # Keras's layer name; Sequential sets it when empty

    @property
    def weights(self) -> list[np.ndarray]:
        """Every weight array, in Keras's order (trainable first); live arrays."""
        return []

    @property
    def n_trainable(self) -> int:
        return len(self.weights)

    def set_weights(self, weights: list[np.ndarray]) -> None:
        if weights:
            raise ValueError(f"{self.kind} has no weights")

    def weight_shapes(self, in_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
        """The shape of each weight array, in :attr:`weights`' order, for inputs of
        ``in_shape`` (one example's shape): what :meth:`init` makes and a file must hold."""
        return []

    def init(self, in_shape: tuple[int, ...], rng: np.random.Generator) -> None:
        """Fresh weights for inputs of ``in_shape`` (one example's shape), as Keras would."""

    def out_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        return in_shape

    def keras_config(self) -> dict:
        """The fields of Keras's config for this layer (name, dtype added by the writer)."""
        return {}

    @classmethod
    def from_keras(cls, cfg: dict) -> "Layer":
        """The layer a Keras config describes; ``ValueError`` for settings not supported."""
        return cls()

    def forward(self, x: np.ndarray, ctx: Context = INFER) -> tuple[np.ndarray, Any]:
        raise NotImplementedError

    def backward(self, cache: Any, g: np.ndarray, need_dx: bool = True
                 ) -> tuple[np.ndarray | None, list[np.ndarray]]:
        raise NotImplementedError

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Inference: the output alone."""
        return self.forward(x)[0]

    def onnx(self, g, x: str) -> str:
        """Emit this layer's nodes into ``g`` (:class:`~mnist_core.engine.onnx_graph.Graph`)
        reading tensor ``x``; returns the output tensor's name."""
        raise NotImplementedError(f"no ONNX nodes for {self.kind}")

    def __repr__(self) -> str:
        return f"{self.kind}({self.name!r})"
