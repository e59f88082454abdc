"""Pieces shared by the classroom pages (Train live, Look inside, Stress test, Kaggle).

* the user's own model: trained on the Train live page, kept in this browser session only
  (``st.session_state["user_model"]``), shown beside the shipped models on the other pages;
* the digit picker: the last drawing from the Draw page, a shipped test digit, or a digit
  drawn on a small canvas;
* pictures of weights and activations as single images (diverging or sequential colours);
* the live-training job: a background thread per session, one training per server.

All machine-learning work is in :mod:`mnist_core`; this module only runs and shows it.
"""

from __future__ import annotations

import gzip
import io
import os
import tempfile
import threading
import time
import uuid
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from mnist_core.artifacts import LoadedModel
from mnist_core.data import ENV_VAR, DataError, Dataset, load_dataset, to_float
from mnist_core.numpy_net import NumpyMLP
from mnist_core.train import EpochLog, StopFlag, TrainConfig

from . import data
from .charts import GRID, loss_accuracy_layout, model_color

USER = "yours"                 # the user's model's key beside the shipped ones
USER_TITLE = "Your model"
USER_MODEL_KEY = "user_model"  # session state: the LoadedModel put on the Draw page
LAST_DIGIT_KEY = "last_digit"  # session state: the Draw page's last model input, 28x28
TEST_ROW_KEY = "classroom_test_row"  # session state: the gallery row shown as "a test digit"


# ---------------------------------------------------------------------------------------
# The user's model beside the shipped ones
# ---------------------------------------------------------------------------------------

def with_user_model(models: Mapping[str, LoadedModel]) -> dict[str, LoadedModel]:
    """The shipped ``models`` plus "Your model" when this session has trained and kept one."""
    user = st.session_state.get(USER_MODEL_KEY)
    if isinstance(user, LoadedModel):
        return {**models, USER: user}
    return dict(models)


def network_type(net) -> str:
    """``"mlp"`` for the NumPy or Keras dense networks, ``"conv"`` for CNNs."""
    if isinstance(net, NumpyMLP):
        return "mlp"
    from mnist_core.explain import conv_layers
    return "conv" if conv_layers(net) else "mlp"


# ---------------------------------------------------------------------------------------
# The digit to look at
# ---------------------------------------------------------------------------------------

@dataclass
class Digit:
    image: np.ndarray     # (28, 28) float32 in [0, 1], as the models see it
    label: int | None     # the true label when known (a test digit)
    source: str           # where it came from, for captions


SOURCES = {"drawing": "My last drawing", "test": "A test digit", "draw": "Draw one here"}


def _new_test_row() -> None:
    gallery = data.gallery()
    rows = np.flatnonzero(gallery.sample)
    if len(rows) == 0:
        rows = np.arange(len(gallery.labels))
    st.session_state[TEST_ROW_KEY] = int(np.random.default_rng().choice(rows))


def pick_digit(key: str) -> Digit | None:
    """Let the user choose the digit; ``None`` while the small canvas is still empty.

    The last drawing from the Draw page is offered (and chosen) when there is one; the test
    digit is shared by every classroom page so it stays the same from page to page.
    """
    last = st.session_state.get(LAST_DIGIT_KEY)
    options = (["drawing"] if last is not None else []) + ["test", "draw"]
    choice = st.segmented_control("Digit", options, format_func=SOURCES.get,
                                  default=options[0], required=True, key=f"{key}-source")
    if choice == "drawing" and last is not None:
        return Digit(np.asarray(last, np.float32).reshape(28, 28), None,
                     "your last drawing on the Draw page")
    if choice == "draw":
        return _draw_here(key)
    gallery = data.gallery()
    if st.session_state.get(TEST_ROW_KEY) is None or \
            st.session_state[TEST_ROW_KEY] >= len(gallery.labels):
        _new_test_row()
    st.button("Another test digit", key=f"{key}-another", on_click=_new_test_row,
              icon=":material/casino:")
    row = st.session_state[TEST_ROW_KEY]
    return Digit(to_float(gallery.images[row]), int(gallery.labels[row]),
                 f"MNIST test digit #{int(gallery.index[row])}")


