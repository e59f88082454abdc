"""Train the project's Keras architectures in NumPy: Train live and Teach without TensorFlow.

The app's training worker (:func:`mnist_core.package.train_in_worker`) used to import
TensorFlow to train the Keras dense network and CNN: 1.0-1.3 GB for the worker beside a
~350-400 MB server, over the ~690 MB a small hosting tier allows (this engine's worker:
~180-215 MB, benchmarks/MEMORY.md). This module trains the same
``Sequential`` networks (:class:`~mnist_core.architectures.DenseConfig`,
:class:`~mnist_core.architectures.CNNConfig`, :class:`~mnist_core.architectures.LeNet5Config`,
or any ``.keras`` file of the layer types :mod:`mnist_core.keras_numpy` reads) with NumPy
alone, as Keras would, and writes a real ``.keras`` file that Keras 3 loads (with
``safe_mode``) and :class:`~mnist_core.keras_numpy.KerasNumpyModel` runs. It never imports
TensorFlow or Keras. The offline CLI (``python -m mnist_core train``, whose files ship)
still trains with Keras itself.

What "as Keras would" means, decision by decision (tests hold each to Keras):

* initialisation: ``glorot_uniform`` kernels, zero biases, BatchNorm gamma 1, beta 0,
  moving mean 0, moving variance 1 (Keras's defaults, which the builders use);
* forward pass in training mode: BatchNormalization normalises with the batch's mean and
  biased variance and moves its moving statistics by ``momentum``; Dropout keeps a unit
  with probability ``1 - rate`` and scales it by ``1 / (1 - rate)``;
* loss: categorical cross-entropy of the softmax's logits against label-smoothed one-hot
  targets, averaged over the batch (Keras reads the logits behind a softmax output);
* optimiser: Keras's ``AdamW`` step by step: decoupled weight decay ``w -= w * wd * lr``
  on every trainable variable (biases and BatchNorm's too), then Adam with its bias
  correction folded into the step size;
* the training loop: :func:`mnist_core.train.train_keras`'s own pieces (validation split,
  per-epoch augmentation on a worker thread, per-batch cosine schedule, history rows,
  ``"batch"``/``"epoch"`` events, the stop flag), so the page sees no difference.

One step Keras does not take: after the last epoch (or a stop), before the last validation
row, every BatchNorm's moving mean and variance are re-estimated exactly over the training
images (:func:`precise_batchnorm`, ``EngineConfig.bn_images``): a short run's moving
averages still sit near their initial 0 and 1, and its model would answer at chance.

Layers are :class:`mnist_core.keras_numpy.Layer` (kind, Keras config, weights in Keras's
order); the stateless layers run forward through :func:`mnist_core.keras_numpy.apply_layer`
and backward through :func:`mnist_core.keras_numpy_grad._backward`, the code Look inside
uses; this module adds the parameter gradients, training-mode BatchNorm and Dropout.
Images are ``(N, 28, 28, 1) float32 in [0, 1]``; every function keeps its input's dtype
(float64 for the finite-difference tests).
"""

from __future__ import annotations

import datetime
import io
import json
import time
import zipfile
from dataclasses import dataclass
from typing import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .architectures import CNNConfig, DenseConfig, LeNet5Config
from .data import to_float
from .keras_numpy import KerasNumpyModel, Layer, check_conv, apply_layer, snake_case
from .keras_numpy_grad import _activation, _activation_grad, _backward, _conv_input_grad
from .train import (Callback, StopFlag, TrainConfig, TrainResult, _EpochFeeder, _extra_pool,
                    _prepare, run_epochs)


@dataclass(frozen=True)
class EngineConfig:
    """How the NumPy engine computes (not what it learns: that is the TrainConfig)."""

    beta_1: float = 0.9          # AdamW's moment decay rates and epsilon: Keras's defaults,
    beta_2: float = 0.999        # which train_keras uses (it sets only lr and weight decay)
    epsilon: float = 1e-7
    chunk_bytes: int = 8 * 2**20  # a convolution's im2col columns are built for at most
                                  # this many bytes of images at a time: a batch of 512
                                  # CNN images would otherwise hold ~300 MB of columns,
                                  # and a few MB stay in cache
    blas_threads: int | None = 1  # BLAS threads while training (None: as the process
                                  # has it). One: a live-CNN step of 128 images took
                                  # 159 ms with one and 589 ms with two on this 2-core
                                  # machine shared with other work (OpenBLAS's threads
                                  # spin and thrash on these small products); splitting
                                  # a conv's image chunks over two Python threads instead
                                  # measured no faster here (112 against 126 ms)
    bn_images: int = 4096         # "precise BN": after training (and after a stop), every
                                  # BatchNorm's moving mean and variance are re-estimated
                                  # exactly over up to this many training images (0: keep
                                  # the moving averages). Those averages (momentum 0.9-0.99)
                                  # have barely left their initial 0 and 1 after a few dozen
                                  # batches while the weights have: live CNN, 1,000 images,
                                  # one epoch, validation 11% with them, 80-85% re-estimated
    bn_batch: int | None = None   # images per batch of that pass, each normalised by its own
                                  # statistics as in training (None: the training's batch
                                  # size, the batches the weights learnt under)


