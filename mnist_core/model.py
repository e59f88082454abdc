"""One interface for every model, whatever runs it (importing this never loads TensorFlow).

In the spirit of micrograd, every network the app shows honours one small interface,
:class:`Model`, implemented once for the NumPy MLP (:class:`NumpyModel`) and once for
Keras (:class:`KerasModel`). Callers predict, count, save, download, relabel and look
inside a model without asking which kind it is; the registry names each model's class
once (:attr:`ModelSpec.backend <mnist_core.registry.ModelSpec>`).

Images are ``(28, 28)`` (or batches ``(N, 28, 28)``) ``float32`` in [0, 1], white on black.
"""

from __future__ import annotations

import copy
import io
import os
import tempfile
from pathlib import Path
from typing import Callable, ClassVar

import numpy as np

from . import onnx_batch
from .keras_numpy_grad import feature_maps, hidden_activations, input_gradient
from .views import NO_VIEWS, ViewConfig

Predict = Callable[[np.ndarray], np.ndarray]

# Probabilities are clipped here before their log is taken, so a class a softmax rounded to
# 0 in float32 stays at ~0 instead of turning into -inf (and a nan after the division).
_TINY = float(np.finfo(np.float32).tiny)


def temper(p: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities ``p`` (``(..., 10)``, each row a softmax) as the same network's softmax
    would give with its logits divided by ``temperature``: ``softmax(log p / T)``, exact for
    a softmax output since ``log p`` is the logits less a per-row constant. ``float32``,
    argmax unchanged; ``T == 1`` returns ``p`` itself. See :mod:`mnist_core.calibration`."""
    if temperature == 1.0:
        return p
    z = np.log(np.maximum(np.asarray(p, np.float64), _TINY)) / temperature
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


class Model:
    """A trained (or freshly built) network and what the app knows about it.

    ``name``: key in the app and in artifacts; ``title``: what the app calls it;
    ``views``: the test-time views averaged when it reads real input
    (:mod:`mnist_core.views`); ``arch``: its architecture config
    (:mod:`mnist_core.architectures`); ``metrics``: test-set metrics; ``history``:
    per-epoch training rows (dicts of :class:`~mnist_core.train.EpochLog` fields).
    ``family`` says what Look inside can show: ``"mlp"`` (first-layer templates, hidden
    activations) or ``"conv"`` (filters, feature maps); every model has
    :meth:`input_gradient`. ``file_ext``: the extension of :meth:`to_bytes`'s file.
    """

    kind: ClassVar[str] = ""      # what runs it, for messages and tests; never switch on it
    # Softmax temperature fitted on the validation split (mnist_core.calibration), set by
    # artifacts.load_model from the metrics' "calibration" record; predict_proba applies it.
    temperature: float = 1.0
    file_ext: ClassVar[str] = ""  # ".npz" or ".keras"

    def __init__(self, *, name: str = "", title: str = "", views: ViewConfig = NO_VIEWS,
                 arch: object = None, metrics: dict | None = None,
                 history: list | None = None):
        self.name, self.title, self.views, self.arch = name, title, views, arch
        self.metrics = metrics if metrics is not None else {}
        self.history = history if history is not None else []

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
        Raises whatever the file's reader raises for a damaged file."""
        raise NotImplementedError

    @classmethod
    def from_bytes(cls, data: bytes, spec=None, **meta) -> "Model":
        """The model whose file (:meth:`to_bytes`) is ``data``, as :meth:`load` reads it
        (a model trained in another process comes back this way)."""
        raise NotImplementedError

    @classmethod
    def from_net(cls, net, spec=None, **meta) -> "Model":
        """A model around a network just built or trained (Keras: an uncompiled copy, so
        nothing of the optimizer is kept or saved)."""
        raise NotImplementedError

    @classmethod
    def fit(cls, data, cfg, arch, callback=None, stop=None, engine: str = "tensorflow"):
        """Train a fresh network of ``arch`` on ``data`` with ``cfg`` (a
        :class:`~mnist_core.train.TrainConfig`): a :class:`~mnist_core.train.TrainResult`
        holding the bare network. ``engine``: what trains a Keras architecture,
        ``"tensorflow"`` (Keras itself: the CLI, whose files ship) or ``"numpy"``
        (:mod:`mnist_core.keras_numpy_train`: the app's worker, no TensorFlow); the
        NumPy MLP trains in NumPy either way."""
        raise NotImplementedError

    def renamed(self, name: str, title: str) -> "Model":
        """The same network under another name and title (the app's "Your model"); the
        copy's metrics and history can be changed without touching this one's."""
        dup = copy.copy(self)
        dup.name, dup.title = name, title
        dup.metrics, dup.history = dict(self.metrics), list(self.history)
        return dup

    # -- every model --------------------------------------------------------------------

    @property
    def net(self):
        """The bare network (``NumpyMLP`` or ``keras.Model``; Keras loaded on first use)."""
        raise NotImplementedError

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """``(N, 28, 28) float32 in [0, 1]`` -> ``(N, 10) float32`` probabilities: the fast
        path, NumPy only for every kind, with :attr:`temperature` applied (:func:`temper`)."""
        raise NotImplementedError

    def count_params(self) -> int:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """The model's file, as written by :meth:`save` (what the app offers to download)."""
        raise NotImplementedError

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_bytes(self.to_bytes())
        return path

    def slow_predict_fn(self) -> Predict | None:
        """The framework's own ``predict`` that :meth:`predict_proba` replaces (to time
        against it), or ``None`` where the fast path is the network itself."""
        return None

    def input_gradient(self, image: np.ndarray, target: int) -> np.ndarray:
        """d log p(target) / d pixel for one ``(28, 28)`` image: ``(28, 28) float32``."""
        raise NotImplementedError

    def embedding_features(self, x: np.ndarray) -> np.ndarray:
        """The last hidden layer (what the output layer reads) for a batch: ``(N, 28, 28)
        float32 in [0, 1]`` -> ``(N, D) float32``, in inference mode (no dropout). NumPy
        only for every kind; behind Model maps (:mod:`mnist_core.embedding`)."""
        raise NotImplementedError

    # -- by family: "mlp" -----------------------------------------------------------------

    family: str = "mlp"

    def first_layer_templates(self, n: int = 16) -> np.ndarray:
        """The first ``n`` first-layer weight vectors as ``(n, 28, 28) float32``: each
        hidden unit's 784 input weights laid out as the stroke pattern that excites
        (positive) or inhibits (negative) it. ``"mlp"`` family only."""
        raise self._not_in_family("mlp")

    def hidden_activations(self, image: np.ndarray) -> list[np.ndarray]:
        """Each hidden layer's activations for one image: ``[(units,) float32, ...]``.
        ``"mlp"`` family only."""
        raise self._not_in_family("mlp")

    # -- by family: "conv" ----------------------------------------------------------------

    def conv_filters(self, layer: int = 0) -> np.ndarray:
        """Kernels of conv layer ``layer`` averaged over input channels:
        ``(filters, k, k) float32``. ``"conv"`` family only."""
        raise self._not_in_family("conv")

    def feature_maps(self, image: np.ndarray) -> list[tuple[str, np.ndarray]]:
        """Each conv layer's output for one image, after its BatchNorm and activation where
        it has them: ``[(layer name, (channels, h, w) float32), ...]``. ``"conv"`` only."""
        raise self._not_in_family("conv")

    def _not_in_family(self, family: str) -> TypeError:
        what = {"mlp": "a dense network's", "conv": "a convolutional network's"}[family]
        return TypeError(f"{self.title or type(self).__name__} is a {self.family!r} network; "
                         f"this is {what} view")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.title!r})"


