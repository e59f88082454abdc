"""Run a saved Keras ``Sequential`` model with NumPy alone: no TensorFlow at inference.

Importing TensorFlow costs about 600 MB of memory and seconds of start-up, more than a
small hosting tier offers, while these models are a handful of matrix products. This
module reads a ``.keras`` archive's ``config.json`` and ``model.weights.h5`` and evaluates
the layers this project uses (Conv2D, Dense, BatchNormalization, ReLU, pooling, Flatten,
Dropout). Only those known layer types are ever built from the config, so loading never
runs code from the file, like Keras's ``safe_mode``. Tests check it against Keras.

Two evaluations of the same layers:

* :func:`apply_layer`, one Keras layer at a time (what :mod:`mnist_core.keras_numpy_grad`
  traces for Look inside);
* :meth:`KerasNumpyModel.predict_proba`, the fast path (a thousand images or more go to
  :mod:`mnist_core.onnx_batch` instead, when ONNX Runtime is installed), which runs a
  plan compiled once at load (:func:`_compile`): BatchNorm folded into the conv or dense
  weights before it (:func:`fold_batchnorm`), activations and max pooling fused into the
  layer that feeds them (pooling before the bias and activation, which commute with a
  max), 3x3 convolutions by Winograd's
  F(2x2, 3x3) (2.25x fewer multiplications than im2col) on padded parity planes
  (:func:`_planes`, handed from one Winograd convolution straight to the next as
  :class:`_Planes`), other pooled convolutions by im2col ordered by pooling offset
  (:func:`_im2col_pool_conv`), float32 throughout, batches sized to the caches
  (:data:`BATCH_BYTES`) spread over :data:`WORKERS` threads.

Where the CNN's time goes and why it is not lower: benchmarks/KAGGLE_SPEED.md (the
products run near one core's peak; the Winograd transforms, additions over arrays larger
than a core's L2 cache, take most of the rest).
"""

from __future__ import annotations

import io
import json
import os
import re
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view

_ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0),
    "tanh": np.tanh,
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "softmax": lambda x: _softmax(x),
}

# Non-decreasing activations: max pooling gives the same result before or after them.
_MONOTONE = {"linear", "relu", "tanh", "sigmoid"}
# Activations with f(0) = 0 (run in place by _activate): applied over a zero-padded array,
# they leave its padding zero.
_ZERO_AT_ZERO = {"linear", "relu", "tanh"}


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def snake_case(name: str) -> str:
    """Keras's weight-file name for a layer class: ``Conv2D`` -> ``conv2d``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower().replace("2_d", "2d")


@dataclass
class Layer:
    kind: str
    config: dict
    weights: list[np.ndarray]


# ---------------------------------------------------------------------------------------
# Convolution and pooling kernels
# ---------------------------------------------------------------------------------------

_scratch = threading.local()


def _buffer(shape: tuple[int, ...], tag: str, zeros: bool = False) -> np.ndarray:
    """A float32 work array of ``shape``, kept for this thread and reused, for arrays that
    do not outlive the step filling them. Arrays of one ``tag`` share memory (the next
    caller overwrites it): two tags that take turns ("a", "b") keep a conv's buffers in
    the same few MB of cache. ``zeros``: a zero array of its own, made once per tag and
    shape, for padding whose border nobody writes (the tag names the kernel, so the
    interior written is always the same). Fresh ~1 MB arrays each batch came back from the
    system page by page, zeroed: 13-18 page faults an image, 10-15% of the CNN's time."""
    cache = _scratch.__dict__.setdefault("buffers", {})
    size = int(np.prod(shape))
    key = (tag, shape) if zeros else tag
    buf = cache.get(key)
    if buf is None or buf.size < size:
        if len(cache) >= 64:  # padding shapes seen by this thread: a handful, unless...
            cache.clear()
        buf = cache[key] = (np.zeros if zeros else np.empty)(size, np.float32)
    return buf[:size].reshape(shape)


def _same_pad(x: np.ndarray, kh: int, kw: int) -> np.ndarray:
    """``x`` inside TensorFlow's "same" padding for a ``kh x kw`` kernel (the odd pixel
    of padding goes after, not before): a work array, read by the conv that follows."""
    n, h, w, c = x.shape
    top, left = (kh - 1) // 2, (kw - 1) // 2
    out = _buffer((n, h + kh - 1, w + kw - 1, c), f"pad {kh}x{kw}", zeros=True)
    out[:, top:top + h, left:left + w] = x
    return out