DEFAULT_ENGINE = EngineConfig()

# Streams of the SeedSequence(cfg.seed) tree, apart from the feeder's (seed, epoch) ones.
_INIT_STREAM, _DROPOUT_STREAM, _BN_STREAM = 0, 1, 2


# ---------------------------------------------------------------------------------------
# Keras's serialized configs: what config.json holds, layer by layer
# ---------------------------------------------------------------------------------------
# The architectures are built here a second time (mnist_core.keras_models builds them in
# Keras for the CLI); tests check both configs are the same, key for key.

_FLOAT32 = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"},
            "registered_name": None}


def _initializer(name: str, config: dict | None = None) -> dict:
    return {"module": "keras.initializers", "class_name": name, "config": config or {},
            "registered_name": None}


class Builder:
    """A Keras ``Sequential`` model written layer by layer in Keras's own serialized form
    (names as a fresh Keras session gives them: ``conv2d``, ``conv2d_1``...), with its
    weights initialised as Keras initialises them. ``input_shape`` excludes the batch."""

    def __init__(self, input_shape: tuple[int, ...] = (28, 28, 1)):
        self.input_shape = tuple(input_shape)
        self.shape = self.input_shape  # the output shape of the last layer added
        self.entries: list[dict] = []
        self._names: dict[str, int] = {}

    def _add(self, kind: str, config: dict, out_shape: tuple[int, ...], built: bool) -> "Builder":
        snake = snake_case(kind)
        k = self._names.get(snake, 0)
        self._names[snake] = k + 1
        entry = {"module": "keras.layers", "class_name": kind,
                 "config": {"name": snake + (f"_{k}" if k else ""), "trainable": True,
                            "dtype": _FLOAT32, **config},
                 "registered_name": None}
        if built:  # layers with their own build() record the shape they were built for
            entry["build_config"] = {"input_shape": [None, *self.shape]}
        self.entries.append(entry)
        self.shape = out_shape
        return self

    def conv2d(self, filters: int, kernel: int, padding: str = "valid",
               activation: str = "linear", use_bias: bool = True) -> "Builder":
        h, w, _ = self.shape
        if padding == "valid":
            h, w = h - kernel + 1, w - kernel + 1
        return self._add("Conv2D", {
            "filters": filters, "kernel_size": [kernel, kernel], "strides": [1, 1],
            "padding": padding, "data_format": "channels_last", "dilation_rate": [1, 1],
            "groups": 1, "activation": activation, "use_bias": use_bias,
            "kernel_initializer": _initializer("GlorotUniform", {
                "seed": None, "input_axes": None, "output_axes": None}),
            "bias_initializer": _initializer("Zeros"), "kernel_regularizer": None,
            "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None,
            "bias_constraint": None}, (h, w, filters), True)

    def dense(self, units: int, activation: str = "linear", use_bias: bool = True) -> "Builder":
        return self._add("Dense", {
            "units": units, "activation": activation, "use_bias": use_bias,
            "kernel_initializer": _initializer("GlorotUniform", {
                "seed": None, "input_axes": None, "output_axes": None}),
            "bias_initializer": _initializer("Zeros"), "kernel_regularizer": None,
            "bias_regularizer": None, "kernel_constraint": None, "bias_constraint": None,
            "quantization_config": None}, (units,), True)

    def batch_norm(self, momentum: float = 0.99) -> "Builder":
        return self._add("BatchNormalization", {
            "axis": -1, "momentum": momentum, "epsilon": 0.001, "center": True, "scale": True,
            "beta_initializer": _initializer("Zeros"), "gamma_initializer": _initializer("Ones"),
            "moving_mean_initializer": _initializer("Zeros"),
            "moving_variance_initializer": _initializer("Ones"), "beta_regularizer": None,
            "gamma_regularizer": None, "beta_constraint": None, "gamma_constraint": None,
            "synchronized": False, "renorm": False, "renorm_clipping": None,
            "renorm_momentum": 0.99}, self.shape, True)

    def relu(self) -> "Builder":
        return self._add("ReLU", {"max_value": None, "negative_slope": 0.0, "threshold": 0.0},
                         self.shape, False)

    def max_pool(self, size: int | tuple[int, int] = 2, kind: str = "MaxPooling2D") -> "Builder":
        (ph, pw), (h, w, c) = ((size, size) if isinstance(size, int) else size), self.shape
        return self._add(kind, {"pool_size": [ph, pw], "padding": "valid", "strides": [ph, pw],
                                "data_format": "channels_last"}, (h // ph, w // pw, c), False)

    def avg_pool(self, size: int | tuple[int, int] = 2) -> "Builder":
        return self.max_pool(size, "AveragePooling2D")

    def activation(self, name: str) -> "Builder":
        return self._add("Activation", {"activation": name}, self.shape, False)

    def flatten(self) -> "Builder":
        return self._add("Flatten", {"data_format": "channels_last"},
                         (int(np.prod(self.shape)),), True)

    def dropout(self, rate: float) -> "Builder":
        return self._add("Dropout", {"rate": rate, "seed": None, "noise_shape": None},
                         self.shape, False)

    def build(self, name: str, seed: int | np.random.Generator = 0) -> "KerasNet":
        """The network, its weights drawn from ``seed`` (an int: its own init stream)."""
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(
            np.random.SeedSequence(seed, spawn_key=(_INIT_STREAM,)))
        config = {"module": "keras", "class_name": "Sequential", "config": {
            "name": name, "trainable": True, "dtype": _FLOAT32,
            "layers": [{"module": "keras.layers", "class_name": "InputLayer", "config": {
                "batch_shape": [None, *self.input_shape], "dtype": "float32",
                "sparse": False, "ragged": False, "name": "input_layer", "optional": False},
                "registered_name": None}, *self.entries],
            "build_input_shape": [None, *self.input_shape]},
            "registered_name": None, "build_config": {"input_shape": [None, *self.input_shape]},
            "compile_config": {}}
        shape, layers = self.input_shape, []
        for entry in self.entries:
            kind, cfg = entry["class_name"], entry["config"]
            if kind in ("Conv2D", "Dense"):
                fan_in = shape[-1]
                kshape = ((*cfg["kernel_size"], fan_in, cfg["filters"]) if kind == "Conv2D"
                          else (fan_in, cfg["units"]))
                weights = [glorot_uniform(kshape, rng)]
                if cfg["use_bias"]:
                    weights.append(np.zeros(kshape[-1], np.float32))
            elif kind == "BatchNormalization":
                c = shape[-1]
                weights = [np.ones(c, np.float32), np.zeros(c, np.float32),
                           np.zeros(c, np.float32), np.ones(c, np.float32)]
            else:
                weights = []
            layers.append(Layer(kind, cfg, weights))
            shape = _out_shape(kind, cfg, shape)
        return KerasNet(config, layers, self.input_shape)


def _out_shape(kind: str, cfg: dict, shape: tuple[int, ...]) -> tuple[int, ...]:
    if kind == "Conv2D":
        k = cfg["kernel_size"]
        h, w = shape[:2] if cfg["padding"] == "same" else (shape[0] - k[0] + 1, shape[1] - k[1] + 1)
        return (h, w, cfg["filters"])
    if kind == "Dense":
        return (cfg["units"],)
    if kind in ("MaxPooling2D", "AveragePooling2D"):
        p = cfg["pool_size"]
        return (shape[0] // p[0], shape[1] // p[1], shape[2])
    if kind == "Flatten":
        return (int(np.prod(shape)),)
    return shape


def glorot_uniform(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Keras's ``GlorotUniform``: U(-l, l), ``l = sqrt(6 / (fan_in + fan_out))``, a conv
    kernel ``(kh, kw, in, out)`` counting its receptive field in both fans. float32."""
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape).astype(np.float32)


def dense_builder(cfg: DenseConfig) -> Builder:
    """As :func:`mnist_core.keras_models.build_dense`."""
    b = Builder().flatten()
    for units in cfg.hidden:
        b.dense(units, "relu").dropout(cfg.dropout)
    return b.dense(10, "softmax")


def cnn_builder(cfg: CNNConfig) -> Builder:
    """As :func:`mnist_core.keras_models.build_cnn`."""
    f1, f2 = cfg.filters
    m = cfg.bn_momentum
    return (Builder().conv2d(f1, 5, "same", use_bias=False).batch_norm(m).relu().max_pool()
            .conv2d(f2, 3, "same", use_bias=False).batch_norm(m).relu()
            .conv2d(f2, 3, "same", use_bias=False).batch_norm(m).relu().max_pool()
            .flatten().dropout(cfg.dropout).dense(cfg.dense, use_bias=False).batch_norm(m)
            .relu().dropout(cfg.dropout).dense(10, "softmax"))


def lenet5_builder(cfg: LeNet5Config) -> Builder:
    """As :func:`mnist_core.keras_models.build_lenet5`."""
    (c1, c3), (c5, f6), act = cfg.filters, cfg.dense, cfg.activation
    return (Builder().conv2d(c1, 5, "same", act).max_pool().conv2d(c3, 5, "valid", act)
            .max_pool().flatten().dense(c5, act).dense(f6, act).dense(10, "softmax"))


# The builder and Keras's name for each architecture (the model names keras_models gives).
_BUILDERS: dict[type, tuple[Callable[[object], Builder], str]] = {
    DenseConfig: (dense_builder, "dense"), CNNConfig: (cnn_builder, "cnn"),
    LeNet5Config: (lenet5_builder, "lenet5")}


# ---------------------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------------------

@dataclass
class KerasNet:
    """A Keras ``Sequential`` network held in NumPy, for training.

    ``config``: the model's serialized Keras config (``config.json``); ``layers``: every
    layer but the InputLayer, in order, each with its weights in Keras's order (Conv2D and
    Dense: kernel ``(kh, kw, in, out)`` / ``(in, out)`` then bias ``(out,)``;
    BatchNormalization: gamma, beta, moving mean, moving variance, each ``(channels,)``),
    float32 (float64 in gradient tests); ``input_shape``: one image's shape, ``(28, 28, 1)``.
    Training updates the weight arrays in place.
    """

    config: dict
    layers: list[Layer]
    input_shape: tuple[int, ...]

    @property
    def name(self) -> str:
        return self.config["config"]["name"]

    def params(self) -> list[np.ndarray]:
        """The trainable weights, in Keras's ``trainable_weights`` order."""
        return [w for layer in self.layers for w in layer.weights[:_n_trainable(layer)]]

    def predictor(self) -> KerasNumpyModel:
        """The inference evaluator of the current weights (copies them: training may go on)."""
        return KerasNumpyModel([Layer(l.kind, l.config, [np.array(w, np.float32) for w in l.weights])
                                for l in self.layers], self.input_shape)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """``(N, 28, 28)`` (or ``(N, *input_shape)``) float32 -> ``(N, 10)`` float32."""
        return self.predictor().predict_proba(x)

    @classmethod
    def from_arch(cls, arch, seed: int = 0) -> "KerasNet":
        """A fresh network of ``arch``, weights from ``seed``; an architecture carrying a
        trained ``.keras`` file (:mod:`mnist_core.finetune`'s warm configs: a non-empty
        ``weights`` field) starts from that file's weights instead."""
        trained = getattr(arch, "weights", b"")
        if trained:
            return cls.from_bytes(trained)
        for kind, (builder, name) in _BUILDERS.items():
            if isinstance(arch, kind):
                return builder(arch).build(name, seed)
        raise TypeError(f"no NumPy training for {type(arch).__name__}")

    @classmethod
    def from_bytes(cls, data: bytes) -> "KerasNet":
        """The network of a ``.keras`` file's bytes (layers as
        :class:`~mnist_core.keras_numpy.KerasNumpyModel` reads and checks them)."""
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            config = json.loads(archive.read("config.json"))
        fast = KerasNumpyModel.load(io.BytesIO(data))
        layers = [Layer(l.kind, l.config, [np.array(w, np.float32) for w in l.weights])
                  for l in fast.layers]
        return cls(config, layers, tuple(fast.input_shape))

    def to_bytes(self) -> bytes:
        """The ``.keras`` file, laid out as Keras 3 writes one: ``metadata.json``,
        ``config.json`` and ``model.weights.h5`` (a ``vars`` group per layer under
        ``layers/<class in snake case>[_k]``, named by the layer; the model's own empty
        ``vars``), stored uncompressed."""
        import h5py

        weights = io.BytesIO()
        with h5py.File(weights, "w") as h5:
            h5.create_group("vars").attrs["name"] = self.name
            seen: dict[str, int] = {}
            for layer in self.layers:
                snake = snake_case(layer.kind)
                k = seen.get(snake, 0)
                seen[snake] = k + 1
                group = h5.create_group(f"layers/{snake}" + (f"_{k}" if k else "")
                                        ).create_group("vars")
                group.attrs["name"] = layer.config["name"]
                for i, w in enumerate(layer.weights):
                    group[str(i)] = np.asarray(w, np.float32)
        meta = {"keras_version": _keras_version(),
                "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as archive:
            for name, text in (("metadata.json", json.dumps(meta)),
                               ("config.json", json.dumps(self.config))):
                archive.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), text)
            archive.writestr("model.weights.h5", weights.getvalue())
        return out.getvalue()


def _keras_version() -> str:
    """The installed Keras's version (read from its metadata: Keras is not imported), else
    the version the shipped files were saved with."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("keras")
    except PackageNotFoundError:
        return "3.15.1"


def _n_trainable(layer: Layer) -> int:
    """How many of the layer's weights train (BatchNorm's moving statistics do not)."""
    if layer.kind == "BatchNormalization":
        return int(layer.config.get("scale", True)) + int(layer.config.get("center", True))
    return len(layer.weights)


# ---------------------------------------------------------------------------------------
# Forward (training mode) and backward, layer by layer
# ---------------------------------------------------------------------------------------

def _image_chunks(n: int, bytes_per_image: int, engine: EngineConfig) -> list[slice]:
    """``n`` images in equal runs of at most ``engine.chunk_bytes``."""
    k = max(1, -(-n * bytes_per_image // engine.chunk_bytes))
    step = -(-n // min(k, max(n, 1)))
    return [slice(s, s + step) for s in range(0, n, step)]


def _pad(x: np.ndarray, layer: Layer) -> np.ndarray:
    """``x`` padded as the conv's ``padding`` asks: TensorFlow's "same" puts the odd pixel
    after, as :func:`mnist_core.keras_numpy._same_pad` (whose work buffers are float32 and
    reused, so not for arrays kept for the backward pass)."""
    if layer.config.get("padding") != "same":
        return x
    kh, kw = layer.weights[0].shape[:2]
    return np.pad(x, ((0, 0), ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2), (0, 0)))


def _im2col(xp: np.ndarray, kh: int, kw: int) -> np.ndarray:
    """Padded ``(n, H, W, C)`` -> ``(n * H' * W', kh * kw * C)`` windows, rows in image
    order, columns in the kernel's ``(kh, kw, C)`` order (so ``kernel.reshape(-1, out)``
    multiplies it); C is innermost in both, which keeps the copy contiguous."""
    n, hp, wp, c = xp.shape
    windows = sliding_window_view(xp, (kh, kw), axis=(1, 2))  # (n, H', W', C, kh, kw)
    return windows.transpose(0, 1, 2, 4, 5, 3).reshape(n * (hp - kh + 1) * (wp - kw + 1),
                                                       kh * kw * c)


@dataclass
class _Cache:
    """What a layer's backward pass needs from its forward pass."""

    x: np.ndarray | None             # the layer's input (a conv's: padded; BatchNorm: none)
    out: object = None               # output; Dense/Conv2D: (pre-activation, output), or
                                     # None for a linear one
    extra: object = None             # BatchNorm: (x_hat, 1/std, mean, var); Dropout: mask


