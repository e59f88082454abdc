"""Run a saved Keras ``Sequential`` model with NumPy alone: no TensorFlow at inference.

Importing TensorFlow costs about 600 MB of memory and seconds of start-up, more than a
small hosting tier offers, while these models are a handful of matrix products. This
module reads a ``.keras`` archive's ``config.json`` and ``model.weights.h5`` and evaluates
the layers this project uses (Conv2D, Dense, BatchNormalization, ReLU, pooling, Flatten,
Dropout). Only those known layer types are ever built from the config, so loading never
runs code from the file, like Keras's ``safe_mode``. Tests check it against Keras.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

_ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0),
    "tanh": np.tanh,
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "softmax": lambda x: _softmax(x),
}


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _snake(name: str) -> str:
    """Keras's weight-file name for a layer class: ``Conv2D`` -> ``conv2d``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower().replace("2_d", "2d")


@dataclass
class Layer:
    kind: str
    config: dict
    weights: list[np.ndarray]


def _same_pad(x: np.ndarray, kh: int, kw: int) -> np.ndarray:
    # TensorFlow's "same": the odd pixel of padding goes after, not before.
    return np.pad(x, ((0, 0), ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2), (0, 0)))


def _conv2d(x: np.ndarray, layer: Layer) -> np.ndarray:
    kernel = layer.weights[0]
    kh, kw, cin, cout = kernel.shape
    if tuple(layer.config.get("strides", (1, 1))) != (1, 1):
        raise ValueError("only stride-1 convolutions are supported")
    if layer.config.get("padding") == "same":
        x = _same_pad(x, kh, kw)
    # (N, H', W', C, kh, kw) windows -> one matrix product with the kernel.
    windows = sliding_window_view(x, (kh, kw), axis=(1, 2))
    n, h, w = windows.shape[:3]
    flat = windows.reshape(n * h * w, cin * kh * kw)
    out = flat @ kernel.transpose(2, 0, 1, 3).reshape(cin * kh * kw, cout)
    out = out.reshape(n, h, w, cout)
    if layer.config.get("use_bias", True):
        out = out + layer.weights[1]
    return _ACTIVATIONS[layer.config.get("activation", "linear")](out)


def _pool(x: np.ndarray, layer: Layer, reduce) -> np.ndarray:
    ph, pw = layer.config.get("pool_size", (2, 2))
    if tuple(layer.config.get("strides") or (ph, pw)) != (ph, pw) or layer.config.get("padding", "valid") != "valid":
        raise ValueError("only non-overlapping 'valid' pooling is supported")
    n, h, w, c = x.shape
    x = x[:, :h - h % ph, :w - w % pw]
    return reduce(x.reshape(n, h // ph, ph, w // pw, pw, c), axis=(2, 4))


def _forward(x: np.ndarray, layer: Layer) -> np.ndarray:
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
        if cfg.get("max_value") is not None or cfg.get("negative_slope") or cfg.get("threshold"):
            raise ValueError("only the plain ReLU layer is supported")
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


SUPPORTED = {"Conv2D", "Dense", "BatchNormalization", "ReLU", "Activation", "MaxPooling2D",
             "AveragePooling2D", "Flatten", "Dropout", "InputLayer"}


class KerasNumpyModel:
    """A ``.keras`` Sequential model evaluated with NumPy: ``predict_proba(x)`` with
    ``x: (N, 28, 28) float32 in [0, 1]`` -> ``(N, 10) float32``."""

    def __init__(self, layers: list[Layer], input_shape: tuple[int, ...]):
        self.layers = layers
        self.input_shape = input_shape

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
                group = f"layers/{_snake(kind)}" + (f"_{k}" if k else "")
                weights = []
                if group in h5 and "vars" in h5[group]:
                    vars_ = h5[group]["vars"]
                    weights = [np.asarray(vars_[str(i)], np.float32) for i in range(len(vars_))]
                layers.append(Layer(kind, spec["config"], weights))
        if input_shape is None:
            raise ValueError(f"{path}: no input shape in the config")
        return cls(layers, input_shape)

    def count_params(self) -> int:
        return int(sum(w.size for layer in self.layers for w in layer.weights))

    def predict_proba(self, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
        # Small batches keep the unfolded conv windows in cache (a 512 batch was 4x slower).
        x = np.asarray(x, np.float32).reshape(-1, *self.input_shape)
        outs = []
        for start in range(0, len(x), batch_size):
            h = x[start:start + batch_size]
            for layer in self.layers:
                h = _forward(h, layer)
            outs.append(h.astype(np.float32))
        return np.concatenate(outs) if outs else np.zeros((0, 10), np.float32)