def _im2col_conv(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Stride-1 "valid" correlation of padded ``(N, H, W, C)`` with ``(kh, kw, C, out)``:
    the windows copied into ``(kh, kw, C, N, H', W')`` columns (written contiguously, rows
    of the image), then one matrix product with their transpose: ``(N, H', W', out)``
    float32, a new array (pooled convolutions: :func:`_im2col_pool_conv`)."""
    kh, kw, cin, cout = kernel.shape
    n, h, w = x.shape[0], x.shape[1] - kh + 1, x.shape[2] - kw + 1
    cols = _buffer((kh, kw, cin, n, h, w), "a")
    windows = sliding_window_view(x, (kh, kw), axis=(1, 2))  # (N, H', W', C, kh, kw)
    np.copyto(cols, windows.transpose(4, 5, 3, 0, 1, 2))
    out = np.matmul(cols.reshape(kh * kw * cin, n * h * w).T,
                    kernel.reshape(kh * kw * cin, cout))
    return out.reshape(n, h, w, cout)


# Winograd F(2x2, 3x3) (Lavin & Gray 2016): a 4x4 input tile d gives a 2x2 output tile
# A^T [(G g G^T) * (B^T d B)] A, 16 products per tile and channel pair instead of 36.
_WINO_G = np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]])


def _winograd_kernel(kernel: np.ndarray) -> np.ndarray:
    """``(3, 3, C, out)`` -> the 16 transformed ``(C, out)`` matrices, ``(16, C, out)``
    (computed in float64, stored float32)."""
    u = np.einsum("ai,ijco,bj->abco", _WINO_G, kernel.astype(np.float64), _WINO_G)
    return np.ascontiguousarray(u.reshape(16, *kernel.shape[2:]), np.float32)


def _planes(parts: np.ndarray, pad: int) -> np.ndarray:
    """A batch of images as a Winograd convolution reads it: zero-padded by ``pad`` pixels
    on every side, then split by row and column parity, ``out[p, q, n, a, b] =
    padded[n, 2a + p, 2b + q]``, ``(2, 2, N, H/2 + pad, W/2 + pad, C)`` float32 (a work
    array). The images come as their parity parts, ``parts[py, px, n, i, j] =
    image[n, 2i + py, 2j + px]``, ``(2, 2, N, H/2, W/2, C)``: a Winograd convolution's
    output tiles, or :func:`_parity_parts` of an ``(N, H, W, C)`` batch. Split so, every
    input row of a 2x2 tile is a shifted block of one plane, whose rows the transforms
    then read whole (the same rows read with a stride of 2 pixels took 1.5x as long)."""
    out, view = _planes_view(parts.shape[2:], pad)
    view[...] = parts
    return out


def _planes_view(shape: tuple[int, ...], pad: int) -> tuple[np.ndarray, np.ndarray]:
    """The :func:`_planes` work array for images of parts ``shape`` ``(N, H/2, W/2, C)``
    (its border zero), and the ``(2, 2, N, H/2, W/2, C)`` view of it that the parts go
    to. Part ``py`` starts on padded row ``py + pad``: plane ``(py + pad) % 2``, its row
    ``(py + pad) // 2``; so from part 0 to part 1, one plane on (``pad`` even) or one
    plane back and one row down (``pad`` odd), and the same for columns: one strided view
    (one copy for the four parts, not four)."""
    n, h2, w2, c = shape
    out = _buffer((2, 2, n, h2 + pad, w2 + pad, c), f"planes {pad}", zeros=pad > 0)
    p, a = pad % 2, pad // 2
    first = out[p, p, :, a:a + h2, a:a + w2]  # part (0, 0)
    sp, sq, _, sa, sb, _ = out.strides
    step = (sp, sq) if p == 0 else (sa - sp, sb - sq)
    return out, as_strided(first, (2, 2, *first.shape), (*step, *first.strides))


def _parity_parts(x: np.ndarray) -> np.ndarray:
    """``(N, H, W, C)`` with H, W even -> its parity parts for :func:`_planes`, a view."""
    n, h, w, c = x.shape
    return as_strided(x, (2, 2, n, h // 2, w // 2, c),
                      (x.strides[1], x.strides[2], x.strides[0], 2 * x.strides[1],
                       2 * x.strides[2], x.strides[3]), writeable=False)


def _winograd_conv(planes: np.ndarray, u: np.ndarray, bias: np.ndarray | None = None,
                   out: np.ndarray | None = None) -> np.ndarray:
    """Stride-1 "valid" 3x3 correlation of padded images, as :func:`_planes` of
    ``(N, 2T + 2, 2S + 2, C)``, that is ``(2, 2, N, T + 1, S + 1, C)``, with a
    :func:`_winograd_kernel`, plus ``bias`` ``(out,)`` if given: ``(2, 2, N, T, S, out)``
    float32, the pixels (0,0), (0,1), (1,0), (1,1) of every 2x2 output tile, written to
    ``out`` if given (a view from :func:`_planes_view`), else to a work array (copy what
    outlives the step). Each array operation takes the pairs of rows or tiles that the
    same operation combines at once: NumPy's fixed cost per call, some 3-5 us here, is
    a third of a convolution's time for one image."""
    n, a1, b1, c = planes.shape[2:]
    th, tw, cout = a1 - 1, b1 - 1, u.shape[-1]
    # B^T d along the rows, B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]:
    # tile row i reads padded rows 2i..2i+3, that is rows i and i+1 of the even plane (d0,
    # d2) and of the odd one (d1, d3).
    rows = _buffer((4, 2, n, th, b1, c), "a")
    d01, d23 = planes[:, :, :, :th], planes[:, :, :, 1:]     # (d0, d1), (d2, d3)
    np.subtract(d01, d23, out=rows[0::3])                      # d0 - d2, d1 - d3
    np.add(d01[1], d23[0], out=rows[1])                        # d1 + d2
    np.subtract(d23[0], d01[1], out=rows[2])                   # d2 - d1
    # ... then along the columns, in the same way (the column parity is axis 1).
    v = _buffer((4, 4, n, th, tw, c), "b")
    e01, e23 = rows[..., :tw, :], rows[..., 1:, :]
    np.subtract(e01, e23, out=v[:, 0::3])
    np.add(e01[:, 1], e23[:, 0], out=v[:, 1])
    np.subtract(e23[:, 0], e01[:, 1], out=v[:, 2])
    m = _buffer((16, n * th * tw, cout), "a")
    np.matmul(v.reshape(16, n * th * tw, c), u, out=m)
    m = m.reshape(4, 4, n, th, tw, cout)
    if bias is not None:
        # Product (1, 1) reaches each of a tile's four pixels with weight 1 (column 1 of A
        # is all ones): the bias added once there is added to all four, with a quarter of
        # the additions (and as a 64-float broadcast, each addition costs).
        m[1, 1] += bias
    # A^T m A with A^T = [[1, 1, 1, 0], [0, 1, -1, -1]], one axis at a time.
    r = _buffer((2, 4, n, th, tw, cout), "b")
    np.add(m[0], m[1], out=r[0])
    r[0] += m[2]
    np.subtract(m[1], m[2], out=r[1])
    r[1] -= m[3]
    y = _buffer((2, 2, n, th, tw, cout), "a") if out is None else out
    np.add(r[:, 0], r[:, 1], out=y[:, 0])
    y[:, 0] += r[:, 2]
    np.subtract(r[:, 1], r[:, 2], out=y[:, 1])
    y[:, 1] -= r[:, 3]
    return y


def _im2col_pool_conv(x: np.ndarray, kernel: np.ndarray, ph: int, pw: int) -> np.ndarray:
    """Stride-1 "valid" correlation of padded ``(N, H, W, C)`` with ``(kh, kw, C, out)``,
    then non-overlapping ``ph x pw`` max pooling (ragged edge dropped, never computed):
    ``(N, H'//ph, W'//pw, out)`` float32, a new array. The product's rows are ordered by
    pooling offset first, ``(ph, pw, N, H'//ph, W'//pw)``, so it comes out as ``ph * pw``
    whole blocks of pixels and the pooling is a maximum of contiguous blocks (not of
    strided pixels of one array). The columns are copied with the longer of two runs of
    neighbouring input floats innermost, NumPy's copy costing mostly per run: a window
    row ``kw * C`` (LeNet-5's second conv: 30) or a row of pooled pixels ``W'//pw`` (a
    one-channel input: 14 for the CNN's first conv, against 5)."""
    kh, kw, cin, cout = kernel.shape
    n = x.shape[0]
    hh, ww = (x.shape[1] - kh + 1) // ph, (x.shape[2] - kw + 1) // pw
    sn, sh, sw, sc = x.strides
    rows = ph * pw * n * hh * ww
    if kw * cin >= ww:  # (pixel, tap) columns: each window row is kw * C floats in a row
        windows = as_strided(x, (ph, pw, n, hh, ww, kh, kw, cin),
                             (sh, sw, sn, ph * sh, pw * sw, sh, sw, sc), writeable=False)
        cols = _buffer((rows, kh * kw * cin), "a")
        np.copyto(cols.reshape(windows.shape), windows)
    else:  # (tap, pixel): the pixels of one tap, W'//pw in a row (2 pixels apart)
        windows = as_strided(x, (kh, kw, cin, ph, pw, n, hh, ww),
                             (sh, sw, sc, sh, sw, sn, ph * sh, pw * sw), writeable=False)
        cols = _buffer((kh * kw * cin, rows), "a")
        np.copyto(cols.reshape(windows.shape), windows)
        cols = cols.T
    y = _buffer((ph * pw, n * hh * ww, cout), "b")
    np.matmul(cols, kernel.reshape(kh * kw * cin, cout), out=y.reshape(rows, cout))
    out = np.maximum(y[0], y[1]) if ph * pw > 1 else y[0].copy()
    for k in range(2, ph * pw):
        np.maximum(out, y[k], out=out)
    return out.reshape(n, hh, ww, cout)


def _max_pool(x: np.ndarray, ph: int, pw: int) -> np.ndarray:
    """Non-overlapping max pooling of ``(N, H, W, C)``, the ragged edge dropped."""
    n, h, w, c = x.shape
    hh, ww = h // ph, w // pw
    out = x[:, 0:hh * ph:ph, 0:ww * pw:pw].copy()
    for i in range(ph):
        for j in range(pw):
            if i or j:
                np.maximum(out, x[:, i:hh * ph:ph, j:ww * pw:pw], out=out)
    return out


def _check_pool(cfg: dict) -> tuple[int, int]:
    ph, pw = cfg.get("pool_size", (2, 2))
    if tuple(cfg.get("strides") or (ph, pw)) != (ph, pw) or cfg.get("padding", "valid") != "valid":
        raise ValueError("only non-overlapping 'valid' pooling is supported")
    return ph, pw


def _conv2d(x: np.ndarray, layer: Layer) -> np.ndarray:
    kernel = layer.weights[0]
    check_conv(layer.config)
    if layer.config.get("padding") == "same":
        x = _same_pad(x, *kernel.shape[:2])
    out = _im2col_conv(x, kernel)
    if layer.config.get("use_bias", True):
        out = out + layer.weights[1]
    return _ACTIVATIONS[layer.config.get("activation", "linear")](out)


def check_conv(cfg: dict) -> None:
    if tuple(cfg.get("strides", (1, 1))) != (1, 1):
        raise ValueError("only stride-1 convolutions are supported")
    if tuple(cfg.get("dilation_rate", (1, 1))) != (1, 1) or cfg.get("groups", 1) != 1:
        raise ValueError("only undilated, ungrouped convolutions are supported")
    if cfg.get("data_format", "channels_last") != "channels_last":
        raise ValueError("only channels_last convolutions are supported")


def _pool(x: np.ndarray, layer: Layer, reduce) -> np.ndarray:
    ph, pw = _check_pool(layer.config)
    if reduce is np.max:
        return _max_pool(x, ph, pw)
    n, h, w, c = x.shape
    x = x[:, :h - h % ph, :w - w % pw]
    return reduce(x.reshape(n, h // ph, ph, w // pw, pw, c), axis=(2, 4))


def batchnorm_affine(layer: Layer) -> tuple[np.ndarray, np.ndarray]:
    """Inference BatchNorm as ``x * scale + shift`` (float64 per channel)."""
    cfg, w = layer.config, [v.astype(np.float64) for v in layer.weights]
    if cfg.get("axis", -1) not in (-1, 3, [-1], [3]):
        raise ValueError("only BatchNormalization over the last axis is supported")
    gamma = w.pop(0) if cfg.get("scale", True) else 1.0
    beta = w.pop(0) if cfg.get("center", True) else 0.0
    mean, var = w
    scale = gamma / np.sqrt(var + cfg.get("epsilon", 1e-3))
    return scale, beta - mean * scale


def fold_batchnorm(kernel: np.ndarray, bias: np.ndarray | None, scale: np.ndarray,
                   shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A linear layer's ``kernel`` (out channels last) and ``bias`` (None: none) with a
    BatchNorm ``y * scale + shift`` after it folded in: ``(kernel, bias)`` float64."""
    bias = 0.0 if bias is None else np.asarray(bias, np.float64)
    return kernel * scale, bias * scale + shift


def apply_layer(x: np.ndarray, layer: Layer) -> np.ndarray:
    """One Keras layer, as Keras computes it (no fusion)."""
    cfg = layer.config
    if layer.kind == "Conv2D":
        return _conv2d(x, layer)
    if layer.kind == "Dense":
        out = x @ layer.weights[0]
        if cfg.get("use_bias", True):
            out = out + layer.weights[1]
        return _ACTIVATIONS[cfg.get("activation", "linear")](out)
    if layer.kind == "BatchNormalization":
        w = list(layer.weights)
        gamma = w.pop(0) if cfg.get("scale", True) else 1.0
        beta = w.pop(0) if cfg.get("center", True) else 0.0
        mean, var = w
        return (x - mean) / np.sqrt(var + cfg.get("epsilon", 1e-3)) * gamma + beta
    if layer.kind == "ReLU":
        _check_relu(cfg)
        return np.maximum(x, 0)
    if layer.kind == "Activation":
        return _ACTIVATIONS[cfg["activation"]](x)
    if layer.kind == "MaxPooling2D":
        return _pool(x, layer, np.max)
    if layer.kind == "AveragePooling2D":
        return _pool(x, layer, np.mean)
    if layer.kind == "Flatten":
        return x.reshape(len(x), -1)
    if layer.kind in ("Dropout", "InputLayer"):
        return x
    raise AssertionError(layer.kind)


def _check_relu(cfg: dict) -> None:
    if cfg.get("max_value") is not None or cfg.get("negative_slope") or cfg.get("threshold"):
        raise ValueError("only the plain ReLU layer is supported")


SUPPORTED = {"Conv2D", "Dense", "BatchNormalization", "ReLU", "Activation", "MaxPooling2D",
             "AveragePooling2D", "Flatten", "Dropout", "InputLayer"}


# ---------------------------------------------------------------------------------------
# The fused plan predict_proba runs
# ---------------------------------------------------------------------------------------

def _activate(x: np.ndarray, name: str) -> np.ndarray:
    """``x`` through an activation, in place where the activation allows."""
    if name == "relu":
        return np.maximum(x, 0, out=x)
    if name == "tanh":
        return np.tanh(x, out=x)
    return _ACTIVATIONS[name](x)


class _Planes(NamedTuple):
    """A batch handed from one Winograd convolution straight to the next one in the plan's
    own layout (:func:`_planes`), with no ``(N, H, W, C)`` array in between."""

    data: np.ndarray  # (2, 2, N, H/2 + pad, W/2 + pad, C) float32, a work array


@dataclass
class _Linear:
    """A Conv2D or Dense layer with what follows it fused in:
    ``activation(max_pool(x * kernel) + bias)``. ``bias`` is ``None`` for none."""

    kernel: np.ndarray               # (kh, kw, in, out) or (in, out), float32
    bias: np.ndarray | None          # (out,) float32
    activation: str = "linear"
    pool: tuple[int, int] | None = None
    same: bool = False               # conv: TensorFlow's "same" padding
    winograd: np.ndarray | None = None  # 3x3 conv: _winograd_kernel(kernel)
    # Set by KerasNumpyModel._plan when the next step is a Winograd convolution run in the
    # same batches: the padding that convolution wants; this step's output then goes to it
    # as _Planes (written once, in place of an interleaved image and a padded copy of it).
    planes_pad: int | None = None

    @property
    def conv(self) -> bool:
        return self.kernel.ndim == 4

    def fold(self, scale: np.ndarray, shift: np.ndarray) -> None:
        """Fold a BatchNorm (``y * scale + shift``) that follows into the weights."""
        kernel, bias = fold_batchnorm(self.kernel, self.bias, scale, shift)
        self.kernel, self.bias = kernel.astype(np.float32), bias.astype(np.float32)

    def pad(self) -> tuple[int, int]:
        """The padding before the kernel, top and left: TensorFlow's "same" puts the odd
        pixel after."""
        kh, kw = self.kernel.shape[:2]
        return ((kh - 1) // 2, (kw - 1) // 2) if self.same else (0, 0)

    def runs_winograd(self, shape: tuple[int, ...]) -> bool:
        """Whether an ``(N, H, W, C)`` input runs by Winograd: a 3x3 kernel and an output
        of whole 2x2 tiles (even H and W: a 3x3 kernel's padding is 2 or 0)."""
        return self.winograd is not None and shape[1] % 2 == 0 and shape[2] % 2 == 0

    def work(self, shape: tuple[int, ...]) -> int:
        """Floats per image of the largest buffer this step makes for input ``shape``."""
        if not self.conv:
            return self.kernel.shape[1]
        kh, kw, cin, cout = self.kernel.shape
        h, w = (shape[1], shape[2]) if self.same else (shape[1] - kh + 1, shape[2] - kw + 1)
        if self.runs_winograd(shape):
            return 4 * h * w * max(cin, cout)  # 16 tile planes of (h/2)(w/2) pixels
        return h * w * kh * kw * cin

    def finish(self) -> None:
        if self.conv and self.kernel.shape[:2] == (3, 3):
            self.winograd = _winograd_kernel(self.kernel)

    def __call__(self, x: np.ndarray | _Planes) -> np.ndarray | _Planes:
        if not self.conv:
            y = x @ self.kernel
        elif isinstance(x, _Planes) or self.runs_winograd(x.shape):
            return self._winograd(x)
        else:
            kh, kw = self.kernel.shape[:2]
            if self.same:
                x = _same_pad(x, kh, kw)
            if self.pool is not None:
                y = _im2col_pool_conv(x, self.kernel, *self.pool)
            else:
                y = _im2col_conv(x, self.kernel)
        if self.bias is not None:
            y += self.bias
        return _activate(y, self.activation)

    def _winograd(self, x: np.ndarray | _Planes) -> np.ndarray | _Planes:
        """The Winograd convolution, max-pooled: a 2x2 pool is the max of each output
        tile's four pixels, so the tiles never need to be put back together."""
        planes = x.data if isinstance(x, _Planes) else _planes(_parity_parts(x), self.pad()[0])
        if self.pool is None and self.planes_pad is not None:
            n, h2, w2 = planes.shape[2], planes.shape[3] - 1, planes.shape[4] - 1
            out, view = _planes_view((n, h2, w2, self.kernel.shape[3]), self.planes_pad)
            _winograd_conv(planes, self.winograd, self.bias, out=view)
            if self.activation in _ZERO_AT_ZERO:  # over the whole array: the border stays 0
                _activate(out, self.activation)
            else:
                view[...] = _activate(view, self.activation)
            return _Planes(out)
        if self.pool is None:
            parts = _activate(_winograd_conv(planes, self.winograd, self.bias), self.activation)
            return _interleave(parts)
        parts = _winograd_conv(planes, self.winograd)  # the bias after pooling: 1/4 of it
        if self.pool == (2, 2):
            np.maximum(parts[0], parts[1], out=parts[0])   # rows 0 and 1 of each tile
            y = np.maximum(parts[0, 0], parts[0, 1])
        else:
            y = _max_pool(_interleave(parts), *self.pool)
        if self.bias is not None:
            y += self.bias
        return _activate(y, self.activation)


def _interleave(parts: np.ndarray) -> np.ndarray:
    """Winograd output tiles ``(2, 2, N, T, S, C)`` -> the ``(N, 2T, 2S, C)`` images (new)."""
    n, th, tw, c = parts.shape[2:]
    return parts.transpose(2, 3, 0, 4, 1, 5).reshape(n, 2 * th, 2 * tw, c)


@dataclass
class _Op:
    """A layer run on its own: an unfused BatchNorm, activation, pooling or Flatten."""

    kind: str
    arg: object = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.kind == "affine":
            scale, shift = self.arg
            return x * scale + shift
        if self.kind == "activation":
            return _activate(np.array(x, np.float32), self.arg)
        if self.kind == "max_pool":
            return _max_pool(x, *self.arg)
        if self.kind == "avg_pool":
            return _pool(x, Layer("AveragePooling2D", self.arg, []), np.mean)
        if self.kind == "flatten":
            return x.reshape(len(x), -1)
        raise AssertionError(self.kind)


def _compile(layers: list[Layer]) -> list:
    """The steps :meth:`KerasNumpyModel.predict_proba` runs for ``layers``."""
    steps: list = []
    for layer in layers:
        cfg, last = layer.config, steps[-1] if steps else None
        open_linear = isinstance(last, _Linear) and last.activation == "linear"
        if layer.kind in ("Conv2D", "Dense"):
            if layer.kind == "Conv2D":
                check_conv(cfg)
            bias = layer.weights[1] if cfg.get("use_bias", True) else None
            steps.append(_Linear(layer.weights[0], bias, cfg.get("activation", "linear"),
                                 same=cfg.get("padding") == "same"))
        elif layer.kind == "BatchNormalization":
            scale, shift = batchnorm_affine(layer)
            if open_linear and last.pool is None:
                last.fold(scale, shift)
            else:
                steps.append(_Op("affine", (scale.astype(np.float32), shift.astype(np.float32))))
        elif layer.kind in ("ReLU", "Activation"):
            if layer.kind == "ReLU":
                _check_relu(cfg)
            name = "relu" if layer.kind == "ReLU" else cfg["activation"]
            if open_linear and (last.pool is None or name in _MONOTONE):
                last.activation = name
            else:
                steps.append(_Op("activation", name))
        elif layer.kind == "MaxPooling2D":
            pool = _check_pool(cfg)
            if (isinstance(last, _Linear) and last.conv and last.pool is None
                    and last.activation in _MONOTONE):
                last.pool = pool
            else:
                steps.append(_Op("max_pool", pool))
        elif layer.kind == "AveragePooling2D":
            _check_pool(cfg)
            steps.append(_Op("avg_pool", cfg))
        elif layer.kind == "Flatten":
            steps.append(_Op("flatten"))
    for step in steps:
        if isinstance(step, _Linear):
            step.finish()
    return steps


# ---------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------

# The largest buffer a step of the plan may hold for one batch (im2col columns, Winograd
# tiles, activations), which sets each step's batch: the CNN's convolutions run 10 images
# at a time (the 14x14x64 layer's 16 Winograd tile planes take 200 KB an image), its
# dense layers 167. Consecutive steps whose batches are within 4x of each other share a
# segment (:meth:`_plan`). Larger batches cost the transforms their L2 cache (1 MB a
# core here), smaller ones cost NumPy's per-call overhead, held under the GIL, which the
# two worker threads take turns at. Measured on the CNN with the parity-plane Winograd
# (2026-11-29, load average 3-5, best of 15 rounds, one thread, 2,048 images): 1 MB
# 264 us an image, 2 MB 252, 3 MB 253, 4 MB 255; two workers, 10,000 images, best of 6:
# 1 MB 2.02 s, 2 MB 1.60 s, 3 MB 1.56 s (the earlier stride-2 Winograd was best at 1 MB).
BATCH_BYTES = 2 * 2**20
MAX_BATCH = 512  # the dense network: 256-2048 images a batch were within noise
# Threads a prediction of several chunks is split over, a chunk at a time each, with every
# BLAS held at one thread (:func:`_one_blas_thread`). Whole chunks per thread keep both
# cores of this project's 2-core machines busy with no hand-off inside a product, while
# OpenBLAS's own threads thrash on these small products as soon as another process wants
# a core (the dense network over 10,000 images in batches of 16: 3.7 s with 2 OpenBLAS
# threads, 1.0 s with 1 thread in each of 2 workers). NumPy releases the GIL in its
# products and array arithmetic, so the threads run in parallel: the CNN over 28,000
# images, 7.7 s with one worker, 4.5 s with two on an otherwise idle machine.
_MIN_CHUNK = 32  # images: fewer than this are predicted in the calling thread
WORKERS = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                     else os.cpu_count() or 1))

_blas = None


def _one_blas_thread():
    """A context holding every BLAS this process loaded at one thread."""
    global _blas
    from threadpoolctl import ThreadpoolController
    if _blas is None:
        _blas = ThreadpoolController()
    return _blas.limit(limits=1, user_api="blas")


class KerasNumpyModel:
    """A ``.keras`` Sequential model evaluated with NumPy: ``predict_proba(x)`` with
    ``x: (N, 28, 28) float32 in [0, 1]`` -> ``(N, 10) float32``."""

    def __init__(self, layers: list[Layer], input_shape: tuple[int, ...]):
        self.layers = layers
        self.input_shape = input_shape
        self._segments, self._n_out = self._plan(_compile(layers))
        self.batch_size = max(batch for _, batch in self._segments)  # the largest chunk

    def _plan(self, steps: list) -> tuple[list[tuple[list, int]], int]:
        """``steps`` cut into segments ``(steps, batch)``, each with the batch that keeps
        its largest buffer within :data:`BATCH_BYTES`, and the number of outputs (one
        zero image run through every step to find the shapes)."""
        x = np.zeros((1, *self.input_shape), np.float32)
        segments: list[tuple[list, int]] = []
        shapes = {}  # id(step) -> its input's shape
        for step in steps:
            shapes[id(step)] = x.shape
            floats = max(x.size, step.work(x.shape) if isinstance(step, _Linear) else 0)
            x = step(x)
            batch = int(np.clip(BATCH_BYTES // (4 * max(floats, x.size)), 1, MAX_BATCH))
            if segments and max(batch, segments[-1][1]) <= 4 * min(batch, segments[-1][1]):
                segments[-1][0].append(step)
                segments[-1] = (segments[-1][0], min(batch, segments[-1][1]))
            else:
                segments.append(([step], batch))
        for seg, _ in segments:  # Winograd convolutions in a row hand over _Planes
            for a, b in zip(seg, seg[1:]):
                if (isinstance(a, _Linear) and isinstance(b, _Linear) and a.pool is None
                        and a.conv and a.runs_winograd(shapes[id(a)])
                        and b.conv and b.runs_winograd(shapes[id(b)])):
                    a.planes_pad = b.pad()[0]
        return segments, x.shape[-1]

    @classmethod
    def load(cls, path: str | Path) -> "KerasNumpyModel":
        """Read a ``.keras`` archive; raises ``ValueError`` for anything unexpected."""
        import h5py

        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
            weights_blob = archive.read("model.weights.h5")
        if config.get("class_name") != "Sequential":
            raise ValueError(f"{path}: expected a Sequential model, found {config.get('class_name')}")
        specs = config["config"]["layers"]
        input_shape = None
        seen: dict[str, int] = {}
        layers = []
        with h5py.File(io.BytesIO(weights_blob), "r") as h5:
            for spec in specs:
                kind = spec["class_name"]
                if kind not in SUPPORTED:
                    raise ValueError(f"{path}: layer type {kind} is not supported")
                if kind == "InputLayer":
                    shape = spec["config"].get("batch_shape") or spec["config"].get("batch_input_shape")
                    input_shape = tuple(shape[1:])
                    continue
                # Keras names weight groups by class and order of appearance, not by layer name.
                k = seen.get(kind, 0)
                seen[kind] = k + 1
                group = f"layers/{snake_case(kind)}" + (f"_{k}" if k else "")
                weights = []
                if group in h5 and "vars" in h5[group]:
                    vars_ = h5[group]["vars"]
                    weights = [np.asarray(vars_[str(i)], np.float32) for i in range(len(vars_))]
                layers.append(Layer(kind, spec["config"], weights))
        if input_shape is None:
            raise ValueError(f"{path}: no input shape in the config")
        try:
            return cls(layers, input_shape)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc

    def count_params(self) -> int:
        return int(sum(w.size for layer in self.layers for w in layer.weights))

    def _run(self, x: np.ndarray) -> np.ndarray:
        """The plan over a chunk of at most :attr:`batch_size` images."""
        for k, (steps, batch) in enumerate(self._segments):
            out = None
            for start in range(0, len(x), batch):
                h = x[start:start + batch]
                for step in steps:
                    h = step(h)
                if len(h) == len(x):
                    out = h
                    break
                if out is None:  # the last segment's result is returned: a new array
                    shape = (len(x), *h.shape[1:])
                    out = (np.empty(shape, np.float32) if k == len(self._segments) - 1
                           else _buffer(shape, f"segment {k}"))
                out[start:start + len(h)] = h
            x = out
        return x if x.flags.owndata else x.copy()  # never a view of a work array

    def predict_proba(self, x: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        x = np.asarray(x, np.float32).reshape(-1, *self.input_shape)
        if len(x) == 0:
            return np.zeros((0, self._n_out), np.float32)
        # A chunk of images per task: each segment splits it further. About 16 a worker,
        # so that the worker left alone at the end of a call waits for little.
        batch = batch_size or min(self.batch_size,
                                  max(_MIN_CHUNK, -(-len(x) // (16 * WORKERS))))
        if len(x) <= batch:
            # A drawing and its views: BLAS as the process has it (the app holds it at one
            # thread; an idle machine's second core reads a dense layer's weights faster,
            # 1 image through the dense network: 0.10 ms with 2 threads, 0.16 ms with 1).
            return self._run(x).astype(np.float32, copy=False)
        starts = range(0, len(x), batch)
        with _one_blas_thread(), ThreadPoolExecutor(min(WORKERS, len(starts))) as pool:
            out = np.concatenate(list(pool.map(lambda s: self._run(x[s:s + batch]), starts)))
        return out.astype(np.float32, copy=False)