def layer_forward(layer: Layer, x: np.ndarray, rng: np.random.Generator | None,
                  engine: EngineConfig = DEFAULT_ENGINE, logits: bool = False
                  ) -> tuple[np.ndarray, _Cache]:
    """One layer in training mode: ``(output, cache)``. ``logits``: a Dense or Conv2D
    whose softmax the loss takes over returns its pre-activation. Pure: BatchNorm's moving
    statistics are moved by :func:`update_moving_stats`."""
    kind, cfg = layer.kind, layer.config
    if kind in ("Dense", "Conv2D"):
        if kind == "Dense":
            z = x @ layer.weights[0]
            cache = _Cache(x)
        else:
            check_conv(cfg)
            kernel = layer.weights[0]
            kh, kw, cin, cout = kernel.shape
            xp = _pad(x, layer)
            n, h, w = len(x), xp.shape[1] - kh + 1, xp.shape[2] - kw + 1
            z = np.empty((n, h, w, cout), np.result_type(x, kernel))
            k2 = kernel.reshape(kh * kw * cin, cout)
            for s in _image_chunks(n, h * w * kh * kw * cin * x.itemsize, engine):
                np.matmul(_im2col(xp[s], kh, kw), k2, out=z[s].reshape(-1, cout))
            cache = _Cache(xp)
        if cfg.get("use_bias", True):
            z += layer.weights[1]
        act = "linear" if logits else _activation(layer)
        if act == "linear":  # nothing to differentiate: z is not kept (a conv's is MBs)
            return z, cache
        y = apply_layer(z, Layer("Activation", {"activation": act}, []))
        cache.out = (z, y)
        return y, cache
    if kind == "BatchNormalization":
        if cfg.get("axis", -1) not in (-1, x.ndim - 1, [-1], [x.ndim - 1]):
            raise ValueError("only BatchNormalization over the last axis is supported")
        # Per channel over every other axis: as rows of a (pixels, channels) matrix,
        # which NumPy reduces several times faster than over three axes.
        x2 = x.reshape(-1, x.shape[-1])
        mean = x2.mean(axis=0)
        x_hat = x2 - mean
        var = np.einsum("ij,ij->j", x_hat, x_hat) / len(x2)  # biased, as Keras's moments
        inv = 1.0 / np.sqrt(var + cfg.get("epsilon", 1e-3))
        x_hat *= inv  # in place: each pass over a conv's output is ~2 ms at 128 images
        gamma, beta = _gamma_beta(layer)
        y = x_hat * gamma
        y += beta
        # Its input is not needed backward: not kept (the conv before may free it).
        return y.reshape(x.shape), _Cache(None, extra=(x_hat.reshape(x.shape), inv, mean, var))
    if kind == "Dropout":
        rate = cfg.get("rate", 0.0)
        if rate <= 0 or rng is None:
            return x, _Cache(x)
        keep = 1.0 - rate
        mask = (rng.random(x.shape, np.float32) < keep).astype(x.dtype) / x.dtype.type(keep)
        return x * mask, _Cache(x, extra=mask)
    y = apply_layer(x, layer)  # stateless: ReLU, Activation, pooling, Flatten
    return y, _Cache(x, y)