def _templates(w: np.ndarray, n: int) -> np.ndarray:
    return np.ascontiguousarray(w[:, :n].T.reshape(-1, 28, 28)).astype(np.float32)


def _one(image: np.ndarray) -> np.ndarray:
    return np.asarray(image, np.float32).reshape(1, 28, 28)


# ---------------------------------------------------------------------------------------
# NumPy
# ---------------------------------------------------------------------------------------

class NumpyModel(Model):
    """The NumPy MLP (:class:`~mnist_core.numpy_net.NumpyMLP`): no TensorFlow anywhere."""

    kind = "numpy"
    file_ext = ".npz"
    family = "mlp"

    def __init__(self, net, **meta):
        super().__init__(**meta)
        self._net = net

    @classmethod
    def load(cls, path, spec=None, **meta):
        from .numpy_net import NumpyMLP
        return cls(NumpyMLP.load(path), **cls._meta(spec, **meta))

    @classmethod
    def from_bytes(cls, data, spec=None, **meta):
        return cls.load(io.BytesIO(data), spec, **meta)

    @classmethod
    def from_net(cls, net, spec=None, **meta):
        return cls(net, **cls._meta(spec, **meta))

    @classmethod
    def fit(cls, data, cfg, arch, callback=None, stop=None, engine="tensorflow"):
        from .train import train_numpy
        return train_numpy(data, cfg, arch, callback, stop)

    @staticmethod
    def accepts(net) -> bool:
        from .numpy_net import NumpyMLP
        return isinstance(net, NumpyMLP)

    @property
    def net(self):
        return self._net

    def predict_proba(self, x):
        return temper(self._net.predict_proba(x), self.temperature)

    def count_params(self):
        return self._net.count_params()

    def to_bytes(self):
        buf = io.BytesIO()
        self._net.save(buf)
        return buf.getvalue()

    def input_gradient(self, image, target):
        # By hand, through the network's own backward pass.
        return self._net.input_gradient(_one(image), np.array([target]))[0].astype(np.float32)

    def embedding_features(self, x):
        net, a = self._net, np.asarray(x, np.float32).reshape(len(x), -1)
        for w, b in zip(net.weights[:-1], net.biases[:-1]):
            a = net._act(a @ w + b)
        return a.astype(np.float32, copy=False)

    def first_layer_templates(self, n=16):
        return _templates(self._net.weights[0], n)

    def hidden_activations(self, image):
        net, a, acts = self._net, _one(image).reshape(1, 784), []
        for w, b in zip(net.weights[:-1], net.biases[:-1]):
            a = net._act(a @ w + b)
            acts.append(a[0])
        return acts