def _draw_here(key: str) -> Digit | None:
    from streamlit_drawable_canvas import st_canvas

    from mnist_core.preprocess import NoDigitError, preprocess

    canvas = st_canvas(stroke_width=16, stroke_color="#FFFFFF", background_color="#000000",
                       height=200, width=200, drawing_mode="freedraw", update_streamlit=True,
                       return_image_data=True, key=f"{key}-canvas")
    if canvas.image_data is None:
        return None
    try:
        stages = preprocess(np.asarray(canvas.image_data))
    except NoDigitError:
        return None
    return Digit(stages.final, None, "the digit drawn here")


# ---------------------------------------------------------------------------------------
# Pictures: colour maps and grids, rendered as one image each
# ---------------------------------------------------------------------------------------

def _lut(anchors: Sequence[Sequence[int]]) -> np.ndarray:
    anchors = np.asarray(anchors, np.float64)
    pos = np.linspace(0, 1, len(anchors))
    t = np.linspace(0, 1, 256)
    return np.stack([np.interp(t, pos, anchors[:, c]) for c in range(3)], 1).round().astype(
        np.uint8)


# Blue = negative, white = zero, red = positive (ColorBrewer RdBu, reversed).
DIVERGING = _lut([(33, 102, 172), (103, 169, 207), (209, 229, 240), (247, 247, 247),
                  (253, 219, 199), (239, 138, 98), (178, 24, 43)])
# Black = silent, through purple and orange to pale yellow = strongest (magma-like).
SEQUENTIAL = _lut([(0, 0, 4), (80, 18, 123), (183, 55, 121), (252, 137, 97), (252, 253, 191)])


def _limit(values: np.ndarray) -> float:
    """A robust maximum magnitude: the 99.5th percentile, so one outlier does not wash out
    the rest (never 0)."""
    a = np.abs(np.asarray(values, np.float64))
    lim = float(np.percentile(a, 99.5)) if a.size else 0.0
    return lim if lim > 1e-12 else (float(a.max()) if a.size and a.max() > 0 else 1.0)


def diverging(values: np.ndarray, limit: float | None = None) -> np.ndarray:
    """Signed values -> ``uint8`` RGB: blue below zero, white at zero, red above."""
    v = np.asarray(values, np.float64)
    lim = limit if limit else _limit(v)
    idx = np.clip((v / lim + 1) * 127.5, 0, 255).astype(np.uint8)
    return DIVERGING[idx]


def sequential(values: np.ndarray, limit: float | None = None) -> np.ndarray:
    """Non-negative values -> ``uint8`` RGB from black (0) to pale yellow (``limit``)."""
    v = np.maximum(np.asarray(values, np.float64), 0)
    lim = limit if limit else _limit(v)
    return SEQUENTIAL[np.clip(v / lim * 255, 0, 255).astype(np.uint8)]


def upscale(img: np.ndarray, scale: int) -> np.ndarray:
    return np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)


def grid(tiles: Sequence[np.ndarray] | np.ndarray, cols: int, scale: int = 1, pad: int = 3,
         background: int = 255) -> np.ndarray:
    """Equal-sized RGB tiles, each upscaled by ``scale``, in one image ``cols`` wide."""
    tiles = [upscale(np.asarray(t, np.uint8), scale) for t in tiles]
    if not tiles:
        return np.full((1, 1, 3), background, np.uint8)
    h, w = tiles[0].shape[:2]
    cols = max(1, min(cols, len(tiles)))
    rows = -(-len(tiles) // cols)
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), background, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        out[y:y + h, x:x + w] = tile
    return out


