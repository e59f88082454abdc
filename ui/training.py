"""Live training for the Train live page: one training per server at a time, progress
polled by the page.

The training itself is :func:`mnist_core.package.train_and_package`, the same function
``python -m mnist_core train`` uses, run in a worker process
(:func:`mnist_core.package.train_in_worker`) whose memory goes when training ends; the
worker trains the Keras architectures in NumPy (:func:`mnist_core.training.train.train_network`), so
TensorFlow loads neither in the server nor in the worker. A background thread per job
hears the worker's progress and keeps what the page shows (progress, curves, the finished
model, read back from its file with the NumPy evaluators).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass, field, replace

import streamlit as st

from mnist_core.datasets.data import ENV_VAR, DataError, Dataset, load_dataset
from mnist_core.models.model import Model
from mnist_core.package import WorkerError, load_dataset_in_worker, train_in_worker
from mnist_core.training.train import EpochLog, StopFlag, TrainConfig

from .user_model import USER, USER_TITLE

MAX_TRAIN_IMAGES = 20_000
MAX_EPOCHS = 10
JOB_KEY = "train_job"


@st.cache_resource(show_spinner="Loading MNIST for training…", max_entries=1)
def _training_data(where: str) -> Dataset:
    # Without a local copy keras.datasets downloads it: in a worker, keeping TensorFlow out.
    return load_dataset(where) if where else load_dataset_in_worker(None)


def training_data() -> Dataset:
    """MNIST from ``$MNIST_DATA`` (else a keras download), loaded once per server; stops the
    page with an error naming ``MNIST_DATA`` when it cannot be read."""
    where = os.environ.get(ENV_VAR, "")
    try:
        return _training_data(where)
    except DataError as exc:
        st.error(f"**No training data.** {exc}\n\nSet the `{ENV_VAR}` environment variable to "
                 f"a local MNIST copy (a folder with the four IDX files, Kaggle CSVs or "
                 f"keras's `mnist.npz`) and restart the app.", icon="🚫")
        st.stop()


class TrainingSlot:
    """One training at a time per server process: a lock any session can ask about."""

    def __init__(self):
        self._lock = threading.Semaphore(1)
        self.owner: str | None = None
        self.since = 0.0

    def try_acquire(self, owner: str) -> bool:
        if not self._lock.acquire(blocking=False):
            return False
        self.owner, self.since = owner, time.monotonic()
        return True

    def release(self) -> None:
        self.owner = None
        self._lock.release()

    @property
    def busy(self) -> bool:
        return self.owner is not None


@st.cache_resource
def training_slot() -> TrainingSlot:
    return TrainingSlot()


def session_id() -> str:
    if "classroom_session" not in st.session_state:
        st.session_state["classroom_session"] = uuid.uuid4().hex
    return st.session_state["classroom_session"]


@dataclass
class TrainJob:
    """One training run (a worker process, heard by a background thread); the page polls
    it, the thread fills it."""

    name: str                    # registry model: "numpy", "dense" or "cnn"
    title: str                   # e.g. "NumPy MLP"
    settings: dict               # what the user chose, for the results table
    epochs: int
    n_train: int
    stop: StopFlag = field(default_factory=StopFlag)
    started: float = field(default_factory=time.monotonic)
    status: str = "starting"     # starting, training, evaluating, done, stopped, failed
    epoch: int = 0               # 0-based epoch in progress
    step: int = 0
    steps: int = 1
    batches: list = field(default_factory=list)   # {"x", "loss", "accuracy"} every few batches
    history: list = field(default_factory=list)   # EpochLog dicts
    model: Model | None = None
    error: str | None = None
    seconds: float = 0.0
    thread: threading.Thread | None = None

    @property
    def finished(self) -> bool:
        return self.status in ("done", "stopped", "failed") and not (
            self.thread is not None and self.thread.is_alive())

    @property
    def fraction(self) -> float:
        if self.status in ("evaluating", "done"):
            return 1.0
        return min(1.0, (self.epoch + self.step / max(self.steps, 1)) / max(self.epochs, 1))

    def elapsed(self) -> float:
        return self.seconds if self.finished else time.monotonic() - self.started

    def callback(self, event: str, info: dict) -> None:
        """The training's progress callback (runs on the training thread)."""
        if event == "batch":
            self.status = "training"
            self.epoch, self.step, self.steps = info["epoch"], info["step"], info["steps"]
            self.batches.append({"x": info["epoch"] + info["step"] / info["steps"],
                                 "loss": float(info["loss"]),
                                 "accuracy": float(info["accuracy"])})
        elif event == "epoch":
            log: EpochLog = info["log"]
            self.history.append(dict(vars(log)))
        elif event == "evaluate":
            self.status = "evaluating"


def _run(job: TrainJob, dataset: Dataset, cfg: TrainConfig, arch, slot: TrainingSlot) -> None:
    try:
        trained = train_in_worker(job.name, dataset, train_cfg=cfg, arch=arch,
                                  callback=job.callback, stop=job.stop)
        model = trained.model.renamed(USER, USER_TITLE)
        model.metrics = {**trained.metrics, "n_train": job.n_train, "settings": job.settings}
        job.model = model
        job.status = "stopped" if trained.stopped_early else "done"
    except WorkerError as exc:  # already "Type: message", from the worker
        job.error = str(exc)
        job.status = "failed"
    except Exception as exc:  # noqa: BLE001 - shown on the page, never a traceback
        job.error = f"{type(exc).__name__}: {exc}"
        job.status = "failed"
    finally:
        job.seconds = time.monotonic() - job.started
        slot.release()


def start_training(name: str, title: str, dataset: Dataset, cfg: TrainConfig, arch,
                   settings: dict) -> TrainJob | None:
    """Start training in a background thread; ``None`` when another session is training."""
    cfg = replace(cfg, n_train=min(cfg.n_train or MAX_TRAIN_IMAGES, MAX_TRAIN_IMAGES),
                  epochs=min(cfg.epochs, MAX_EPOCHS))
    slot = training_slot()
    if not slot.try_acquire(session_id()):
        return None
    available = len(dataset.x_train) - max(1, min(cfg.n_val, len(dataset.x_train) // 5))
    job = TrainJob(name, title, settings, cfg.epochs, min(cfg.n_train, available))
    job.thread = threading.Thread(target=_run, args=(job, dataset, cfg, arch, slot),
                                  name=f"mnist-studio-train-{name}", daemon=True)
    try:
        job.thread.start()
    except BaseException:
        slot.release()
        raise
    return job


def temperature_note(model: Model) -> str:
    """The sentence saying how a model trained here tempers its percentages (the worker
    fits T on the run's own validation split), or "" when it carries no calibration."""
    calibration = model.metrics.get("calibration") or {}
    if not calibration:
        return ""
    return (f"Its percentages are tempered with T = {model.temperature:.2f}, fitted on its "
            f"{calibration['val']['n']:,} validation images, as the shipped models' are.")
