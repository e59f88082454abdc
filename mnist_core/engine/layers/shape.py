"""The layers without weights: activations, pooling, Flatten, Dropout."""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from .base import ACTIVATIONS, INFER, Layer, _check_activation, _onnx_activation


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