def _gamma_beta(layer: Layer):
    cfg, w = layer.config, list(layer.weights)
    gamma = w.pop(0) if cfg.get("scale", True) else 1.0
    beta = w.pop(0) if cfg.get("center", True) else 0.0
    return gamma, beta


def layer_backward(layer: Layer, cache: _Cache, g: np.ndarray, need_dx: bool = True,
                   engine: EngineConfig = DEFAULT_ENGINE, logits: bool = False
                   ) -> tuple[np.ndarray | None, list[np.ndarray]]:
    """``g``, the gradient of the layer's output (of its pre-activation when ``logits``),
    back through the layer: ``(d input or None when not need_dx, [d trainable weight,
    ...] in Keras's order)``."""
    kind, cfg = layer.kind, layer.config
    if kind in ("Dense", "Conv2D"):
        dz = g if logits or cache.out is None else _activation_grad(_activation(layer),
                                                                     *cache.out, g)
        grads = []
        if kind == "Dense":
            grads.append(cache.x.T @ dz)
            dx = dz @ layer.weights[0].T if need_dx else None
        else:
            kernel = layer.weights[0]
            kh, kw, cin, cout = kernel.shape
            xp, n = cache.x, len(dz)
            h, w = dz.shape[1:3]
            dz2 = dz.reshape(-1, cout)
            rows = h * w
            chunks = _image_chunks(n, rows * kh * kw * max(cin, cout) * dz.itemsize, engine)
            dk = np.zeros((kh * kw * cin, cout), dz.dtype)
            for s in chunks:
                dk += _im2col(xp[s], kh, kw).T @ dz2[s.start * rows:s.stop * rows]
            grads.append(dk.reshape(kernel.shape))
            dx = None
            if need_dx:
                # keras_numpy_grad's input gradient (the padding cropped off), by chunk.
                in_shape = (n, xp.shape[1] - (kh - 1 if cfg.get("padding") == "same" else 0),
                            xp.shape[2] - (kw - 1 if cfg.get("padding") == "same" else 0), cin)
                dx = np.empty(in_shape, dz.dtype)
                for s in chunks:
                    dx[s] = _conv_input_grad(dz[s], layer, in_shape)
        if cfg.get("use_bias", True):
            grads.append(dz.reshape(-1, dz.shape[-1]).sum(axis=0))
        return dx, grads
    if kind == "BatchNormalization":
        x_hat, inv, _, _ = cache.extra
        gamma, _ = _gamma_beta(layer)
        g2, h2 = g.reshape(-1, g.shape[-1]), x_hat.reshape(-1, g.shape[-1])
        dbeta = g2.sum(axis=0)
        dgamma = np.einsum("ij,ij->j", g2, h2)
        dx = None
        if need_dx:  # gamma / std * (g - mean(g) - x_hat * mean(g * x_hat)), in place
            m = len(g2)
            dx = g2 - dbeta / m
            dx -= h2 * (dgamma / m)
            dx *= gamma * inv
            dx = dx.reshape(g.shape)
        grads = ([dgamma] if cfg.get("scale", True) else []) + (
            [dbeta] if cfg.get("center", True) else [])
        return dx, grads
    if kind == "Dropout":
        return (g if cache.extra is None else g * cache.extra) if need_dx else None, []
    return (_backward(layer, cache.x, cache.out, g) if need_dx else None), []


