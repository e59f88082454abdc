"""Live training for the Train live and Teach pages: one training per server at a time,
its progress polled by the page (:func:`live_progress`), and the trained model against the
shipped one (:func:`yours_against_shipped`).

The training itself is :func:`mnist_core.package.train_and_package`, the same function
``python -m mnist_core train`` uses, run in a worker process
(:func:`mnist_core.worker.train_in_worker`) whose memory goes when training ends; the
worker trains the Keras architectures in NumPy (:func:`mnist_core.training.train.train_network`), so
TensorFlow loads neither in the server nor in the worker. A background thread per job
hears the worker's progress and keeps what the page shows (progress, curves, the finished
model, read back from its file with the NumPy evaluators).
"""

from __future__ import annotations

import math
import os
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NoReturn

import streamlit as st

from mnist_core.datasets.common import DataError
from mnist_core.datasets.data import ENV_VAR, Dataset, load_dataset
from mnist_core.models.model import Model
from mnist_core.training.config import EpochLog, StopFlag, TrainConfig
from mnist_core.training.feed import training_size
from mnist_core.worker import (DatasetSource, WorkerError, load_dataset_in_worker,
                               train_in_worker)

from .charts import PLOTLY_CONFIG, live_figure
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
        _no_training_data(str(exc))


def training_source() -> DatasetSource:
    """MNIST for a live training, read by the training's worker itself, so the server never
    holds it (Train live: the server keeps nothing of MNIST after a training); from
    ``$MNIST_DATA`` (else a keras download, in the worker). Stops the page with an error
    naming ``MNIST_DATA`` when that names nothing."""
    where = os.environ.get(ENV_VAR, "")
    if where and not Path(where).expanduser().exists():
        _no_training_data(f"{where} does not exist.")
    return DatasetSource(where or None)


def _no_training_data(why: str) -> NoReturn:
    st.error(f"**No training data.** {why}\n\nSet the `{ENV_VAR}` environment variable to "
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


def _run(job: TrainJob, dataset: Dataset | DatasetSource, cfg: TrainConfig, arch,
         slot: TrainingSlot) -> None:
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


def start_training(name: str, title: str, dataset: Dataset | DatasetSource, cfg: TrainConfig,
                   arch, settings: dict) -> TrainJob | None:
    """Start training on ``dataset`` (or the one the worker reads: :func:`training_source`)
    in a background thread; ``None`` when another session is training."""
    cfg = replace(cfg, n_train=min(cfg.n_train or MAX_TRAIN_IMAGES, MAX_TRAIN_IMAGES),
                  epochs=min(cfg.epochs, MAX_EPOCHS))
    slot = training_slot()
    if not slot.try_acquire(session_id()):
        return None
    n_train = cfg.n_train
    if isinstance(dataset, Dataset):  # a source is MNIST: 55,000 images, more than asked
        n_train = training_size(len(dataset.x_train), cfg)
    job = TrainJob(name, title, settings, cfg.epochs, n_train)
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


# ---------------------------------------------------------------------------------------
# What Train live and Teach show of a training: its progress, then yours against shipped
# ---------------------------------------------------------------------------------------

def progress_text(job: TrainJob, detailed: bool = True) -> str:
    """The words on a job's progress bar: ``detailed`` (Train live) names the batch and
    each stage; otherwise (Teach) only the epoch, or the status once finished."""
    if not detailed:
        return (f"{job.title}: epoch {min(job.epoch + 1, job.epochs)} of {job.epochs} · "
                f"{job.elapsed():.0f} s" if not job.finished else f"{job.title}: {job.status}")
    if job.finished:
        return {"done": f"{job.title} trained in {job.seconds:.0f} s.",
                "stopped": f"Stopped after {len(job.history)} epoch(s), {job.seconds:.0f} s.",
                "failed": "Training failed."}[job.status]
    if job.status == "evaluating":
        return f"Scoring on the test set… {job.elapsed():.0f} s"
    if job.stop.is_set():
        return "Stopping after this batch…"
    if job.status == "starting":
        return (f"Starting the training process, preparing {job.n_train:,} images… "
                f"{job.elapsed():.0f} s")
    return (f"Training {job.title}: epoch {job.epoch + 1} of {job.epochs}, batch "
            f"{job.step} of {job.steps} · {job.elapsed():.0f} s")


def _stop(job_key: str) -> None:
    current = st.session_state.get(job_key)
    if current is not None:
        current.stop.set()


def live_progress(job_key: str, was_running: bool, *, detailed: bool = True,
                  idle: str | None = None, stop_key: str | None = None,
                  curves_key: str | None = None) -> None:
    """The session's job under ``job_key``, polled every second while ``was_running``
    (a fragment: only it reruns): its progress bar (:func:`progress_text`), a Stop button
    (``stop_key``) and the live curves (``curves_key``) when given; ``idle`` is shown
    before any job. When the job finishes the whole page reruns, to show its results."""
    @st.fragment(run_every=1.0 if was_running else None)
    def view() -> None:
        job = st.session_state.get(job_key)
        if job is None:
            if idle:
                st.info(idle, icon=":material/model_training:")
            return
        if was_running and job.finished:
            st.rerun()  # the whole page: unlock the settings and show the results
        st.progress(job.fraction, text=progress_text(job, detailed))
        if stop_key and not job.finished:
            st.button("Stop", key=stop_key, on_click=_stop, args=(job_key,),
                      icon=":material/stop:", disabled=job.stop.is_set())
        if curves_key:
            st.plotly_chart(live_figure(list(job.batches), list(job.history), job.epochs,
                                        USER), config=PLOTLY_CONFIG, key=curves_key)

    view()


def finished_model(job: TrainJob | None) -> Model:
    """The job's trained model; stops the page while there is none yet (no job, or one
    still running), and with the error when training failed."""
    if job is None or not job.finished:
        st.stop()
    if job.status == "failed" or job.model is None:
        st.error(f"Training stopped with an error: {job.error}", icon="🚫")
        st.stop()
    return job.model


@dataclass(frozen=True)
class Versus:
    """One score of your model beside the shipped model's, as two cards."""

    yours_label: str             # your card's label, e.g. "Your test accuracy"
    shipped_label: str           # the shipped card's, e.g. "Shipped NumPy MLP"
    yours: float                 # your model's accuracy, in [0, 1]
    shipped: float | None        # the shipped model's (None or NaN: there is none)
    shipped_note: str | None = None   # under the shipped score, e.g. how it was trained


@dataclass(frozen=True)
class Card:
    """A card beside the scores (training time, parameters...)."""

    label: str                   # what it measures
    value: str                   # the measure, in words
    note: str | None = None      # under it, in grey


def yours_against_shipped(scores: Sequence[Versus], extra: Sequence[Card] = ()) -> None:
    """Your model against the shipped one, in one row of cards: for each score yours, with
    its difference in points, then the shipped model's (or "not shipped"); then ``extra``."""
    cols = iter(st.columns(2 * len(scores) + len(extra)))
    for s in scores:
        shipped = s.shipped is not None and not math.isnan(s.shipped)
        next(cols).metric(s.yours_label, f"{s.yours:.2%}",
                          f"{100 * (s.yours - s.shipped):+.2f} points vs shipped"
                          if shipped else None, border=True)
        if shipped:
            next(cols).metric(s.shipped_label, f"{s.shipped:.2%}", s.shipped_note,
                              delta_color="off", delta_arrow="off", border=True)
        else:
            next(cols).metric(s.shipped_label, "not shipped", border=True)
    for card in extra:
        next(cols).metric(card.label, card.value, card.note, delta_color="off",
                          delta_arrow="off", border=True)