def outlined(rgb: np.ndarray, digit: np.ndarray, scale: int,
             color: tuple[int, int, int] = (40, 40, 40)) -> np.ndarray:
    """``rgb`` (28x28x3) upscaled by ``scale`` with the digit's outline drawn on top, so a
    weight or saliency map can be read against the strokes it refers to."""
    import cv2

    out = upscale(np.asarray(rgb, np.uint8), scale).copy()
    mask = upscale((np.asarray(digit, np.float32) > 0.35).astype(np.uint8), scale)
    edge = mask & (1 - cv2.erode(mask, np.ones((3, 3), np.uint8), borderValue=0))
    out[edge.astype(bool)] = color
    return out


def framed(img: np.ndarray, margin: int = 6) -> np.ndarray:
    """An RGB image with a white margin, so images shown in a row do not touch."""
    img = np.asarray(img, np.uint8)
    return np.pad(img, ((margin, margin), (margin, margin), (0, 0)), constant_values=255)


def digit_picture(image: np.ndarray, scale: int = 6) -> np.ndarray:
    """A 28x28 model input as crisp grey pixels."""
    g = (np.clip(np.asarray(image, np.float32), 0, 1) * 255).round().astype(np.uint8)
    return upscale(np.repeat(g[..., None], 3, axis=2), scale)


# ---------------------------------------------------------------------------------------
# Charts specific to the classroom (plotly JSON written directly, like ui.charts)
# ---------------------------------------------------------------------------------------

def _figure(traces: list[dict], layout: dict) -> go.Figure:
    return go.Figure(data=traces, layout=layout, _validate=False)


def sweep_figure(values: np.ndarray, curves: Mapping[str, np.ndarray],
                 titles: Mapping[str, str], x_title: str, current: float | None = None,
                 height: int = 380) -> go.Figure:
    """One line per model: its probability of the digit's class along a transform."""
    x = [float(v) for v in values]
    traces = []
    for i, (name, p) in enumerate(curves.items()):
        color = model_color(name, i)
        traces.append({"type": "scatter", "mode": "lines+markers", "x": x,
                       "y": np.round(np.asarray(p, np.float64), 4).tolist(),
                       "name": titles.get(name, name), "line": {"color": color, "width": 2.5},
                       "marker": {"size": 5},
                       "hovertemplate": titles.get(name, name) + "<br>%{x}: %{y:.1%}"
                                        "<extra></extra>"})
    shapes = []
    if current is not None:
        shapes.append({"type": "line", "x0": current, "x1": current, "y0": 0, "y1": 1,
                       "xref": "x", "yref": "paper",
                       "line": {"color": "#64748b", "dash": "dot", "width": 1.5}})
    layout = {
        "height": height, "margin": {"l": 56, "r": 10, "t": 16, "b": 44},
        "xaxis": {"title": {"text": x_title}, "gridcolor": GRID, "zeroline": False},
        "yaxis": {"title": {"text": "probability of the digit"}, "range": [0, 1.02],
                  "tickformat": ".0%", "gridcolor": GRID, "zeroline": False},
        "legend": {"orientation": "h", "y": -0.2, "x": 0, "font": {"size": 13}},
        "shapes": shapes, "hovermode": "closest",
        "plot_bgcolor": "rgba(0,0,0,0)", "paper_bgcolor": "rgba(0,0,0,0)",
    }
    return _figure(traces, layout)


def counts_figure(counts: Sequence[int], class_names: Sequence[str], height: int = 300
                  ) -> go.Figure:
    """How many digits were given each label: one bar per class."""
    labels = list(class_names)
    traces = [{"type": "bar", "x": labels, "y": [int(c) for c in counts],
               "marker": {"color": "#4f46e5"}, "text": [str(int(c)) for c in counts],
               "textposition": "outside", "cliponaxis": False,
               "hovertemplate": "%{x}: %{y} digits<extra></extra>"}]
    layout = {
        "height": height, "margin": {"l": 48, "r": 10, "t": 24, "b": 44}, "bargap": 0.25,
        "xaxis": {"title": {"text": "predicted label"}, "type": "category", "fixedrange": True},
        "yaxis": {"title": {"text": "digits"}, "gridcolor": GRID, "zeroline": False,
                  "fixedrange": True, "rangemode": "tozero"},
        "plot_bgcolor": "rgba(0,0,0,0)", "paper_bgcolor": "rgba(0,0,0,0)",
    }
    return _figure(traces, layout)


