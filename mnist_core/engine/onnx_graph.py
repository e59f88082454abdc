"""Large batches through ONNX Runtime: the network's graph, one layer's nodes at a time.

A drawing and its views are a handful of images, which the NumPy layers answer in a few
milliseconds. For thousands at once (the Kaggle page's 28,000 rows, in its worker
process; ``evaluate``; ``bench``) ONNX Runtime's convolution kernels are faster on this
project's 2-core machines (benchmarks/KAGGLE_SPEED.md). The graph is written by the
layers themselves (``Layer.onnx``) over the network's :meth:`folded
<mnist_core.engine.network.Sequential.folded>` copy, the same one NumPy runs, so the two
agree to float32 rounding (tests/test_onnx_graph.py). When ``onnx`` or ``onnxruntime`` is
missing, or refuses the graph, :func:`predict` returns None and NumPy answers.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import numpy as np

from .. import tuning
from .network import Sequential

# Set to "numpy" to keep every batch on the NumPy layers (benchmarks compare the two).
ENGINE_ENV = "MNIST_STUDIO_BATCH_ENGINE"


@dataclass(frozen=True)
class OnnxConfig:
    # Fewer images than this stay on NumPy: a drawing and its views never load ONNX
    # Runtime (about 50 MB resident once imported, with onnx). Kaggle predictions come
    # 2,000 rows a call, so they come here.
    min_batch: int = 1024
    # Images per session run: the arena holds one run's activations (the CNN: about 100 KB
    # an image), so small runs keep the process's memory flat; measured on the CNN (28,000
    # images, 2 threads): 128 a run 3.55 s, 512 a run 3.67 s (within noise).
    chunk: int = 128
    # Intra-op threads: every core this process may use.
    threads: int = tuning.CORES
    # No busy-waiting between runs: on a machine shared by a class, an idle thread that
    # spins takes a core from someone drawing.
    spin: bool = False
    opset: int = 17


DEFAULT = OnnxConfig()
_lock = threading.Lock()


class Graph:
    """The graph being written: named constants and nodes, and which tensors are
    channels-first (Keras is channels-last; ONNX's Conv and pooling are not)."""

    def __init__(self):
        from onnx import helper, numpy_helper
        self._helper, self._numpy_helper = helper, numpy_helper
        self.nodes, self.weights, self._first, self._n = [], [], set(), 0

    def _name(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{self._n}"

    def const(self, array: np.ndarray) -> str:
        name = self._name("w")
        self.weights.append(self._numpy_helper.from_array(np.asarray(array, np.float32), name))
        return name

    def op(self, kind: str, inputs: list[str], **attrs) -> str:
        out = self._name(kind.lower())
        self.nodes.append(self._helper.make_node(kind, inputs, [out], **attrs))
        if inputs and inputs[0] in self._first and kind not in ("Flatten", "Gemm"):
            self._first.add(out)
        return out

    def is_channels_first(self, x: str) -> bool:
        return x in self._first

    def channels_first(self, x: str) -> str:
        if x in self._first:
            return x
        y = self.op("Transpose", [x], perm=[0, 3, 1, 2])
        self._first.add(y)
        return y

    def channels_last(self, x: str) -> str:
        """Keras flattens and multiplies channels-last."""
        if x not in self._first:
            return x
        y = self.op("Transpose", [x], perm=[0, 2, 3, 1])
        self._first.discard(y)
        return y


def graph_bytes(net: Sequential, opset: int = DEFAULT.opset) -> bytes:
    """The ONNX model of ``net`` (folded first): input ``"x"`` ``(N, *input_shape)``
    float32, output ``"y"`` ``(N, classes)`` float32. Raises ImportError without onnx."""
    import onnx
    from onnx import TensorProto, helper

    g, cur = Graph(), "x"
    for layer in net.folded().layers:
        cur = layer.onnx(g, cur)
    g.nodes.append(helper.make_node("Identity", [g.channels_last(cur)], ["y"]))
    graph = helper.make_graph(
        g.nodes, "mnist_studio",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *net.input_shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "units"])], g.weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8  # what ONNX Runtime releases of the last years all read
    onnx.checker.check_model(model)
    return model.SerializeToString()


def session(net: Sequential, cfg: OnnxConfig = DEFAULT):
    """An ONNX Runtime session for ``net``, or None when onnx/onnxruntime is not
    installed or refuses the graph."""
    try:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = cfg.threads
        options.inter_op_num_threads = 1
        # The arena keeps the largest run's activations for the next run (a few MB at
        # cfg.chunk images). Without it, under the server's malloc settings
        # (tuning.return_big_buffers) the CNN's 28,000 images took 4.9-5.0 s, not 3.4-3.7.
        options.enable_cpu_mem_arena = True
        options.add_session_config_entry("session.intra_op.allow_spinning",
                                         "1" if cfg.spin else "0")
        options.log_severity_level = 3  # errors only; warnings would reach the server log
        return ort.InferenceSession(graph_bytes(net, cfg.opset), options,
                                    providers=["CPUExecutionProvider"])
    except Exception:  # noqa: BLE001 - any failure leaves NumPy to answer
        return None


def predict(holder, net: Sequential, x: np.ndarray, cfg: OnnxConfig = DEFAULT
            ) -> np.ndarray | None:
    """``net``'s outputs for ``x`` ``(N, *input_shape) float32`` through ONNX Runtime,
    ``(N, classes) float32``; None when the batch is small, the engine is switched off
    (:data:`ENGINE_ENV`) or unavailable. The session is made once and kept on
    ``holder`` (the model object); a failed run hands this and later batches to NumPy."""
    if len(x) < cfg.min_batch or os.environ.get(ENGINE_ENV, "").strip().lower() == "numpy":
        return None
    sess = getattr(holder, "_onnx_session", None)
    if sess is None:
        with _lock:
            sess = getattr(holder, "_onnx_session", None)
            if sess is None:
                sess = holder._onnx_session = session(net, cfg) or False
    if sess is False:
        return None
    x = np.ascontiguousarray(x, np.float32)
    try:
        parts = [sess.run(None, {"x": x[s:s + cfg.chunk]})[0]
                 for s in range(0, len(x), cfg.chunk)]
    except Exception:  # noqa: BLE001 - e.g. out of memory: NumPy answers, from now on
        holder._onnx_session = False
        return None
    return np.concatenate(parts).astype(np.float32, copy=False)
