"""Train, evaluate and package registry models: what ``python -m mnist_core train`` and the
app's Train live page share.

:func:`train_and_package` trains each requested model, evaluates it once on the test set
(the probabilities serve both its metrics and the gallery) and, given an output folder,
writes its weights, history and metrics, then the gallery and the manifest, each once.
Without a folder it only trains and evaluates: the models stay in memory.
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
from .models.architectures import Architecture, to_manifest
from .artifacts.files import load_models, manifest_or_empty, write_json, write_manifest
from .datasets.data import DataError, Dataset, load_dataset, to_float
from .insight.evaluate import evaluate_model
from .models.model import Model
from .artifacts.registry import REGISTRY, ModelSpec
from .training.train import Callback, EpochLog, StopFlag, TrainConfig

GALLERY_SAMPLES = 200   # random test digits shipped for the "show me a test digit" button
GALLERY_ERRORS = 300    # at most this many digits some model got wrong

Log = Callable[[str], None]


@dataclass
class Trained:
    """One model trained by :func:`train_and_package`."""

    name: str
    model: Model                # ready to predict, relabel (``renamed``), download
                                # (``to_bytes``); its metrics and history are filled in
    history: list[EpochLog]     # one row per epoch trained
    metrics: dict               # test-set metrics, as ``<name>.metrics.json`` holds them
    seconds: float              # training time
    stopped_early: bool         # the StopFlag ended training before the last epoch


def train_and_package(names, data: Dataset, out: str | Path | None = None, *,
                      train_cfg: TrainConfig | Callable[[ModelSpec], TrainConfig] | None = None,
                      arch: Architecture | Callable[[ModelSpec], Architecture] | None = None,
                      epochs: int | None = None,
                      callback_for: Callable[[str, TrainConfig], Callback | None] | None = None,
                      stop: StopFlag | None = None, command: str = "",
                      log: Log | None = None,
                      handwriting: str | Path | None = None,
                      engine: str = "tensorflow") -> dict[str, Trained]:
    """Train registry models ``names`` on ``data`` and evaluate each once on its test set.

    ``train_cfg``: a :class:`TrainConfig` for every model, or a function of the
    :class:`ModelSpec` giving one (default: each spec's ``train``); ``epochs`` overrides
    its epoch count. ``arch``: the architecture to build, likewise (default: each spec's
    ``arch``; ``lambda spec: spec.live_arch`` for short runs). ``callback_for(name, cfg)`` gives each model's progress
    callback, which hears the training loop's ``"batch"`` and ``"epoch"`` events, then
    ``"evaluate"`` (``{"model": Model}``) before the test set is scored. ``stop`` ends the
    training in progress after a batch and trains no further model. ``log`` receives one
    line per stage (the CLI prints them). ``engine``: what trains the Keras architectures
    (:meth:`Model.fit <mnist_core.models.model.Model.fit>`): ``"tensorflow"`` (the CLI) or
    ``"numpy"`` (the app's worker: no TensorFlow).

    With ``out``, writes each model's weights, ``.history.json`` and ``.metrics.json`` as
    it finishes, then ``gallery.npz`` and ``manifest.json`` (``command`` recorded in it)
    once each; before them, each new model's temperature is fitted and its calibration
    record written (:func:`calibrate_trained`; ``handwriting``: the dev-set folder for its
    real-handwriting curves, None for MNIST's only). Models already in ``out``'s manifest
    (same dataset) and not trained now keep their entries, and are loaded and predicted once for the gallery, before any
    training, so a damaged folder fails at once. Returns ``{name: Trained}``.
    """
    names, log = list(names), log or (lambda line: None)
    out = Path(out) if out is not None else None
    info: dict = {}
    preds: dict[str, np.ndarray] = {}
    test_probs: dict[str, np.ndarray] = {}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        info, preds = _kept_models(out, data, names)
    trained: dict[str, Trained] = {}
    for name in names:
        if stop is not None and stop.is_set():
            break
        spec = REGISTRY[name]
        cfg = _per_model(train_cfg, spec, spec.train)
        cfg = replace(cfg, epochs=epochs) if epochs is not None else cfg
        model_arch = _per_model(arch, spec, spec.arch)
        log(f"== {name}: {spec.title}, {cfg.epochs} epochs")
        callback = callback_for(name, cfg) if callback_for is not None else None
        result = spec.backend.fit(data, cfg, model_arch, callback, stop, engine=engine)
        model = spec.backend.from_net(result.model, spec, arch=model_arch,
                                      history=[asdict(e) for e in result.history])
        if out is not None:
            model.save(out / spec.filename)
            write_json(out, f"{name}.history.json", {
                "model": name, "epochs": model.history, "train_seconds": result.seconds,
                "train_cpu_seconds": result.cpu_seconds})
        log(f"== {name}: trained in {result.seconds:.0f}s")
        if callback is not None:
            callback("evaluate", {"model": model})
        metrics, probs = score_and_write(model, data, result.seconds, out, log)
        preds[name] = probs.argmax(1).astype(np.uint8)
        test_probs[name] = probs  # untempered: the model is not calibrated yet
        info[name] = {"title": spec.title, "file": spec.filename, "epochs": cfg.epochs,
                      "seed": cfg.seed, "train_seconds": round(result.seconds, 1),
                      "train_cpu_seconds": round(result.cpu_seconds, 1),
                      "train_config": asdict(cfg), "arch": to_manifest(model_arch),
                      # Models trained by earlier runs keep the command that made them.
                      "command": command}
        trained[name] = Trained(name, model, result.history, metrics, result.seconds,
                                result.stopped_early)
    if out is not None:
        calibrate_trained(trained, data, out, info, log, handwriting, test_probs)
        map_trained(trained, data, out, info, log, preds)
        write_gallery(out, data, {n: preds[n] for n in REGISTRY if n in preds})
        write_manifest(out, {"dataset": data.name, "class_names": list(data.class_names),
                             "data_source": data.source, "command": command, "models": info,
                             # Real writers mixed into training (train_config.writers_share
                             # says how much per model), with the source's credit.
                             "extra_training_data": data.extra_source})
    return trained


def map_trained(trained: dict[str, Trained], data: Dataset, out: str | Path, info: dict,
                log: Log | None = None, preds: dict[str, np.ndarray] | None = None) -> None:
    """Write each newly trained model's map of the test digits (``<name>.map.npz`` and
    ``digits.map.npz``, :mod:`mnist_core.insight.embedding`) into ``out`` and record how it was
    made in its manifest entry (``info[name]["map"]``); the manifest written afterwards
    hashes them. ``preds``: each model's answers on the test set, already scored. What
    ``python -m mnist_core embed`` writes for shipped models."""
    from .insight.embedding import manifest_entry, write_maps

    if not trained:
        return
    write_maps(out, {n: t.model for n, t in trained.items()}, data.x_test, data.y_test,
               log=log, preds=preds)
    for name in trained:
        info[name]["map"] = manifest_entry(command=info[name].get("command", ""))


def calibrate_trained(trained: dict[str, Trained], data: Dataset, out: str | Path,
                      info: dict, log: Log | None = None,
                      handwriting_dir: str | Path | None = None,
                      test_probs: dict[str, np.ndarray] | None = None) -> None:
    """Fit each newly trained model's temperature on its own validation split (``info``: the
    manifest's model entries, whose ``train_config`` names the split's ``n_val`` and
    ``seed``) and write its ``"calibration"`` record (with reliability curves on MNIST's
    test set and, when the dev set is there, real handwriting) into ``<name>.metrics.json`` in ``out``; the manifest
    written afterwards hashes them. What ``python -m mnist_core calibrate`` writes for
    shipped models (:mod:`mnist_core.insight.calibration`); ``handwriting_dir`` None leaves out the
    real-handwriting curves (a minute of preprocessing)."""
    from .insight.calibration import calibrate_models, default_handwriting

    if not trained:
        return
    handwriting = default_handwriting(handwriting_dir, log) if handwriting_dir else None
    splits = {n: (info[n]["train_config"]["n_val"], info[n]["train_config"]["seed"])
              for n in trained}
    calibrate_models({n: t.model for n, t in trained.items()}, data, splits, out, handwriting,
                     log=log, test_probs=test_probs)
    for name, t in trained.items():
        t.metrics = t.model.metrics


def _per_model(value, spec: ModelSpec, default):
    """``value`` for ``spec``: itself, its result when it is a function of the spec, or
    ``default`` when None."""
    return default if value is None else value(spec) if callable(value) else value


def _kept_models(out: Path, data: Dataset, names: list[str]) -> tuple[dict, dict]:
    """The manifest entries of ``out``'s models not retrained now (none if it holds another
    dataset) and their predicted test labels, each model loaded (verified) once."""
    manifest = manifest_or_empty(out)
    if manifest.get("dataset") not in (None, data.name):
        return {}, {}
    info = dict(manifest.get("models", {}))
    kept = [n for n in REGISTRY if n in info and n not in names]
    return info, predicted_labels(load_models(out, kept) if kept else {}, data)


def predicted_labels(models: dict[str, Model], data: Dataset) -> dict[str, np.ndarray]:
    """Each model's ``(N,) uint8`` answers for ``data``'s test set (one prediction each)."""
    x_test = to_float(data.x_test)
    return {n: m.predict_proba(x_test).argmax(1).astype(np.uint8) for n, m in models.items()}


def score_and_write(model: Model, data: Dataset, train_seconds: float | None,
                    out: Path | None = None, log: Log | None = None) -> tuple[dict, np.ndarray]:
    """:func:`~mnist_core.insight.evaluate.evaluate_model`, written to ``<name>.metrics.json`` in
    ``out`` when given (``file_bytes``: the weights file's size there, else the size of
    ``to_bytes()``); returns ``(metrics, test-set probabilities)``."""
    size = ((out / f"{model.name}{model.file_ext}").stat().st_size if out is not None
            else len(model.to_bytes()))
    metrics, probs = evaluate_model(model, data, train_seconds, size)
    model.metrics = metrics
    if out is not None:
        write_json(out, f"{model.name}.metrics.json", metrics)
    if log is not None:
        log(f"== {model.name}: test accuracy {metrics['accuracy']:.4%}, "
            f"loss {metrics['loss']:.4f}")
    return metrics, probs


def write_gallery(out: Path, data: Dataset, preds: dict[str, np.ndarray]) -> Path:
    """``gallery.npz``: random test digits plus digits some model got wrong, with every
    model's answer. ``preds``: model name -> ``(N,)`` predicted labels of the test set."""
    wrong = np.zeros(len(data.y_test), bool)
    for p in preds.values():
        wrong |= p != data.y_test
    rng = np.random.default_rng(0)
    sample = rng.choice(len(data.y_test), GALLERY_SAMPLES, replace=False)
    errors = np.flatnonzero(wrong)
    if len(errors) > GALLERY_ERRORS:  # keep the digits most models got wrong
        n_wrong = sum((p != data.y_test).astype(int) for p in preds.values())[errors]
        errors = errors[np.argsort(-n_wrong, kind="stable")[:GALLERY_ERRORS]]
    index = np.unique(np.concatenate([sample, errors]))
    path = Path(out) / "gallery.npz"
    np.savez_compressed(path, images=data.x_test[index], labels=data.y_test[index],
                        index=index.astype(np.int64), sample=np.isin(index, sample),
                        **{f"pred_{n}": np.asarray(p, np.uint8)[index] for n, p in preds.items()})
    return path


# ---------------------------------------------------------------------------------------
# Training in a worker process
# ---------------------------------------------------------------------------------------
#
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


_WORKER = "from mnist_core.package import _worker_main; _worker_main()"
_ROOT = Path(__file__).resolve().parent.parent


def train_in_worker(name: str, data: Dataset, *, train_cfg: TrainConfig,
                    arch: Architecture | None = None, callback: Callback | None = None,
                    stop: StopFlag | None = None, engine: str = "numpy") -> Trained:
    """:func:`train_and_package` for one registry model, without a folder, run in a fresh
    Python process; the result is the same :class:`Trained`, its model read back from its
    file (:meth:`Model.from_bytes <mnist_core.models.model.Model.from_bytes>`).

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
    Raises :class:`~mnist_core.datasets.data.DataError` as the loader does."""
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

    name, cfg = request["name"], request["train_cfg"]
    trained = train_and_package([name], request["data"], train_cfg=cfg,
                                arch=request["arch"], callback_for=lambda n, c: callback,
                                stop=stop, engine=request["engine"])[name]
    calibration = validation_record(trained.model, request["data"], cfg.n_val, cfg.seed)
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
