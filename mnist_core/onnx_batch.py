"""Large batches of a Keras model through ONNX Runtime, beside the NumPy plan.

:mod:`mnist_core.keras_numpy` answers drawings and photos: a handful of images, no extra
library. For thousands at once (the Kaggle page's 28,000 rows, in its worker process;
``evaluate``, ``bench``) ONNX Runtime's convolution kernels are faster on this project's
2-core machines: the CNN over 28,000 images in 3.3 s against the NumPy plan's 4.4 s in
the same run (benchmarks/KAGGLE_SPEED.md). The graph is translated here from the same
parsed ``.keras`` layers the NumPy plan runs (BatchNorm folded into the weights before it,
in float64, by :func:`mnist_core.keras_numpy.fold_batchnorm`, as the plan folds it), so one
file feeds both and they agree to float32 rounding (tests/test_onnx_batch.py). When
``onnx`` or ``onnxruntime`` is missing, or refuses the graph, :func:`predict` returns None
and the NumPy plan answers.
:func:`predict_proba` makes that choice for :class:`~mnist_core.model.KerasModel`.

Only models :class:`~mnist_core.keras_numpy.KerasNumpyModel` has loaded come here: its
loader already refused every layer or setting it does not support.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import numpy as np

from .keras_numpy import WORKERS, Layer, batchnorm_affine, fold_batchnorm

# Set to "numpy" to keep every batch on the NumPy plan (benchmarks compare the two).
ENGINE_ENV = "MNIST_STUDIO_BATCH_ENGINE"


@dataclass(frozen=True)
class OnnxConfig:
    # Fewer images than this stay on the NumPy plan: a drawing and its views never load
    # ONNX Runtime (about 50 MB resident once imported, with onnx). Kaggle predictions
    # (kaggle.submission_csv) come 2,000 rows a call, so they come here.
    min_batch: int = 1024
    # Images per session run: the arena below holds one run's activations (the CNN: about
    # 100 KB an image), so small runs keep the process's memory flat; measured on the CNN
    # (28,000 images, 2 threads): 128 a run 3.55 s, 512 a run 3.67 s (within noise). A
    # 28,000-row file leaves a server-like process at 200 MB RSS against the NumPy plan's
    # 120 (benchmarks/batch_memory.py): the library, onnx and the session.
    chunk: int = 128
    # Intra-op threads: both cores, as the NumPy plan's workers use.
    threads: int = WORKERS
    # No busy-waiting between runs: on a machine shared by a class, an idle thread that
    # spins takes a core from someone drawing.
    spin: bool = False
    opset: int = 17


DEFAULT = OnnxConfig()

_ACTIVATION_OPS = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid", "softmax": "Softmax"}
_lock = threading.Lock()


def enabled() -> bool:
    return os.environ.get(ENGINE_ENV, "").strip().lower() != "numpy"


def graph_bytes(layers: list[Layer], input_shape: tuple[int, ...], opset: int = DEFAULT.opset
                ) -> bytes:
    """The ONNX model of ``layers`` (as :class:`~mnist_core.keras_numpy.KerasNumpyModel`
    parsed them): input ``"x"`` ``(N, *input_shape)`` float32 channels-last, output
    ``"y"`` ``(N, units)`` float32. Raises ImportError without ``onnx``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes: list = []
    weights: list = []
    names = iter(range(1 << 30))

    def new(prefix: str) -> str:
        return f"{prefix}{next(names)}"

    def const(array: np.ndarray) -> str:
        name = new("w")
        weights.append(numpy_helper.from_array(np.asarray(array, np.float32), name))
        return name

    def op(kind: str, inputs: list[str], **attrs) -> str:
        out = new(kind.lower())
        nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    cur, channels_first = "x", False

    def to_channels_first() -> None:
        nonlocal cur, channels_first
        if not channels_first:
            cur, channels_first = op("Transpose", [cur], perm=[0, 3, 1, 2]), True

    i = 0
    while i < len(layers):
        layer, cfg = layers[i], layers[i].config
        if layer.kind in ("Conv2D", "Dense"):
            kernel = layer.weights[0]
            bias = (layer.weights[1] if cfg.get("use_bias", True)
                    else np.zeros(kernel.shape[-1], np.float32))
            activation = cfg.get("activation", "linear")
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            if activation == "linear" and nxt is not None and nxt.kind == "BatchNormalization":
                kernel, bias = fold_batchnorm(kernel, bias, *batchnorm_affine(nxt))
                i += 1
            if layer.kind == "Conv2D":
                to_channels_first()
                kh, kw = kernel.shape[:2]
                pads = [0, 0, 0, 0]
                if cfg.get("padding") == "same":  # TensorFlow's: the odd pixel after
                    top, left = (kh - 1) // 2, (kw - 1) // 2
                    pads = [top, left, kh - 1 - top, kw - 1 - left]
                cur = op("Conv", [cur, const(kernel.transpose(3, 2, 0, 1)), const(bias)],
                         kernel_shape=[kh, kw], pads=pads)
            else:
                cur = op("Gemm", [cur, const(kernel), const(bias)])
            if activation != "linear":
                cur = op(_ACTIVATION_OPS[activation], [cur])
        elif layer.kind == "BatchNormalization":
            scale, shift = batchnorm_affine(layer)
            shape = (-1, 1, 1) if channels_first else (-1,)
            cur = op("Add", [op("Mul", [cur, const(scale.reshape(shape))]),
                             const(shift.reshape(shape))])
        elif layer.kind in ("ReLU", "Activation"):
            name = "relu" if layer.kind == "ReLU" else cfg["activation"]
            if name != "linear":
                cur = op(_ACTIVATION_OPS[name], [cur])
        elif layer.kind in ("MaxPooling2D", "AveragePooling2D"):
            to_channels_first()
            size = list(cfg.get("pool_size", (2, 2)))
            cur = op("MaxPool" if layer.kind == "MaxPooling2D" else "AveragePool", [cur],
                     kernel_shape=size, strides=size)
        elif layer.kind == "Flatten":
            if channels_first:  # Keras flattens channels-last
                cur, channels_first = op("Transpose", [cur], perm=[0, 2, 3, 1]), False
            cur = op("Flatten", [cur], axis=1)
        i += 1
    nodes.append(helper.make_node("Identity", [cur], ["y"]))
    graph = helper.make_graph(
        nodes, "mnist_studio",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *input_shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "units"])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8  # what ONNX Runtime releases of the last years all read
    onnx.checker.check_model(model)
    return model.SerializeToString()


