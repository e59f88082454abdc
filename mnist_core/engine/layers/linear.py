"""Dense and Conv2D: a linear map, a bias, an activation."""
from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .base import (ACTIVATIONS, INFER, INITIALIZERS, _GLOROT, Context, Layer, _check_activation,
                   _initializer, _onnx_activation)


class Linear(Layer):
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

    def _kernel_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        raise NotImplementedError

    def weight_shapes(self, in_shape):
        kernel = self._kernel_shape(in_shape)
        return [kernel] + ([(kernel[-1],)] if self.use_bias else [])

    def init(self, in_shape, rng):
        shape = self._kernel_shape(in_shape)
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


class Dense(Linear):
    """``y = act(x @ kernel + bias)``; kernel ``(in, units)``, bias ``(units,)``."""

    kind = "Dense"

    def __init__(self, units: int, activation: str = "linear", use_bias: bool = True,
                 init: str = "glorot_uniform"):
        super().__init__(activation, use_bias, init)
        self.units = int(units)

    def _kernel_shape(self, in_shape):
        return (in_shape[-1], self.units)

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


class Conv2D(Linear):
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

    def _kernel_shape(self, in_shape):
        return (*self.kernel_size, in_shape[-1], self.filters)

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
