"""Training, loading a dataset and writing a Kaggle submission in a worker process, away
from the app's server: :func:`train_in_worker`, :func:`load_dataset_in_worker`,
:func:`submission_in_worker`, the worker's side (:func:`_worker_main`, started as
``python -c "from mnist_core.worker import _worker_main; _worker_main()"``) and the pickled
protocol between them. What the worker runs is :func:`mnist_core.package.train_and_package`.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from . import tuning
from .artifacts.registry import REGISTRY
from .datasets.common import DataError
from .datasets.data import Dataset, load_dataset
from .engine import onnx_graph
from .models.architectures import Architecture
from .models.model import Model
from .package import Trained, train_and_package
from .training.config import Callback, EpochLog, StopFlag, TrainConfig

# The app never imports TensorFlow: its ~600 MB would stay in the server for good, and in
# a worker it would put server and worker together over the budget while a model trains
# (benchmarks/MEMORY.md). Train live and Teach run train_and_package with the NumPy engine
# (training.train.train_network: the Keras architectures trained in NumPy, saved as real
# .keras files) in a fresh Python process (`python -c`, not multiprocessing:
# a spawned multiprocessing child re-imports the parent's main script, which for `streamlit
# run` is Streamlit itself) that streams the training's events back through its stdout and
# returns the model's file, so all of the training's memory goes when it ends. The
# NumPy MLP takes the same path: starting the worker costs ~1 s next to trainings of
# several seconds or more (benchmarks/MEMORY.md), and it keeps the training's buffers,
# its threads' CPU and its BLAS out of the server too.
#
# The protocol, pickles both ways between this module in two processes (nothing else
# writes to those pipes): the server sends one request; the worker sends
# ("event", (name, info)) frames, then ("result", payload) or ("error", (type, text)).
# One byte b"S" from the server asks the training to stop after its batch; end of input
# (the server went away) ends the worker at once.


class WorkerError(RuntimeError):
    """The worker failed; the message says how, in one line (never a traceback)."""


_WORKER = "from mnist_core.worker import _worker_main; _worker_main()"
_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class DatasetSource:
    """A dataset the worker reads itself (:func:`~mnist_core.datasets.data.load_dataset`'s
    arguments), so that the caller never holds its arrays: MNIST is 52 MB the app's server
    would otherwise keep for as long as it runs, after one live training."""

    where: str | None = None   # a folder or file; None: the dataset's environment variable,
                               # its system-wide copy, else a keras download (in the worker)
    dataset: str = "mnist"     # which dataset, as load_dataset names it


def train_in_worker(name: str, data: Dataset | DatasetSource, *, train_cfg: TrainConfig,
                    arch: Architecture | None = None, callback: Callback | None = None,
                    stop: StopFlag | None = None, engine: str = "numpy") -> Trained:
    """:func:`train_and_package` for one registry model, without a folder, run in a fresh
    Python process; the result is the same :class:`Trained`, its model read back from its
    file (:meth:`Model.from_bytes <mnist_core.models.model.Model.from_bytes>`).

    ``data``: the dataset itself, or a :class:`DatasetSource` the worker reads (one it
    cannot read raises :class:`~mnist_core.datasets.common.DataError` here, as
    ``load_dataset`` would).

    ``callback`` hears the same ``"batch"``, ``"epoch"`` (``{"log": EpochLog}``) and
    ``"evaluate"`` (``{}``: the model is still in the worker) events, on the calling
    thread. ``stop`` (set from any thread) ends the training after its batch; the model is
    still scored and returned. The model's temperature (:attr:`Model.temperature
    <mnist_core.models.model.Model.temperature>`) is fitted in the worker after training on the
    run's own validation split, the images its history's validation rows were scored on
    (:func:`mnist_core.insight.calibration.validation_record`), and recorded in its metrics under
    ``"calibration"``; the test-set metrics are the untempered network's, as the shipped
    models' are. ``engine``: what trains a Keras architecture, ``"numpy"``
    (the app: the worker never imports TensorFlow) or ``"tensorflow"`` (to compare
    against). Raises :class:`WorkerError` when the worker fails or dies, with its error's
    type and message.
    """
    spec = REGISTRY[name]
    arch = arch if arch is not None else spec.arch
    if isinstance(data, Dataset) and train_cfg.writers_share <= 0:
        # Not read by this training: MNIST's writers' renderings are 24 MB in the pipe and
        # in the worker's memory.
        data = replace(data, x_extra=None, y_extra=None)
    request = {"op": "train", "name": name, "data": data, "train_cfg": train_cfg,
               "arch": arch, "engine": engine}

    def on_event(event: str, info: dict) -> None:
        if callback is None:
            return
        if event == "epoch":
            info = {"log": EpochLog(**info["log"])}
        callback(event, info)

    out = _run_worker(request, on_event, stop)
    model = spec.backend.from_bytes(out["file"], spec, arch=arch, history=out["rows"],
                                    metrics=out["metrics"])
    # Fitted in the worker on the run's validation split (metrics["calibration"]), as the
    # shipped models' temperatures are: its percentages are tempered like theirs.
    model.temperature = float(out["temperature"])
    return Trained(name, model, [EpochLog(**row) for row in out["rows"]], out["metrics"],
                   out["seconds"], out["stopped_early"])


def load_dataset_in_worker(where: str | Path | None = None) -> Dataset:
    """:func:`~mnist_core.datasets.data.load_dataset` in a worker process: without a local copy it
    downloads through ``keras.datasets``, whose TensorFlow then stays out of the caller.
    Raises :class:`~mnist_core.datasets.common.DataError` as the loader does."""
    return _run_worker({"op": "load", "where": where}, lambda event, info: None, None)


def submission_in_worker(model: Model, images: np.ndarray,
                         progress: Callable[[float], None] | None = None) -> str:
    """:func:`mnist_core.classroom.kaggle.submission_csv` of ``model`` over ``(N, 28, 28) uint8``
    ``images``, run in a worker process: a Kaggle file's batch goes through ONNX Runtime
    there (:mod:`mnist_core.engine.onnx_graph`), whose library and session (about 80 MB that a
    process keeps once it has them, benchmarks/MEMORY.md) then never enter the server.
    ``progress`` hears the fraction done, on the calling thread. Raises
    :class:`WorkerError`."""
    request = {"op": "kaggle", "kind": type(model).__name__, "file": model.to_bytes(),
               "images": np.ascontiguousarray(images, np.uint8)}
    return _run_worker(request, lambda event, info: progress and progress(info["fraction"]),
                       None)


def _run_worker(request: dict, on_event: Callable[[str, dict], None],
                stop: StopFlag | None):
    # The worker's malloc and BLAS threads: mnist_core.tuning says why and what they save.
    env = {**os.environ, **tuning.worker_env(),
           "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
           "PYTHONPATH": os.pathsep.join(p for p in (str(_ROOT), os.environ.get("PYTHONPATH"))
                                         if p)}
    # stderr is the server's: TensorFlow's warnings land in its log, not in the stream.
    proc = subprocess.Popen([sys.executable, "-c", _WORKER], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, env=env, cwd=_ROOT)
    finished = threading.Event()
    try:
        pickle.dump(request, proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        proc.stdin.flush()
        if stop is not None:
            threading.Thread(target=_forward_stop, args=(stop, proc, finished),
                             name="mnist-worker-stop", daemon=True).start()
        while True:
            try:
                kind, payload = pickle.load(proc.stdout)
            except EOFError:
                break
            if kind == "event":
                on_event(*payload)
            elif kind == "result":
                return payload
            else:
                error, text = payload
                raise DataError(text) if error == "DataError" else WorkerError(f"{error}: {text}")
        code = proc.wait()
        raise WorkerError(f"the worker process ended unexpectedly (exit code {code}"
                          + (", killed: out of memory?)" if code == -9 else ")"))
    finally:
        finished.set()
        for pipe in (proc.stdin, proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        # Reaped off this thread: the result is not held up by the worker's exit.
        threading.Thread(target=_reap, args=(proc,), name="mnist-worker-reap",
                         daemon=True).start()


def _reap(proc: subprocess.Popen) -> None:
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _forward_stop(stop: StopFlag, proc: subprocess.Popen, finished: threading.Event) -> None:
    while not finished.is_set():
        if stop.wait(0.2):
            try:
                proc.stdin.write(b"S")
                proc.stdin.flush()
            except (OSError, ValueError):  # the worker is gone, or its pipe closed
                pass
            return


def _worker_main() -> None:
    """The worker's side of :func:`_run_worker` (``python -c``)."""
    stream = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything a library prints goes to stderr, not into the stream
    sys.stdout = sys.stderr
    lock, sent = threading.Lock(), threading.Event()

    def send(kind: str, payload) -> None:
        with lock:
            pickle.dump((kind, payload), stream, protocol=pickle.HIGHEST_PROTOCOL)
            stream.flush()

    request = pickle.load(sys.stdin.buffer)
    # A stop asked before the first batch (the worker takes a second or more to start)
    # is held until that batch: the user still gets a model, trained on one batch.
    stop, asked, started = StopFlag(), threading.Event(), threading.Event()

    def listen() -> None:
        while True:
            byte = sys.stdin.buffer.read(1)
            if byte == b"S":
                asked.set()
                if started.is_set():
                    stop.set()
            elif not byte:  # the server went away (or closed the pipe after the result)
                if not sent.is_set():
                    os._exit(1)
                return

    threading.Thread(target=listen, name="mnist-worker-listen", daemon=True).start()
    try:
        if request["op"] == "load":
            result = load_dataset(request["where"])
        elif request["op"] == "kaggle":
            result = _kaggle_one(request, lambda f: send("event", ("progress",
                                                                  {"fraction": f})))
        else:
            def emit(event: str, info: dict) -> None:
                if event == "batch" and not started.is_set():
                    started.set()
                    if asked.is_set():
                        stop.set()
                send("event", (event, info))

            result = _train_one(request, stop, emit)
    except Exception as exc:  # noqa: BLE001 - sent as one line, shown on the page
        sent.set()
        send("error", (type(exc).__name__, str(exc)))
    else:
        sent.set()
        send("result", result)
    sys.stderr.flush()
    os._exit(0)  # at once: nothing to clean up, and TensorFlow's teardown takes a while


def _kaggle_one(request: dict, progress: Callable[[float], None]) -> str:
    from .classroom import kaggle
    from .models.model import KerasModel, NumpyModel

    kinds = {cls.__name__: cls for cls in (KerasModel, NumpyModel)}
    model = kinds[request["kind"]].from_bytes(request["file"])
    return kaggle.submission_csv(model.predict_proba, request["images"], progress=progress)


def _train_one(request: dict, stop: StopFlag, emit: Callable[[str, dict], None]) -> dict:
    def callback(event: str, info: dict) -> None:
        if event == "epoch":
            info = {"log": asdict(info["log"])}
        elif event == "evaluate":
            info = {}
            tuning.trim_malloc()  # the training's buffers, before scoring makes its own
        emit(event, info)

    from .insight.calibration import validation_record

    # Scoring the test set and calibrating on the validation split in NumPy, not ONNX
    # Runtime: as fast for a live model, and the runtime and its session cost the worker
    # 45 MB at its peak (a 1,000-image CNN run: 312 MB with it, 267 MB without).
    os.environ[onnx_graph.ENGINE_ENV] = "numpy"
    name, cfg, data = request["name"], request["train_cfg"], request["data"]
    if isinstance(data, DatasetSource):
        data = load_dataset(data.where, data.dataset)
    trained = train_and_package([name], data, train_cfg=cfg,
                                arch=request["arch"], callback_for=lambda n, c: callback,
                                stop=stop, engine=request["engine"])[name]
    calibration = validation_record(trained.model, data, cfg.n_val, cfg.seed)
    metrics = {**trained.metrics, "calibration": calibration}
    return {"file": trained.model.to_bytes(), "metrics": metrics,
            "temperature": calibration["temperature"],
            "rows": [asdict(e) for e in trained.history], "seconds": trained.seconds,
            "stopped_early": trained.stopped_early,
            # What the worker cost and whether TensorFlow came in (tests and
            # benchmarks/memory.py read these; train_in_worker ignores them).
            "imported": sorted(m for m in ("tensorflow", "keras") if m in sys.modules),
            "peak_rss_kb": _peak_rss_kb(), "cpu_seconds": sum(os.times()[:2]),
            "blas_threads": tuning.blas_thread_count()}


def _peak_rss_kb() -> int | None:
    """This process's peak resident set size (``VmHWM``), in kB; None where /proc is not."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None