def session(layers: list[Layer], input_shape: tuple[int, ...], cfg: OnnxConfig = DEFAULT):
    """An ONNX Runtime session for ``layers``, or None when ``onnx``/``onnxruntime`` is not
    installed or refuses the graph."""
    try:
        import onnxruntime as ort

        blob = graph_bytes(layers, input_shape, cfg.opset)
        options = ort.SessionOptions()
        options.intra_op_num_threads = cfg.threads
        options.inter_op_num_threads = 1
        # ONNX Runtime's arena keeps the largest run's activations for the next run (a few
        # MB at cfg.chunk images). Without it every run allocates afresh, and under the
        # server's malloc settings (ui.data.return_big_buffers: large blocks mapped and
        # unmapped each time) the CNN's 28,000 images took 4.9-5.0 s instead of 3.4-3.7.
        options.enable_cpu_mem_arena = True
        options.add_session_config_entry("session.intra_op.allow_spinning",
                                         "1" if cfg.spin else "0")
        options.log_severity_level = 3  # errors only; warnings would reach the server log
        return ort.InferenceSession(blob, options, providers=["CPUExecutionProvider"])
    except Exception:  # noqa: BLE001 - any failure leaves the NumPy plan to answer
        return None


def predict(model, x: np.ndarray, cfg: OnnxConfig = DEFAULT) -> np.ndarray | None:
    """``model``'s outputs for ``x`` ``(N, *model.input_shape) float32`` through ONNX
    Runtime, ``(N, units) float32``; None when the batch is small, the engine is switched
    off (:data:`ENGINE_ENV`) or unavailable. The session is made once per model."""
    if len(x) < cfg.min_batch or not enabled():
        return None
    sess = getattr(model, "_onnx_session", None)
    if sess is None:
        with _lock:
            sess = getattr(model, "_onnx_session", None)
            if sess is None:
                sess = session(model.layers, model.input_shape, cfg) or False
                model._onnx_session = sess
    if sess is False:
        return None
    x = np.ascontiguousarray(x, np.float32)
    try:
        parts = [sess.run(None, {"x": x[s:s + cfg.chunk]})[0]
                 for s in range(0, len(x), cfg.chunk)]
    except Exception:  # noqa: BLE001 - e.g. out of memory: the NumPy plan answers, from now on
        model._onnx_session = False
        return None
    return np.concatenate(parts).astype(np.float32, copy=False)


def predict_proba(model, x: np.ndarray, cfg: OnnxConfig = DEFAULT) -> np.ndarray:
    """``model.predict_proba(x)`` (a :class:`~mnist_core.keras_numpy.KerasNumpyModel`), by
    ONNX Runtime when :func:`predict` takes the batch: the one place that chooses."""
    x = np.asarray(x, np.float32)
    out = predict(model, x.reshape(-1, *model.input_shape), cfg)
    return out if out is not None else model.predict_proba(x)
