"""One interface for every model, whatever file holds it (importing this never loads
TensorFlow).

Every network here is an engine :class:`~mnist_core.engine.network.Sequential`, so
:class:`Model` answers predictions, parameter counts and everything Look inside shows
once for all of them. Its two subclasses differ only in the file they read and write:
:class:`NumpyModel`, the NumPy MLP as ``.npz`` (plain arrays, no pickle), and
:class:`KerasModel`, a ``.keras`` file, which Keras itself also loads (with ``safe_mode``)
where it is wanted: the offline ``train`` command and timing ``model.predict``.

Images are ``(28, 28)`` (or batches ``(N, 28, 28)``) ``float32`` in [0, 1], white on black.
"""

from __future__ import annotations

import copy
import io
import zipfile
from pathlib import Path
from typing import Callable, ClassVar

import numpy as np

from ..engine import keras_file, onnx_graph
from ..engine.layers import Conv2D, Dense, Dropout
from ..engine.network import Sequential
from .views import NO_VIEWS, ViewConfig
from .architectures import NumpyConfig

Predict = Callable[[np.ndarray], np.ndarray]

# Probabilities are clipped here before their log is taken, so a class a softmax rounded to
# 0 in float32 stays at ~0 instead of turning into -inf (and a nan after the division).
_TINY = float(np.finfo(np.float32).tiny)
# Where feature maps are tapped: a conv followed by these is shown after them (the map
# the next layer sees).
_AFTER_CONV = ("BatchNormalization", "ReLU", "Activation")