def update_moving_stats(layers: list[Layer], caches: list[_Cache]) -> None:
    """Move each BatchNorm's moving mean and variance towards its batch statistics, as
    Keras does in a training step: ``moving = moving * momentum + batch * (1 - momentum)``."""
    for layer, cache in zip(layers, caches):
        if layer.kind == "BatchNormalization":
            _, _, mean, var = cache.extra
            momentum = layer.config.get("momentum", 0.99)
            for moving, batch in zip(layer.weights[-2:], (mean, var)):
                moving *= momentum
                moving += (batch * (1 - momentum)).astype(moving.dtype)


def precise_batchnorm(net: KerasNet, x: np.ndarray, batch_size: int,
                      engine: EngineConfig = DEFAULT_ENGINE) -> int:
    """Set every BatchNorm's moving mean and variance to its input's exact population
    statistics over the images ``x`` ("precise BN", Wu & Johnson 2021): one pass in
    training mode, dropout off, ``x`` in equal batches of at most ``batch_size`` each
    normalised by its own statistics (as during training), every BatchNorm layer's batch
    means and biased variances pooled over all of them (the variance with the batches'
    spread of means: ``E[(x - mean)^2]`` over every image and position). ``x``: ``(N, 28,
    28)`` uint8 or float, or ``(N, *input_shape)``. Returns how many images were used (0:
    no BatchNorm layer, nothing run). The trainable weights are not touched."""
    layers = net.layers
    bn = [i for i, layer in enumerate(layers) if layer.kind == "BatchNormalization"]
    if not bn or not len(x):
        return 0
    n_batches = -(-len(x) // max(1, batch_size))
    sums = {i: [] for i in bn}  # per layer: (images, batch mean, batch variance), float64
    for idx in np.array_split(np.arange(len(x)), n_batches):
        h = x[idx[0]:idx[-1] + 1]
        h = (to_float(h) if h.dtype == np.uint8 else np.asarray(h, np.float32)).reshape(
            len(h), *net.input_shape)
        for i, layer in enumerate(layers[:bn[-1] + 1]):
            h, cache = layer_forward(layer, h, None, engine)  # rng None: no dropout
            if i in sums:
                _, _, mean, var = cache.extra
                sums[i].append((len(idx), mean.astype(np.float64), var.astype(np.float64)))
            del cache
    for i, parts in sums.items():
        counts = np.array([n for n, _, _ in parts], np.float64)[:, None]
        means = np.stack([m for _, m, _ in parts])
        variances = np.stack([v for _, _, v in parts])
        mean = (counts * means).sum(0) / counts.sum()
        var = (counts * (variances + (means - mean) ** 2)).sum(0) / counts.sum()
        moving_mean, moving_var = layers[i].weights[-2:]
        moving_mean[...] = mean
        moving_var[...] = var
    return len(x)


def _precise_bn_sample(x: np.ndarray, cfg: TrainConfig, engine: EngineConfig) -> np.ndarray:
    """Up to ``engine.bn_images`` of the training images ``x`` (not augmented: the images
    the network is then asked about look like them), drawn from the seed's own stream."""
    n = min(len(x), max(0, engine.bn_images))
    if n >= len(x):
        return x
    rng = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(_BN_STREAM,)))
    return x[np.sort(rng.choice(len(x), n, replace=False))]