# ---------------------------------------------------------------------------------------
# Keras
# ---------------------------------------------------------------------------------------

def _load_keras(source: Path | bytes):
    """The real ``keras.Model`` of a ``.keras`` file or its bytes (``safe_mode``: a file
    holding Python code is refused, never run)."""
    import keras
    if isinstance(source, Path):
        return keras.models.load_model(source, compile=False, safe_mode=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        with open(path, "wb") as f:
            f.write(source)
        return keras.models.load_model(path, compile=False, safe_mode=True)


def _keras_bytes(net) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")  # Keras saves only to a .keras path
        net.save(path)
        with open(path, "rb") as f:
            return f.read()


def keras_conv_layers(net) -> list:
    """The ``Conv2D`` layers of a ``keras.Model``, in order."""
    return [layer for layer in net.layers if layer.__class__.__name__ == "Conv2D"]


# Images per step of _keras_last_hidden: the CNN's widest im2col columns stay ~60 MB.
_FEATURE_BATCH = 256


def _keras_last_hidden(layers: list, input_shape: tuple, x: np.ndarray) -> np.ndarray:
    """What the last Dense layer of ``layers`` reads, for ``x`` (``(N, 28, 28) float32``):
    ``(N, D) float32``, every layer before it run as Keras runs it at inference."""
    from .keras_numpy import apply_layer

    last = max(i for i, layer in enumerate(layers) if layer.kind == "Dense")
    x = np.asarray(x, np.float32).reshape(-1, *input_shape)
    out = []
    for start in range(0, len(x), _FEATURE_BATCH):
        h = x[start:start + _FEATURE_BATCH]
        for layer in layers[:last]:
            h = apply_layer(h, layer)
        out.append(np.asarray(h, np.float32).reshape(len(h), -1))
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


class KerasModel(Model):
    """A Keras ``Sequential`` network. Predictions, parameter counts and everything Look
    inside shows (templates, filters, activations, feature maps, input gradients) come
    from :class:`~mnist_core.keras_numpy.KerasNumpyModel` (NumPy reading the ``.keras``
    file) and :mod:`~mnist_core.keras_numpy_grad` (its backward pass by hand), so none of
    them imports TensorFlow. The real network (:attr:`net`) is loaded, with ``safe_mode``,
    only where Keras itself is wanted: training and timing ``model.predict``.

    ``source``: the ``.keras`` file's path or bytes; ``net``: the ``keras.Model`` when it
    is already in memory (at least one of them).
    """

    kind = "keras"
    file_ext = ".keras"

    def __init__(self, source: str | Path | bytes | None = None, net=None, **meta):
        if source is None and net is None:
            raise ValueError("KerasModel needs a .keras source or a network")
        super().__init__(**meta)
        self._source = Path(source) if isinstance(source, (str, os.PathLike)) else source
        self._net = net
        self._fast = None
        # Whether slow_predict_fn may load Keras to time its predict: not for a network
        # trained in NumPy, whose process (the app's worker) keeps TensorFlow out.
        self._time_keras = True

    @classmethod
    def load(cls, path, spec=None, **meta):
        return cls._read(Path(path), spec, **meta)

    @classmethod
    def from_bytes(cls, data, spec=None, **meta):
        return cls._read(bytes(data), spec, **meta)

    @classmethod
    def _read(cls, source: Path | bytes, spec=None, **meta):
        model = cls(source, **cls._meta(spec, **meta))
        model.fast  # read the file now: a damaged or unsupported one fails here  # noqa: B018
        return model

    @classmethod
    def from_net(cls, net, spec=None, **meta):
        from .keras_numpy_train import KerasNet
        if isinstance(net, KerasNet):  # trained in NumPy: its .keras file, no TensorFlow
            model = cls(net.to_bytes(), **cls._meta(spec, **meta))
            model._time_keras = False
            return model
        from .keras_models import strip_optimizer
        return cls(net=strip_optimizer(net), **cls._meta(spec, **meta))

    @classmethod
    def fit(cls, data, cfg, arch, callback=None, stop=None, engine="tensorflow"):
        if engine == "numpy":
            from .keras_numpy_train import train_keras_numpy
            return train_keras_numpy(data, cfg, arch, callback, stop)
        if engine != "tensorflow":
            raise ValueError(f"unknown training engine {engine!r}: 'tensorflow' or 'numpy'")
        from .train import train_keras
        return train_keras(data, cfg, arch.build, callback, stop)

    @staticmethod
    def accepts(net) -> bool:
        return callable(getattr(net, "get_config", None)) and hasattr(net, "layers")

    @property
    def fast(self):
        """The NumPy evaluator of this network's file."""
        if self._fast is None:
            from .keras_numpy import KerasNumpyModel
            source = self._source if isinstance(self._source, Path) else io.BytesIO(self.to_bytes())
            self._fast = KerasNumpyModel.load(source)
        return self._fast

    @property
    def net(self):
        if self._net is None:
            self._net = _load_keras(self._source)
        return self._net

    @property
    def family(self) -> str:
        return "conv" if self._fast_layers("Conv2D") else "mlp"

    def _fast_layers(self, kind: str) -> list:
        return [layer for layer in self.fast.layers if layer.kind == kind]

    def predict_proba(self, x):
        # A thousand images or more through ONNX Runtime when installed, else NumPy.
        return temper(onnx_batch.predict_proba(self.fast, x), self.temperature)

    def count_params(self):
        return self.fast.count_params()

    def to_bytes(self):
        if self._source is None:
            self._source = _keras_bytes(self._net)
        return self._source if isinstance(self._source, bytes) else self._source.read_bytes()

    def slow_predict_fn(self):
        if not self._time_keras:
            return None
        from .evaluate import keras_predict_fn
        return keras_predict_fn(self.net)

    def input_gradient(self, image, target):
        # By hand too: the chain rule back through each NumPy layer (no TensorFlow).
        fast = self.fast
        return input_gradient(fast.layers, fast.input_shape, image, target)

    def embedding_features(self, x):
        # Layer by layer up to the last Dense (no compiled plan: a second plan would hold
        # a second copy of the folded weights in the server for good).
        return _keras_last_hidden(self.fast.layers, self.fast.input_shape, x)

    def first_layer_templates(self, n=16):
        if self.family != "mlp":
            raise self._not_in_family("mlp")
        return _templates(self._fast_layers("Dense")[0].weights[0], n)

    def hidden_activations(self, image):
        if self.family != "mlp":
            raise self._not_in_family("mlp")
        return hidden_activations(self.fast.layers, self.fast.input_shape, image)

    def conv_filters(self, layer=0):
        if self.family != "conv":
            raise self._not_in_family("conv")
        kernel = self._fast_layers("Conv2D")[layer].weights[0]  # (k, k, in, out)
        return np.transpose(kernel.mean(axis=2), (2, 0, 1)).astype(np.float32)

    def feature_maps(self, image):
        # A conv followed by BatchNorm and ReLU is shown after the ReLU, as the next layer
        # sees it.
        if self.family != "conv":
            raise self._not_in_family("conv")
        return feature_maps(self.fast.layers, self.fast.input_shape, image)


BACKENDS: tuple[type[Model], ...] = (NumpyModel, KerasModel)


def wrap(net, **meta) -> Model:
    """Any bare network (``NumpyMLP`` or ``keras.Model``) seen through the interface, as is
    (no copy): for code that still holds bare networks."""
    for backend in BACKENDS:
        if backend.accepts(net):
            return backend(net=net, **meta)
    raise TypeError(f"not a network this project knows: {type(net).__name__}")