def live_figure(batches: Sequence[dict], history: Sequence[dict], epochs: int,
                height: int = 360) -> go.Figure:
    """Loss and accuracy while training: the running training values after every few
    batches (dashed) and the validation values at the end of each epoch (solid)."""
    color = model_color(USER)
    x = [b["x"] for b in batches]
    traces = []
    for ax, key, fmt in (("", "loss", ".4f"), ("2", "accuracy", ".2%")):
        traces.append({"type": "scatter", "mode": "lines", "x": x,
                       "y": [b[key] for b in batches], "xaxis": f"x{ax}", "yaxis": f"y{ax}",
                       "name": "training (running mean of the epoch)", "legendgroup": "train",
                       "showlegend": ax == "",
                       "line": {"color": color, "dash": "dash", "width": 2},
                       "hovertemplate": f"training<br>epoch %{{x:.2f}}: %{{y:{fmt}}}"
                                        "<extra></extra>"})
        traces.append({"type": "scatter", "mode": "lines+markers",
                       "x": [e["epoch"] for e in history],
                       "y": [e["val_" + key] for e in history], "xaxis": f"x{ax}",
                       "yaxis": f"y{ax}", "name": "validation (end of each epoch)",
                       "legendgroup": "val", "showlegend": ax == "",
                       "line": {"color": color, "width": 2.5}, "marker": {"size": 7},
                       "hovertemplate": f"validation<br>epoch %{{x}}: %{{y:{fmt}}}"
                                        "<extra></extra>"})
    axis = {"gridcolor": GRID, "zeroline": False}
    epoch_axis = {**axis, "title": {"text": "epoch"}, "range": [0, max(epochs, 1)],
                  "dtick": 1}
    layout = loss_accuracy_layout(height, epoch_axis, legend_y=-0.2,
                                  loss_axis={"rangemode": "tozero"},
                                  accuracy_format=".0%")
    return _figure(traces, layout)


# ---------------------------------------------------------------------------------------
# Live training
# ---------------------------------------------------------------------------------------

MAX_TRAIN_IMAGES = 20_000
MAX_EPOCHS = 10
JOB_KEY = "train_job"


@st.cache_resource(show_spinner="Loading MNIST for training…", max_entries=1)
def _training_data(where: str) -> Dataset:
    return load_dataset(where or None)


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
    """One training run in a background thread; the page polls it, the thread fills it."""

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
    model: LoadedModel | None = None
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
        """``train_model``'s progress callback (runs on the training thread)."""
        if event == "batch":
            self.status = "training"
            self.epoch, self.step, self.steps = info["epoch"], info["step"], info["steps"]
            self.batches.append({"x": info["epoch"] + info["step"] / info["steps"],
                                 "loss": float(info["loss"]),
                                 "accuracy": float(info["accuracy"])})
        elif event == "epoch":
            log: EpochLog = info["log"]
            self.history.append(dict(vars(log)))


def _param_count(net) -> int:
    return int(net.count_params())


def _run(job: TrainJob, dataset: Dataset, cfg: TrainConfig, arch, slot: TrainingSlot) -> None:
    from mnist_core.evaluate import score
    from mnist_core.registry import REGISTRY, train_model

    try:
        result = train_model(job.name, dataset, job.callback, job.stop, train_cfg=cfg, arch=arch)
        job.status = "evaluating"
        net = result.model
        if REGISTRY[job.name].kind == "numpy":
            predict = net.predict_proba
        else:
            from mnist_core.keras_models import fast_predict_fn, strip_optimizer
            net = strip_optimizer(net)  # drop the optimizer: smaller, and nothing to leak
            predict = fast_predict_fn(net)
        probs = predict(to_float(dataset.x_test))
        metrics = {**score(probs, dataset.y_test.astype(np.int64)), "params": _param_count(net),
                   "train_seconds": result.seconds, "n_train": job.n_train,
                   "settings": job.settings}
        spec = REGISTRY[job.name]
        job.model = LoadedModel(USER, USER_TITLE, spec.kind, net, predict, metrics,
                                [dict(e) for e in job.history], views=spec.views)
        job.status = "stopped" if result.stopped_early else "done"
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