def _check_softmax_head(layers: list[Layer]) -> None:
    if not layers or layers[-1].kind not in ("Dense", "Conv2D") or \
            _activation(layers[-1]) != "softmax":
        raise ValueError("the network must end in a Dense layer with a softmax")


def smoothed_targets(y: np.ndarray, n_classes: int, label_smoothing: float,
                     dtype=np.float32) -> np.ndarray:
    """Keras's label smoothing: ``onehot * (1 - s) + s / classes``, ``(N, classes)``."""
    t = np.full((len(y), n_classes), label_smoothing / n_classes, dtype)
    t[np.arange(len(y)), y] += 1.0 - label_smoothing
    return t


def train_step(net: KerasNet, optimizer: "AdamW", x: np.ndarray, y: np.ndarray, lr: float,
               label_smoothing: float, rng: np.random.Generator | None,
               engine: EngineConfig = DEFAULT_ENGINE) -> tuple[float, np.ndarray]:
    """One batch as Keras's ``train_step``: forward and backward, BatchNorm's moving
    statistics moved, one AdamW step at ``lr``. Returns ``(loss, logits)``; the batch's
    caches (~60 MB for the live CNN at 128 images) are freed on return, before the next
    batch makes its own."""
    loss, logits, grads, caches = loss_and_grads(net, x, y, label_smoothing, rng, engine)
    update_moving_stats(net.layers, caches)
    del caches
    optimizer.step(grads, lr)
    return loss, logits