def temper(p: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities ``p`` (``(..., 10)``, each row a softmax) as the same network's softmax
    would give with its logits divided by ``temperature``: ``softmax(log p / T)``, exact for
    a softmax output since ``log p`` is the logits less a per-row constant. ``float32``,
    argmax unchanged; ``T == 1`` returns ``p`` itself. See :mod:`mnist_core.insight.calibration`."""
    if temperature == 1.0:
        return p
    z = np.log(np.maximum(np.asarray(p, np.float64), _TINY)) / temperature
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


class Model:
    """A trained (or freshly built) network and what the app knows about it.

    ``network``: the engine network; ``name``: key in the app and in artifacts; ``title``:
    what the app calls it; ``views``: the test-time views averaged when it reads real input
    (:mod:`mnist_core.models.views`); ``arch``: its architecture config
    (:mod:`mnist_core.models.architectures`); ``metrics``: test-set metrics; ``history``:
    per-epoch training rows (dicts of :class:`~mnist_core.training.config.EpochLog` fields).
    ``family`` says what Look inside can show: ``"mlp"`` (first-layer templates, hidden
    activations) or ``"conv"`` (filters, feature maps).
    """

    kind: ClassVar[str] = ""      # what runs it, for messages and tests; never switch on it
    file_ext: ClassVar[str] = ""  # ".npz" or ".keras"
    # Softmax temperature fitted on the validation split (insight.calibration), set by
    # artifacts.load_model from the metrics' "calibration" record; predictions apply it.
    temperature: float = 1.0

    def __init__(self, network: Sequential, *, name: str = "", title: str = "",
                 views: ViewConfig = NO_VIEWS, arch: object = None, metrics: dict | None = None,
                 history: list | None = None):
        self.network = network
        self.name, self.title, self.views, self.arch = name, title, views, arch
        self.metrics = metrics if metrics is not None else {}
        self.history = history if history is not None else []
        self._inference: Sequential | None = None

    # -- construction -------------------------------------------------------------------

    @staticmethod
    def _meta(spec, arch=None, **meta) -> dict:
        """Constructor keywords from a registry ``spec`` (name, title, views, arch),
        overridden by ``arch`` and ``meta``."""
        base = {} if spec is None else dict(name=spec.name, title=spec.title,
                                            views=spec.views, arch=spec.arch)
        if arch is not None:
            base["arch"] = arch
        return {**base, **meta}

    @classmethod
    def load(cls, path: str | Path, spec=None, **meta) -> "Model":
        """The model saved at ``path`` (:meth:`save`), described by registry ``spec``;
        ``meta`` (``arch``, ``metrics``, ``history``, ``name``...) overrides the spec.
        Raises ``ValueError`` (or the file reader's error) for a damaged file."""
        return cls.from_bytes(Path(path).read_bytes(), spec, **meta)

    @classmethod
    def from_bytes(cls, data: bytes, spec=None, **meta) -> "Model":
        """The model whose file (:meth:`to_bytes`) is ``data``."""
        return cls(cls.read_network(bytes(data)), **cls._meta(spec, **meta))

    @classmethod
    def from_net(cls, net, spec=None, **meta) -> "Model":
        """A model around a network just built or trained."""
        return cls(net, **cls._meta(spec, **meta))

    @staticmethod
    def read_network(data: bytes) -> Sequential:
        raise NotImplementedError

    def renamed(self, name: str, title: str) -> "Model":
        """The same network under another name and title (the app's "Your model"); the
        copy's metrics and history can be changed without touching this one's."""
        dup = copy.copy(self)
        dup.name, dup.title = name, title
        dup.metrics, dup.history = dict(self.metrics), list(self.history)
        return dup

    # -- every model --------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The model's file, as written by :meth:`save` (what the app offers to download)."""
        raise NotImplementedError

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_bytes(self.to_bytes())
        return path

    @property
    def inference(self) -> Sequential:
        """The network as it answers: BatchNorm folded in (made once)."""
        if self._inference is None:
            self._inference = self.network.folded()
        return self._inference

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """``(N, 28, 28) float32 in [0, 1]`` -> ``(N, 10) float32`` probabilities with
        :attr:`temperature` applied (:func:`temper`): a thousand images or more through
        ONNX Runtime when it is installed, NumPy otherwise."""
        net = self.inference
        x = net.batch(x)
        p = onnx_graph.predict(self, net, x)
        return temper(p if p is not None else net.predict_proba(x), self.temperature)

    def predict_with_features(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One pass: ``(probabilities (N, 10) as predict_proba, features (N, D))``, the
        features being the last hidden layer (what the output layer reads), in inference
        mode: what Model maps and the not-a-digit check place a digit by."""
        p, features = self.inference.predict_with_features(x)
        return temper(p, self.temperature), features

    def embedding_features(self, x: np.ndarray) -> np.ndarray:
        """:meth:`predict_with_features`'s features alone: ``(N, D) float32``."""
        return self.predict_with_features(x)[1]

    def count_params(self) -> int:
        return self.network.count_params()

    def slow_predict_fn(self) -> Predict | None:
        """The framework's own ``predict`` that :meth:`predict_proba` replaces (to time
        against it), or ``None`` where the NumPy network is the model itself."""
        return None

    def input_gradient(self, image: np.ndarray, target: int) -> np.ndarray:
        """d log p(target) / d pixel for one ``(28, 28)`` image: ``(28, 28) float32``, by
        the chain rule back through each layer (no TensorFlow)."""
        image = np.asarray(image, np.float32)
        return self.network.input_gradient(image, target).reshape(image.shape).astype(np.float32)

    @property
    def family(self) -> str:
        return "conv" if self.network.of_kind(Conv2D) else "mlp"

    def first_layer_templates(self, n: int = 16) -> np.ndarray:
        """The first ``n`` first-layer weight vectors as ``(n, 28, 28) float32``: each
        hidden unit's 784 input weights laid out as the stroke pattern that excites
        (positive) or inhibits (negative) it. ``"mlp"`` family only."""
        self._require("mlp")
        w = self.network.of_kind(Dense)[0].kernel
        return np.ascontiguousarray(w[:, :n].T.reshape(-1, 28, 28)).astype(np.float32)

    def hidden_activations(self, image: np.ndarray) -> list[np.ndarray]:
        """Each hidden Dense layer's activations for one image: ``[(units,) float32, ...]``.
        ``"mlp"`` family only."""
        self._require("mlp")
        layers, outs = self.network.layers, self.network.trace(image)
        dense = [i for i, layer in enumerate(layers) if isinstance(layer, Dense)][:-1]
        return [outs[i].astype(np.float32) for i in dense]

    def conv_filters(self, layer: int = 0) -> np.ndarray:
        """Kernels of conv layer ``layer`` averaged over input channels:
        ``(filters, k, k) float32``. ``"conv"`` family only."""
        self._require("conv")
        kernel = self.network.of_kind(Conv2D)[layer].kernel  # (k, k, in, out)
        return np.transpose(kernel.mean(axis=2), (2, 0, 1)).astype(np.float32)

    def feature_maps(self, image: np.ndarray) -> list[tuple[str, np.ndarray]]:
        """Each conv layer's output for one image, after the BatchNorm and activation
        layers right after it (at most two: the map the next layer sees):
        ``[(layer name, (channels, h, w) float32), ...]``. ``"conv"`` family only."""
        self._require("conv")
        layers, outs = self.network.layers, self.network.trace(image)
        maps = []
        for i, layer in enumerate(layers):
            if not isinstance(layer, Conv2D):
                continue
            tap = i
            for j in range(i + 1, min(i + 3, len(layers))):
                if layers[j].kind not in _AFTER_CONV:
                    break
                tap = j
            maps.append((layer.name, np.ascontiguousarray(
                np.transpose(outs[tap], (2, 0, 1)), np.float32)))
        return maps

    def _require(self, family: str) -> None:
        if self.family != family:
            what = {"mlp": "a dense network's", "conv": "a convolutional network's"}[family]
            raise TypeError(f"{self.title or type(self).__name__} is a {self.family!r} "
                            f"network; this is {what} view")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.title!r})"


# ---------------------------------------------------------------------------------------
# The NumPy MLP's file: .npz
# ---------------------------------------------------------------------------------------

class NumpyModel(Model):
    """The NumPy MLP (:class:`~mnist_core.models.architectures.NumpyConfig`), kept as
    ``.npz``: ``sizes``, ``activation``, ``dropout``, then ``W{i}``/``b{i}`` per layer."""

    kind = "numpy"
    file_ext = ".npz"

    @staticmethod
    def read_network(data: bytes) -> Sequential:
        """Never unpickles; ``ValueError`` for a file that does not fit its own sizes."""
        with np.load(io.BytesIO(data), allow_pickle=False) as f:
            sizes = tuple(int(s) for s in f["sizes"])
            if len(sizes) < 2 or sizes[0] != 784:
                raise ValueError(f"not a NumPy MLP over 28x28 images: sizes {sizes}")
            arch = NumpyConfig(hidden=sizes[1:-1], activation=str(f["activation"]),
                               dropout=float(f["dropout"]))
            layers = arch.layers()
            dense = [layer for layer in layers if isinstance(layer, Dense)]
            if dense[-1].units != sizes[-1]:
                dense[-1].units = sizes[-1]
            for i, (layer, fan_in) in enumerate(zip(dense, sizes)):
                w, b = f[f"W{i}"], f[f"b{i}"]
                if w.shape != (fan_in, layer.units) or b.shape != (layer.units,):
                    raise ValueError(f"layer {i} has shape {w.shape}, expected "
                                     f"{(fan_in, layer.units)}")
                layer.set_weights([w.astype(np.float32), b.astype(np.float32)])
        return Sequential(layers, arch.input_shape)

    def to_bytes(self):
        dense = self.network.of_kind(Dense)
        dropout = self.network.of_kind(Dropout)
        arrays = {f"W{i}": layer.kernel for i, layer in enumerate(dense)}
        arrays.update({f"b{i}": layer.bias for i, layer in enumerate(dense)})
        buf = io.BytesIO()
        np.savez(buf, sizes=np.array([dense[0].kernel.shape[0]] + [d.units for d in dense],
                                     np.int64),
                 activation=np.array(dense[0].activation),
                 dropout=np.array(dropout[0].rate if dropout else 0.0), **arrays)
        return buf.getvalue()


# ---------------------------------------------------------------------------------------
# Keras's file: .keras
# ---------------------------------------------------------------------------------------

class KerasModel(Model):
    """A Keras ``Sequential`` network, kept as its ``.keras`` file. Everything the app
    shows runs on the engine network read from the file (:mod:`mnist_core.engine.keras_file`);
    the real ``keras.Model`` (:attr:`keras_net`) is loaded only where Keras itself is
    wanted: training and timing ``model.predict``."""

    kind = "keras"
    file_ext = ".keras"

    def __init__(self, network: Sequential, *, source: Path | bytes | None = None,
                 keras_net=None, **meta):
        super().__init__(network, **meta)
        self._source, self._keras_net = source, keras_net
        # Whether slow_predict_fn may load Keras to time its predict: not for a network
        # trained in NumPy, whose process (the app's worker) keeps TensorFlow out.
        self._time_keras = source is not None or keras_net is not None

    @staticmethod
    def read_network(data: bytes) -> Sequential:
        return keras_file.read(data)

    @classmethod
    def load(cls, path, spec=None, **meta):
        # The file is read again when its bytes are wanted (a download, Keras itself):
        # keeping them would hold the .keras files, ~11 MB for the shipped three, in the
        # server for good.
        path = Path(path)
        return cls(keras_file.read(path), source=path, **cls._meta(spec, **meta))

    @classmethod
    def from_bytes(cls, data, spec=None, **meta):
        data = bytes(data)
        return cls(keras_file.read(data), source=data, **cls._meta(spec, **meta))

    @classmethod
    def from_net(cls, net, spec=None, **meta):
        if isinstance(net, Sequential):  # trained in NumPy: no TensorFlow
            return cls(net, **cls._meta(spec, **meta))
        from .keras_tf import strip_optimizer, to_bytes  # a keras.Model, from `train`
        net = strip_optimizer(net)
        data = to_bytes(net)
        return cls(keras_file.read(data), source=data, keras_net=net, **cls._meta(spec, **meta))

    def to_bytes(self):
        if self._source is None:
            self._source = keras_file.write(self.network)
        return self._source.read_bytes() if isinstance(self._source, Path) else self._source

    @property
    def keras_net(self):
        """The ``keras.Model`` (TensorFlow loaded on first use)."""
        if self._keras_net is None:
            from .keras_tf import load
            self._keras_net = load(self.to_bytes())
        return self._keras_net

    def slow_predict_fn(self):
        if not self._time_keras:
            return None
        net = self.keras_net
        return lambda x: net.predict(np.asarray(x, np.float32)[..., None], verbose=0)


BACKENDS: tuple[type[Model], ...] = (NumpyModel, KerasModel)


def model_from_bytes(data: bytes, arch=None) -> Model:
    """A model from its file's bytes, whichever kind: a ``.keras`` zip holds
    ``config.json``, a NumPy MLP's ``.npz`` does not."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        keras = "config.json" in archive.namelist()
    return (KerasModel if keras else NumpyModel).from_bytes(data, arch=arch)