def model_filename(model: LoadedModel, name: str) -> tuple[str, str]:
    """``(file name, mime type)`` of a trained model's download: the NumPy network as
    ``.npz`` (:meth:`NumpyMLP.save`), Keras models as ``.keras``."""
    ext = "npz" if isinstance(model.net, NumpyMLP) else "keras"
    return f"my_{name}.{ext}", "application/octet-stream"


def model_bytes(model: LoadedModel) -> bytes:
    """The file :func:`model_filename` names, as bytes (Keras goes through a temp file)."""
    net = model.net
    if isinstance(net, NumpyMLP):
        buf = io.BytesIO()
        net.save(buf)
        return buf.getvalue()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        net.save(path)
        with open(path, "rb") as f:
            return f.read()


# ---------------------------------------------------------------------------------------
# Kaggle uploads: test.csv is 51 MB, over the app's 20 MB upload limit, so zip/gzip is fine
# ---------------------------------------------------------------------------------------

MAX_CSV_BYTES = 200 * 1024 * 1024  # unpacked; Kaggle's test.csv is 51 MB


def csv_from_upload(name: str, raw: bytes) -> tuple[bytes, str]:
    """The CSV bytes of an upload, unpacking ``.zip`` (test.csv inside, or the only CSV) and
    ``.gz``; returns ``(bytes, name of the CSV)``. Raises :class:`DataError`."""
    lower = name.lower()
    if lower.endswith(".zip") or raw[:4] == b"PK\x03\x04":
        try:
            archive = zipfile.ZipFile(io.BytesIO(raw))
            members = [m for m in archive.infolist()
                       if m.filename.lower().endswith(".csv") and not m.is_dir()]
        except zipfile.BadZipFile as exc:
            raise DataError(f"{name}: not a readable zip file ({exc})") from exc
        named = [m for m in members if os.path.basename(m.filename).lower() == "test.csv"]
        if named:
            member = named[0]
        elif len(members) == 1:
            member = members[0]
        else:
            found = ", ".join(m.filename for m in members) or "no CSV files"
            raise DataError(f"{name}: expected test.csv inside, found {found}")
        if member.file_size > MAX_CSV_BYTES:
            raise DataError(f"{name}: {member.filename} unpacks to "
                            f"{member.file_size / 2**20:.0f} MB; Kaggle's test.csv is 51 MB")
        try:
            with archive.open(member) as f:
                out = f.read(MAX_CSV_BYTES + 1)
        except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError, EOFError,
                zlib.error) as exc:  # damaged, encrypted or an unsupported compression
            raise DataError(f"{name}: could not unpack {member.filename} ({exc})") from exc
        if len(out) > MAX_CSV_BYTES:
            raise DataError(f"{name}: {member.filename} unpacks to more than "
                            f"{MAX_CSV_BYTES // 2**20} MB; Kaggle's test.csv is 51 MB")
        return out, f"{name}/{member.filename}"
    if lower.endswith(".gz") or raw[:2] == b"\x1f\x8b":
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as f:
                out = f.read(MAX_CSV_BYTES + 1)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{name}: not readable gzip data ({exc})") from exc
        if len(out) > MAX_CSV_BYTES:
            raise DataError(f"{name}: unpacks to more than {MAX_CSV_BYTES // 2**20} MB; "
                            f"Kaggle's test.csv is 51 MB")
        return out, name[:-3] if lower.endswith(".gz") else name
    return raw, name