def loss_and_grads(net: KerasNet, x: np.ndarray, y: np.ndarray, label_smoothing: float,
                   rng: np.random.Generator | None, engine: EngineConfig = DEFAULT_ENGINE):
    """One training-mode pass over a batch: ``(loss, logits, grads, caches)``.

    ``x``: ``(B, *input_shape)``; ``y``: ``(B,)`` int labels. ``loss``: mean smoothed
    cross-entropy (a float); ``logits``: ``(B, classes)``; ``grads``: d loss / d each of
    :meth:`KerasNet.params`, same shapes and order; ``caches``: for
    :func:`update_moving_stats`. ``rng`` draws Dropout's masks (None: no dropout).
    """
    layers = net.layers
    _check_softmax_head(layers)
    h, caches = x, []
    for i, layer in enumerate(layers):
        h, cache = layer_forward(layer, h, rng, engine, logits=i == len(layers) - 1)
        caches.append(cache)
    z = h - h.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    t = smoothed_targets(y, z.shape[1], label_smoothing, z.dtype)
    loss = float(-(t * logp).sum(axis=1).mean())
    g = (np.exp(logp) - t) / len(y)  # d mean CE / d logits
    grads: list[list[np.ndarray]] = []
    for i in range(len(layers) - 1, -1, -1):
        g, layer_grads = layer_backward(layers[i], caches[i], g, need_dx=i > 0, engine=engine,
                                        logits=i == len(layers) - 1)
        grads.append(layer_grads)
        # Done with this layer's arrays: freed now, so the layers below reuse their memory
        # (BatchNorm keeps its batch statistics, for update_moving_stats).
        stats = caches[i].extra if layers[i].kind == "BatchNormalization" else None
        caches[i] = _Cache(None, extra=stats and (None, None, *stats[2:]))
    flat = [w for layer_grads in reversed(grads) for w in layer_grads]
    return loss, h, flat, caches


