"""The layers every network here is made of, each written once in NumPy.

One class per layer kind, in the spirit of micrograd: a layer holds its hyperparameters
and weights, and gives, side by side, its forward pass (inference and training), its
backward pass (input and weight gradients), its output shape, its weights' initial
values, its Keras config and its ONNX nodes. :class:`~mnist_core.engine.network.Sequential`
runs a list of them; :mod:`~mnist_core.engine.keras_file` reads and writes them as a
``.keras`` file (building only the kinds in :data:`LAYERS`: a file never runs code);
:mod:`~mnist_core.engine.onnx_graph` emits a graph layer by layer.

Shapes are channels-last, batch first: images ``(N, H, W, C)``, vectors ``(N, D)``.
Every function keeps its input's dtype (float32 in the app, float64 in the
finite-difference tests). Semantics are Keras's (tests hold each layer to Keras and
GradientTape): TensorFlow's "same" padding puts the odd pixel after; max pooling's
gradient goes to the first maximum of each window; BatchNormalization normalises by the
batch's biased variance in training.

Adding a layer kind: subclass :class:`Layer`, set ``kind`` to its Keras class name, write
``forward``/``backward``/``out_shape`` (and ``init``, ``keras_config``, ``from_keras``,
``onnx`` where it has weights or settings), and add it to :data:`LAYERS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


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


# ---------------------------------------------------------------------------------------
# Dense and Conv2D: a linear map, a bias, an activation
# ---------------------------------------------------------------------------------------

class _Linear(Layer):
    """What Dense and Conv2D share: ``y = act(linear(x) + bias)``. ``forward(...,
    logits=True)`` stops before the activation (the loss takes a softmax head's logits)."""

    built_by_keras = True
    kernel: np.ndarray
    bias: np.ndarray | None

    def __init__(self, activation: str, use_bias: bool, init: str):
        self.activation = _check_activation(activation)
        self.use_bias, self.initializer = use_bias, init
        self.kernel, self.bias = np.zeros(0, np.float32), None

    @property
    def weights(self):
        return [self.kernel] + ([self.bias] if self.use_bias else [])

    def set_weights(self, weights):
        if len(weights) != 1 + self.use_bias:
            raise ValueError(f"{self.kind} {self.name!r}: expected {1 + self.use_bias} "
                             f"weight arrays, found {len(weights)}")
        self.kernel = weights[0]
        self.bias = weights[1] if self.use_bias else None

    def _init(self, shape: tuple[int, ...], rng: np.random.Generator) -> None:
        self.kernel = INITIALIZERS[self.initializer](shape, rng)
        self.bias = np.zeros(shape[-1], np.float32) if self.use_bias else None

    def fold(self, scale: np.ndarray, shift: np.ndarray) -> None:
        """Fold an affine map that follows, ``y * scale + shift`` (an inference
        BatchNorm), into the kernel and bias, computed in float64."""
        bias = 0.0 if self.bias is None else self.bias.astype(np.float64)
        dtype = self.kernel.dtype
        self.kernel = (self.kernel.astype(np.float64) * scale).astype(dtype)
        self.bias, self.use_bias = (bias * scale + shift).astype(dtype), True

    def _linear(self, x: np.ndarray, ctx: Context) -> tuple[np.ndarray, Any]:
        raise NotImplementedError

    def forward(self, x, ctx=INFER, logits: bool = False):
        z, x_kept = self._linear(x, ctx)
        if self.bias is not None:
            z += self.bias
        act = "linear" if logits else self.activation
        if act == "linear":  # nothing to differentiate: z is not kept (a conv's is MBs)
            return z, (x_kept, None, None)
        y = ACTIVATIONS[act][0](z)
        return y, (x_kept, z, y)

    def backward(self, cache, g, need_dx=True):
        x, z, y = cache
        dz = g if z is None else ACTIVATIONS[self.activation][1](z, y, g)
        dx, dk = self._linear_backward(x, dz, need_dx)
        grads = [dk] + ([dz.reshape(-1, dz.shape[-1]).sum(axis=0)] if self.use_bias else [])
        return dx, grads

    def _linear_backward(self, x, dz, need_dx):
        raise NotImplementedError

    def _onnx_activation(self, g, x: str) -> str:
        return _onnx_activation(g, self.activation, x)

    def _bias_or_zeros(self) -> np.ndarray:
        return self.bias if self.bias is not None else np.zeros(self.kernel.shape[-1],
                                                                np.float32)


class Dense(_Linear):
    """``y = act(x @ kernel + bias)``; kernel ``(in, units)``, bias ``(units,)``."""

    kind = "Dense"

    def __init__(self, units: int, activation: str = "linear", use_bias: bool = True,
                 init: str = "glorot_uniform"):
        super().__init__(activation, use_bias, init)
        self.units = int(units)

    def init(self, in_shape, rng):
        self._init((in_shape[-1], self.units), rng)

    def out_shape(self, in_shape):
        return (self.units,)

    def _linear(self, x, ctx):
        return x @ self.kernel, x

    def _linear_backward(self, x, dz, need_dx):
        return (dz @ self.kernel.T if need_dx else None), x.T @ dz

    def keras_config(self):
        return {"units": self.units, "activation": self.activation, "use_bias": self.use_bias,
                "kernel_initializer": _GLOROT, "bias_initializer": _initializer("Zeros"),
                "kernel_regularizer": None, "bias_regularizer": None,
                "kernel_constraint": None, "bias_constraint": None,
                "quantization_config": None}

    @classmethod
    def from_keras(cls, cfg):
        return cls(cfg["units"], cfg.get("activation", "linear"), cfg.get("use_bias", True))

    def onnx(self, g, x):
        x = g.channels_last(x)
        y = g.op("Gemm", [x, g.const(self.kernel), g.const(self._bias_or_zeros())])
        return self._onnx_activation(g, y)


def _image_chunks(n: int, bytes_per_image: int, chunk_bytes: int) -> list[slice]:
    """``n`` images in equal runs of at most ``chunk_bytes``."""
    k = max(1, -(-n * bytes_per_image // chunk_bytes))
    step = -(-n // min(k, max(n, 1)))
    return [slice(s, s + step) for s in range(0, n, step)]


def _im2col(xp: np.ndarray, kh: int, kw: int) -> np.ndarray:
    """Padded ``(n, H, W, C)`` -> ``(n * H' * W', kh * kw * C)`` windows, rows in image
    order, columns in the kernel's ``(kh, kw, C)`` order (so ``kernel.reshape(-1, out)``
    multiplies it); C innermost in both keeps the copy contiguous."""
    n, hp, wp, c = xp.shape
    windows = sliding_window_view(xp, (kh, kw), axis=(1, 2))  # (n, H', W', C, kh, kw)
    return windows.transpose(0, 1, 2, 4, 5, 3).reshape(n * (hp - kh + 1) * (wp - kw + 1),
                                                       kh * kw * c)


class Conv2D(_Linear):
    """Stride-1 2-D correlation, "valid" or TensorFlow's "same" padding; kernel ``(kh, kw,
    in, filters)``, bias ``(filters,)``. Computed as im2col and one matrix product."""

    kind = "Conv2D"

    def __init__(self, filters: int, kernel_size: int | tuple[int, int],
                 padding: str = "valid", activation: str = "linear", use_bias: bool = True,
                 init: str = "glorot_uniform"):
        super().__init__(activation, use_bias, init)
        if padding not in ("valid", "same"):
            raise ValueError(f"padding {padding!r} is not supported")
        self.filters, self.padding = int(filters), padding
        k = kernel_size
        self.kernel_size = (k, k) if isinstance(k, int) else tuple(int(v) for v in k)

    def init(self, in_shape, rng):
        self._init((*self.kernel_size, in_shape[-1], self.filters), rng)

    def pads(self) -> tuple[int, int, int, int]:
        """Padding (top, left, bottom, right): TensorFlow's "same" puts the odd pixel after."""
        if self.padding != "same":
            return (0, 0, 0, 0)
        kh, kw = self.kernel_size
        return ((kh - 1) // 2, (kw - 1) // 2, kh // 2, kw // 2)

    def out_shape(self, in_shape):
        h, w, _ = in_shape
        if self.padding == "valid":
            h, w = h - self.kernel_size[0] + 1, w - self.kernel_size[1] + 1
        return (h, w, self.filters)

    def _linear(self, x, ctx):
        kh, kw, cin, cout = self.kernel.shape
        top, left, bottom, right = self.pads()
        xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0))) if top + bottom + \
            left + right else x
        n, h, w = len(x), xp.shape[1] - kh + 1, xp.shape[2] - kw + 1
        z = np.empty((n, h, w, cout), np.result_type(x, self.kernel))
        k2 = self.kernel.reshape(kh * kw * cin, cout)
        for s in _image_chunks(n, h * w * kh * kw * cin * x.itemsize, ctx.chunk_bytes):
            np.matmul(_im2col(xp[s], kh, kw), k2, out=z[s].reshape(-1, cout))
        return z, (xp, ctx.chunk_bytes)

    def _linear_backward(self, kept, dz, need_dx):
        (xp, chunk_bytes), (kh, kw, cin, cout) = kept, self.kernel.shape
        n, h, w = dz.shape[:3]
        rows = h * w
        chunks = _image_chunks(n, rows * kh * kw * max(cin, cout) * dz.itemsize, chunk_bytes)
        dz2 = dz.reshape(-1, cout)
        dk = np.zeros((kh * kw * cin, cout), dz.dtype)
        for s in chunks:
            dk += _im2col(xp[s], kh, kw).T @ dz2[s.start * rows:s.stop * rows]
        if not need_dx:
            return None, dk.reshape(self.kernel.shape)
        top, left = self.pads()[:2]
        in_h, in_w = xp.shape[1] - sum(self.pads()[0::2]), xp.shape[2] - sum(self.pads()[1::2])
        dx = np.empty((n, in_h, in_w, cin), dz.dtype)
        k2t = self.kernel.reshape(kh * kw * cin, cout).T
        for s in chunks:
            # Each output pixel's gradient spread over its window (dz @ kernel^T gives every
            # window's (kh, kw, in) share in one product), added into place one kernel
            # offset at a time: the full correlation with the turned kernel, without
            # copying kh * kw shifted windows of dz.
            d = dz[s]
            shares = (d.reshape(-1, cout) @ k2t).reshape(len(d), h, w, kh, kw, cin)
            grad = np.zeros((len(d), h + kh - 1, w + kw - 1, cin), shares.dtype)
            for i in range(kh):
                for j in range(kw):
                    grad[:, i:i + h, j:j + w] += shares[:, :, :, i, j]
            dx[s] = grad[:, top:top + in_h, left:left + in_w]
        return dx, dk.reshape(self.kernel.shape)

    def keras_config(self):
        return {"filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": [1, 1], "padding": self.padding, "data_format": "channels_last",
                "dilation_rate": [1, 1], "groups": 1, "activation": self.activation,
                "use_bias": self.use_bias, "kernel_initializer": _GLOROT,
                "bias_initializer": _initializer("Zeros"), "kernel_regularizer": None,
                "bias_regularizer": None, "activity_regularizer": None,
                "kernel_constraint": None, "bias_constraint": None}

    @classmethod
    def from_keras(cls, cfg):
        if tuple(cfg.get("strides", (1, 1))) != (1, 1):
            raise ValueError("only stride-1 convolutions are supported")
        if tuple(cfg.get("dilation_rate", (1, 1))) != (1, 1) or cfg.get("groups", 1) != 1:
            raise ValueError("only undilated, ungrouped convolutions are supported")
        if cfg.get("data_format", "channels_last") != "channels_last":
            raise ValueError("only channels_last convolutions are supported")
        return cls(cfg["filters"], cfg["kernel_size"], cfg.get("padding", "valid"),
                   cfg.get("activation", "linear"), cfg.get("use_bias", True))

    def onnx(self, g, x):
        x = g.channels_first(x)
        top, left, bottom, right = self.pads()
        y = g.op("Conv", [x, g.const(self.kernel.transpose(3, 2, 0, 1)),
                          g.const(self._bias_or_zeros())],
                 kernel_shape=list(self.kernel_size), pads=[top, left, bottom, right])
        return self._onnx_activation(g, y)


# ---------------------------------------------------------------------------------------
# BatchNormalization
# ---------------------------------------------------------------------------------------

class BatchNormalization(Layer):
    """Per channel (last axis): training ``gamma * (x - mean_B) / sqrt(var_B + eps) +
    beta`` over the batch's statistics (biased variance), which also move the moving ones
    (:meth:`update_stats`); inference the same with the moving statistics."""

    kind = "BatchNormalization"
    built_by_keras = True
    axis: int = -1  # as a file gives it: -1 or the input's last axis (checked by out_shape)

    def __init__(self, momentum: float = 0.99, epsilon: float = 1e-3, scale: bool = True,
                 center: bool = True):
        self.momentum, self.epsilon = float(momentum), float(epsilon)
        self.scale, self.center = bool(scale), bool(center)
        self.gamma = self.beta = self.moving_mean = self.moving_var = None

    @property
    def weights(self):
        return ([self.gamma] if self.scale else []) + ([self.beta] if self.center else []) \
            + [self.moving_mean, self.moving_var]

    @property
    def n_trainable(self):
        return int(self.scale) + int(self.center)

    def set_weights(self, weights):
        w = list(weights)
        if len(w) != self.n_trainable + 2:
            raise ValueError(f"BatchNormalization {self.name!r}: expected "
                             f"{self.n_trainable + 2} weight arrays, found {len(w)}")
        self.gamma = w.pop(0) if self.scale else None
        self.beta = w.pop(0) if self.center else None
        self.moving_mean, self.moving_var = w

    def out_shape(self, in_shape):
        if self.axis not in (-1, len(in_shape)):  # axis counts the batch axis
            raise ValueError("only BatchNormalization over the last axis is supported")
        return in_shape

    def init(self, in_shape, rng):
        c = in_shape[-1]
        self.gamma = np.ones(c, np.float32) if self.scale else None
        self.beta = np.zeros(c, np.float32) if self.center else None
        self.moving_mean, self.moving_var = np.zeros(c, np.float32), np.ones(c, np.float32)

    def affine(self) -> tuple[np.ndarray, np.ndarray]:
        """Inference as ``x * scale + shift``, float64 per channel."""
        gamma = 1.0 if self.gamma is None else self.gamma.astype(np.float64)
        beta = 0.0 if self.beta is None else self.beta.astype(np.float64)
        scale = gamma / np.sqrt(self.moving_var.astype(np.float64) + self.epsilon)
        return scale, beta - self.moving_mean * scale

    def forward(self, x, ctx=INFER):
        if not ctx.train:
            scale, shift = (v.astype(x.dtype) for v in self.affine())
            return x * scale + shift, [x, scale]  # a list: training's cache is a tuple
        # Per channel over every other axis: as rows of a (pixels, channels) matrix,
        # which NumPy reduces several times faster than over three axes.
        x2 = x.reshape(-1, x.shape[-1])
        mean = x2.mean(axis=0)
        x_hat = x2 - mean
        var = np.einsum("ij,ij->j", x_hat, x_hat) / len(x2)  # biased, as Keras's moments
        inv = 1.0 / np.sqrt(var + self.epsilon)
        x_hat *= inv  # in place: each pass over a conv's output is ~2 ms at 128 images
        y = x_hat * self.gamma if self.scale else x_hat.copy()
        if self.center:
            y += self.beta
        return y.reshape(x.shape), (x_hat, inv, mean, var)

    def backward(self, cache, g, need_dx=True):
        if not isinstance(cache, tuple):  # inference: a per-channel affine map
            x, scale = cache
            g2 = g.reshape(-1, g.shape[-1])
            x_hat = (x.reshape(g2.shape) - self.moving_mean) / np.sqrt(
                self.moving_var.astype(x.dtype) + x.dtype.type(self.epsilon))
            return (g * scale if need_dx else None), \
                ([np.einsum("ij,ij->j", g2, x_hat)] if self.scale else []) + \
                ([g2.sum(axis=0)] if self.center else [])
        x_hat, inv, _, _ = cache
        g2 = g.reshape(-1, g.shape[-1])
        dbeta = g2.sum(axis=0)
        dgamma = np.einsum("ij,ij->j", g2, x_hat)
        dx = None
        if need_dx:  # gamma / std * (g - mean(g) - x_hat * mean(g * x_hat)), in place
            m = len(g2)
            dx = g2 - dbeta / m
            dx -= x_hat * (dgamma / m)
            dx *= (self.gamma if self.scale else 1.0) * inv
            dx = dx.reshape(g.shape)
        return dx, ([dgamma] if self.scale else []) + ([dbeta] if self.center else [])

    def update_stats(self, cache) -> None:
        """Move the moving mean and variance towards a training batch's, as Keras does:
        ``moving = moving * momentum + batch * (1 - momentum)``."""
        _, _, mean, var = cache
        for moving, batch in ((self.moving_mean, mean), (self.moving_var, var)):
            moving *= self.momentum
            moving += (batch * (1 - self.momentum)).astype(moving.dtype)

    def keras_config(self):
        return {"axis": -1, "momentum": self.momentum, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale,
                "beta_initializer": _initializer("Zeros"),
                "gamma_initializer": _initializer("Ones"),
                "moving_mean_initializer": _initializer("Zeros"),
                "moving_variance_initializer": _initializer("Ones"),
                "beta_regularizer": None, "gamma_regularizer": None, "beta_constraint": None,
                "gamma_constraint": None, "synchronized": False, "renorm": False,
                "renorm_clipping": None, "renorm_momentum": 0.99}

    @classmethod
    def from_keras(cls, cfg):
        axis = cfg.get("axis", -1)
        axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
        if axis not in (-1, 1, 2, 3):
            raise ValueError("only BatchNormalization over the last axis is supported")
        layer = cls(cfg.get("momentum", 0.99), cfg.get("epsilon", 1e-3), cfg.get("scale", True),
                    cfg.get("center", True))
        layer.axis = axis
        return layer

    def onnx(self, g, x):
        scale, shift = self.affine()
        shape = (-1, 1, 1) if g.is_channels_first(x) else (-1,)
        return g.op("Add", [g.op("Mul", [x, g.const(scale.reshape(shape))]),
                            g.const(shift.reshape(shape))])


# ---------------------------------------------------------------------------------------
# Activation layers
# ---------------------------------------------------------------------------------------

class Activation(Layer):
    """``y = act(x)`` as a layer of its own."""

    kind = "Activation"

    def __init__(self, activation: str):
        self.activation = _check_activation(activation)

    def forward(self, x, ctx=INFER):
        y = ACTIVATIONS[self.activation][0](x)
        return y, (x, y)

    def backward(self, cache, g, need_dx=True):
        x, y = cache
        return (ACTIVATIONS[self.activation][1](x, y, g) if need_dx else None), []

    def keras_config(self):
        return {"activation": self.activation}

    @classmethod
    def from_keras(cls, cfg):
        return cls(cfg["activation"])

    def onnx(self, g, x):
        return _onnx_activation(g, self.activation, x)


class ReLU(Activation):
    """Keras's ``ReLU`` layer, plain (no cap, slope or threshold)."""

    kind = "ReLU"

    def __init__(self):
        super().__init__("relu")

    def keras_config(self):
        return {"max_value": None, "negative_slope": 0.0, "threshold": 0.0}

    @classmethod
    def from_keras(cls, cfg):
        if cfg.get("max_value") is not None or cfg.get("negative_slope") or cfg.get("threshold"):
            raise ValueError("only the plain ReLU layer is supported")
        return cls()


# ---------------------------------------------------------------------------------------
# Pooling, Flatten, Dropout
# ---------------------------------------------------------------------------------------

class MaxPooling2D(Layer):
    """Non-overlapping ``ph x pw`` max pooling, "valid" (the ragged edge dropped). The
    gradient goes to the first maximum of each window in row-major order, as
    TensorFlow's ``MaxPoolGrad`` routes it."""

    kind = "MaxPooling2D"
    onnx_op: ClassVar[str] = "MaxPool"

    def __init__(self, pool_size: int | tuple[int, int] = 2):
        p = pool_size
        self.pool_size = (p, p) if isinstance(p, int) else tuple(int(v) for v in p)

    def out_shape(self, in_shape):
        (ph, pw), (h, w, c) = self.pool_size, in_shape
        return (h // ph, w // pw, c)

    def _windows(self, x: np.ndarray) -> list[np.ndarray]:
        """The window's offsets in row-major order, each a strided view ``(N, H/ph,
        W/pw, C)``."""
        ph, pw = self.pool_size
        hh, ww = x.shape[1] // ph, x.shape[2] // pw
        return [x[:, i:hh * ph:ph, j:ww * pw:pw] for i in range(ph) for j in range(pw)]

    def forward(self, x, ctx=INFER):
        windows = self._windows(x)
        y = windows[0].copy()
        for window in windows[1:]:
            np.maximum(y, window, out=y)
        return y, (x, y)

    def backward(self, cache, g, need_dx=True):
        if not need_dx:
            return None, []
        x, y = cache
        grad = np.zeros_like(x)
        free = np.ones(y.shape, bool)
        for window, target in zip(self._windows(x), self._windows(grad)):
            hit = (window == y) & free
            target[...] = np.where(hit, g, 0)
            free &= ~hit
        return grad, []

    def keras_config(self):
        ph, pw = self.pool_size
        return {"pool_size": [ph, pw], "padding": "valid", "strides": [ph, pw],
                "data_format": "channels_last"}

    @classmethod
    def from_keras(cls, cfg):
        ph, pw = cfg.get("pool_size", (2, 2))
        if tuple(cfg.get("strides") or (ph, pw)) != (ph, pw) or \
                cfg.get("padding", "valid") != "valid":
            raise ValueError("only non-overlapping 'valid' pooling is supported")
        if cfg.get("data_format", "channels_last") != "channels_last":
            raise ValueError("only channels_last pooling is supported")
        return cls((ph, pw))

    def onnx(self, g, x):
        x = g.channels_first(x)
        return g.op(self.onnx_op, [x], kernel_shape=list(self.pool_size),
                    strides=list(self.pool_size))


class AveragePooling2D(MaxPooling2D):
    """Non-overlapping ``ph x pw`` mean pooling, "valid"; the gradient shared evenly."""

    kind = "AveragePooling2D"
    onnx_op = "AveragePool"

    def forward(self, x, ctx=INFER):
        (ph, pw), (n, h, w, c) = self.pool_size, x.shape
        x_cut = x[:, :h - h % ph, :w - w % pw]
        return x_cut.reshape(n, h // ph, ph, w // pw, pw, c).mean(axis=(2, 4)), x.shape

    def backward(self, cache, g, need_dx=True):
        if not need_dx:
            return None, []
        grad = np.zeros(cache, g.dtype)
        for target in self._windows(grad):
            target[...] = g / np.prod(self.pool_size)
        return grad, []


class Flatten(Layer):
    """``(N, H, W, C)`` -> ``(N, H * W * C)``, channels-last order as Keras flattens."""

    kind = "Flatten"
    built_by_keras = True

    def out_shape(self, in_shape):
        return (int(np.prod(in_shape)),)

    def forward(self, x, ctx=INFER):
        return x.reshape(len(x), -1), x.shape

    def backward(self, cache, g, need_dx=True):
        return (g.reshape(cache) if need_dx else None), []

    def keras_config(self):
        return {"data_format": "channels_last"}

    def onnx(self, g, x):
        return g.op("Flatten", [g.channels_last(x)], axis=1)


class Dropout(Layer):
    """Training: each unit kept with probability ``1 - rate``, then scaled by
    ``1 / (1 - rate)`` (inverted dropout); inference: the identity."""

    kind = "Dropout"

    def __init__(self, rate: float):
        self.rate = float(rate)

    def forward(self, x, ctx=INFER):
        if not ctx.train or self.rate <= 0 or ctx.rng is None:
            return x, None
        keep = 1.0 - self.rate
        mask = (ctx.rng.random(x.shape, np.float32) < keep).astype(x.dtype) / \
            x.dtype.type(keep)
        return x * mask, mask

    def backward(self, cache, g, need_dx=True):
        return ((g if cache is None else g * cache) if need_dx else None), []

    def keras_config(self):
        return {"rate": self.rate, "seed": None, "noise_shape": None}

    @classmethod
    def from_keras(cls, cfg):
        if cfg.get("noise_shape") is not None:
            raise ValueError("only Dropout without a noise_shape is supported")
        return cls(cfg.get("rate", 0.0))

    def onnx(self, g, x):
        return x


# The layer kinds a file may name: nothing else is ever built from a config.
LAYERS: dict[str, type[Layer]] = {cls.kind: cls for cls in (
    Dense, Conv2D, BatchNormalization, Activation, ReLU, MaxPooling2D, AveragePooling2D,
    Flatten, Dropout)}