# ---------------------------------------------------------------------------------------
# Keras's AdamW
# ---------------------------------------------------------------------------------------

class AdamW:
    """``keras.optimizers.AdamW`` on NumPy arrays, updated in place: per step, every
    variable first decays (``w -= w * weight_decay * lr``), then takes Adam's step
    ``w -= m * alpha / (sqrt(v) + epsilon)`` with ``alpha = lr * sqrt(1 - beta_2^t) /
    (1 - beta_1^t)``, as Keras computes it (not :class:`mnist_core.numpy_net.Adam`, which
    spares biases the decay and puts epsilon inside the bias correction)."""

    def __init__(self, params: list[np.ndarray], weight_decay: float,
                 engine: EngineConfig = DEFAULT_ENGINE):
        self.params, self.weight_decay, self.engine = params, weight_decay, engine
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.iterations = 0

    def step(self, grads: list[np.ndarray], lr: float) -> None:
        e = self.engine
        self.iterations += 1
        t = self.iterations
        alpha = lr * np.sqrt(1 - e.beta_2 ** t) / (1 - e.beta_1 ** t)
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            if self.weight_decay:
                p -= p * p.dtype.type(self.weight_decay * lr)
            m += (g - m) * p.dtype.type(1 - e.beta_1)
            v += (g * g - v) * p.dtype.type(1 - e.beta_2)
            p -= m * p.dtype.type(alpha) / (np.sqrt(v) + p.dtype.type(e.epsilon))


# ---------------------------------------------------------------------------------------
# The training loop
# ---------------------------------------------------------------------------------------

def train_keras_numpy(data, cfg: TrainConfig, arch, callback: Callback | None = None,
                      stop: StopFlag | None = None, engine: EngineConfig = DEFAULT_ENGINE
                      ) -> TrainResult:
    """:func:`mnist_core.train.train_keras` in NumPy: the network of ``arch`` (an
    architecture config; one carrying a trained file starts from it) trained on ``data``
    with ``cfg``; the result's ``model`` is a :class:`KerasNet`
    (:meth:`KerasModel.from_net <mnist_core.model.KerasModel.from_net>` wraps it)."""
    c0 = time.process_time()
    # The training images stay uint8 (converted a batch at a time, to the same floats):
    # 20,000 of them are 16 MB instead of 63 MB in the worker.
    x, y, x_val, y_val = _prepare(data, cfg, as_float=False)
    net = KerasNet.from_arch(arch, cfg.seed)
    extra = _extra_pool(data, cfg)
    steps = int(np.ceil((len(x) + _EpochFeeder.extra_count(len(x), cfg, extra)) / cfg.batch_size))
    params = net.params()
    optimizer = AdamW(params, cfg.weight_decay, engine)
    rng = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(_DROPOUT_STREAM,)))
    feeder, t0 = _EpochFeeder(x, y, cfg, extra), time.perf_counter()

    def step(xb: np.ndarray, yb: np.ndarray, lr: float) -> tuple[float, np.ndarray]:
        xb = (to_float(xb) if xb.dtype == np.uint8 else np.asarray(xb)).reshape(
            len(xb), *net.input_shape)
        return train_step(net, optimizer, xb, yb, lr, cfg.label_smoothing, rng, engine)

    def before_validation(last: bool) -> None:
        if last and engine.bn_images > 0:
            # The final model's BatchNorm statistics, before its validation row.
            precise_batchnorm(net, _precise_bn_sample(x, cfg, engine),
                              engine.bn_batch or cfg.batch_size, engine)

    blas = _blas_limit(engine.blas_threads)
    try:
        history, stopped = run_epochs(cfg, feeder, steps, step, net, x_val, y_val, callback,
                                      stop, before_validation)
    finally:
        feeder.close()
        blas.unregister()
    return TrainResult(net, history, time.perf_counter() - t0, stopped, time.process_time() - c0)


def _blas_limit(threads: int | None):
    """Hold every BLAS of the process at ``threads`` until ``.unregister()`` (None: no
    change)."""
    from threadpoolctl import threadpool_limits
    return threadpool_limits(limits=threads, user_api="blas")
