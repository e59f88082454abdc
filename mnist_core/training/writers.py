"""Pen strokes of real writers to train on, split by writer, and scored per writer.

``../shared/data/handwriting-train/pendigits_train.jsonl`` (UCI Pen-Based Recognition of
Handwritten Digits, the 30 training writers; CC BY 4.0, see :data:`CREDIT`) holds the kind
of data a person produces on the app's canvas. Its strokes are rendered in the app's input
styles (:mod:`.handwriting`: canvas drawings and photos of ink on paper), some with the
writing styles MNIST lacks (:data:`.augment.STROKE_STYLES`), and read by the app's own
preprocessing into ``(28, 28) uint8`` model inputs. Those inputs join MNIST in training
(``TrainConfig.writers_share``); whole writers are held out to measure, never single
digits, since a model that memorises a writer's style would look better than it is.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from .augment import SCAN, STROKE_STYLES, ScanConfig, apply_stroke_style, render_scan
from ..datasets.handwriting import CanvasStyle, PhotoStyle, render_canvas, render_photo

ENV_VAR = "HANDWRITING_TRAIN"
FILENAME = "pendigits_train.jsonl"
DEFAULT_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "handwriting-train"
CREDIT = ('E. Alpaydin and F. Alimoglu, "Pen-Based Recognition of Handwritten Digits", '
          "UCI Machine Learning Repository (1996), CC BY 4.0")
CACHE_ENV_VAR = "MNIST_STUDIO_CACHE"
# Bump when rendering or preprocessing changes what a cached set would hold.
RENDER_VERSION = 1


@dataclass(frozen=True)
class WriterMix:
    """How the writers' strokes become training images, and which writers only measure."""

    held_out: int = 6              # writers never trained on (chosen by seed): they measure
    renders: int = 4               # renderings per digit, alternately canvas and photo
    style_rate: float = 0.3        # chance a rendering of an eligible digit gets one of the
                                   # styles MNIST lacks (slashed 0, crossed 7, ...)
    canvas: CanvasStyle = CanvasStyle()  # as on the app's 280x280 canvas
    photo: PhotoStyle = PhotoStyle()     # as a phone photo of ink on paper
    seed: int = 0                  # seeds the split, the renderings and the styles
    scans: int = 0                 # further renderings per digit as a scanned form
                                   # (:func:`.augment.render_scan`), beside the renders;
                                   # 0 as the shipped models were trained (issue 22's
                                   # ablation, benchmarks/SCANS_ABLATION.md, measures 1)
    scan: ScanConfig = SCAN        # how those scans look


# The fields that only the scanned renderings depend on: the canvas and photo renderings
# are cached apart from them, so a change to the scans does not render those again.
SCAN_FIELDS = ("scans", "scan")


class WritersMissing(FileNotFoundError):
    """The writers' strokes are not where we looked; the message says where and how to
    point at them."""


@dataclass(frozen=True)
class PenDigits:
    """Digits as pen strokes: ``labels`` ``(N,) int64 in [0, 9]``, ``writers`` ``(N,)`` str
    ids, ``strokes[i]`` a list of ``(n, 2) float32`` x/y points (y down, tablet units)."""

    labels: np.ndarray
    writers: np.ndarray
    strokes: list[list[np.ndarray]]

    def subset(self, keep: np.ndarray) -> "PenDigits":
        idx = np.flatnonzero(keep)
        return PenDigits(self.labels[idx], self.writers[idx], [self.strokes[i] for i in idx])


def find(path: str | Path | None = None) -> Path:
    """The strokes file: ``path`` (a file or its folder), else ``$HANDWRITING_TRAIN``, else
    the shared copy beside the repository; :class:`WritersMissing` when none exists."""
    tried = [p for p in (path, os.environ.get(ENV_VAR), DEFAULT_DIR) if p]
    for candidate in tried:
        p = Path(candidate).expanduser()
        p = p / FILENAME if p.is_dir() else p
        if p.is_file():
            return p
    raise WritersMissing(f"{FILENAME} not found (looked in {', '.join(str(t) for t in tried)}); "
                         f"set ${ENV_VAR} to the folder holding it")


def load(path: str | Path | None = None) -> PenDigits:
    """Every digit of the strokes file (see :func:`find`)."""
    labels, writers, strokes = [], [], []
    with open(find(path)) as f:
        for line in f:
            if line.strip():
                rec = json.loads(line)
                labels.append(int(rec["label"]))
                writers.append(str(rec["writer"]))
                strokes.append([np.asarray(s, np.float32).reshape(-1, 2)
                                for s in rec["strokes"] if len(s)])
    return PenDigits(np.array(labels, np.int64), np.array(writers), strokes)


def split_writers(writers: np.ndarray, mix: WriterMix = WriterMix()) -> tuple[list[str], list[str]]:
    """``(training writers, held-out writers)``, sorted; no writer on both sides. The
    held-out ones are ``mix.held_out`` writers drawn by ``mix.seed``."""
    ids = sorted(set(writers.tolist()))
    order = np.random.default_rng(mix.seed).permutation(len(ids))
    held = sorted(ids[i] for i in order[:mix.held_out])
    return sorted(set(ids) - set(held)), held


# ---------------------------------------------------------------------------------------
# Rendering into model inputs
# ---------------------------------------------------------------------------------------

def render(strokes: list[np.ndarray], style: str, rng: np.random.Generator,
           mix: WriterMix = WriterMix()) -> np.ndarray:
    """One digit's strokes as the app receives them: ``style`` "canvas" gives ``(280, 280,
    4) uint8`` RGBA as the canvas returns, "photo" ``(H, W, 3) uint8`` RGB after JPEG,
    "scan" ``(64, 64) uint8`` grey, white ink on black, as a small scan upscaled."""
    if style == "canvas":
        return render_canvas(strokes, rng, mix.canvas)
    if style == "scan":
        return render_scan(strokes, rng, mix.scan)
    return render_photo(strokes, rng, mix.photo)


def model_input(image: np.ndarray, style: str) -> np.ndarray | None:
    """What the app feeds the models for a rendering: ``(28, 28) uint8``, or None when the
    preprocessing finds no digit."""
    from ..preprocess import NoDigitError, preprocess

    try:
        final = preprocess(image, canvas=style == "canvas").final
    except NoDigitError:
        return None
    return np.round(np.clip(final, 0, 1) * 255).astype(np.uint8)


def _render_chunk(args) -> tuple[np.ndarray, np.ndarray]:
    """Worker: renderings ``[(index, rendering number)]`` -> ``(images, ok)``; numbers from
    ``mix.renders`` on are scans."""
    pen, jobs, mix = args
    out = np.zeros((len(jobs), 28, 28), np.uint8)
    ok = np.zeros(len(jobs), bool)
    for k, (i, r) in enumerate(jobs):
        rng = np.random.default_rng((mix.seed, int(i), int(r)))
        strokes = pen.strokes[i]
        if rng.random() < mix.style_rate:
            strokes = apply_stroke_style(strokes, int(pen.labels[i]), rng)
        style = "scan" if r >= mix.renders else "canvas" if r % 2 == 0 else "photo"
        final = model_input(render(strokes, style, rng, mix), style)
        if final is not None:
            out[k], ok[k] = final, True
    return out, ok


def training_images(pen: PenDigits, mix: WriterMix = WriterMix(), workers: int | None = None,
                    cache: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``mix.renders`` model inputs per digit of ``pen``, canvas and photo in turn: ``(M,
    28, 28) uint8`` and ``(M,) uint8`` labels (renderings where no digit was found are
    dropped). Seeded, so the same ``pen`` and ``mix`` give the same images; kept in
    ``cache`` (a folder, default ``$MNIST_STUDIO_CACHE`` or ``~/.cache/mnist-studio``)
    since rendering and reading ~30,000 images takes minutes."""
    return _rendered(pen, mix, range(mix.renders), "writers", workers, cache)


def scan_images(pen: PenDigits, mix: WriterMix = WriterMix(), workers: int | None = None,
                cache: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``mix.scans`` model inputs per digit of ``pen`` rendered as scanned forms
    (:func:`.augment.render_scan`), read by the app's preprocessing; as
    :func:`training_images` (seeded, cached apart)."""
    return _rendered(pen, mix, range(mix.renders, mix.renders + mix.scans), "writers-scans",
                     workers, cache)


def _rendered(pen: PenDigits, mix: WriterMix, numbers: range, stem: str,
              workers: int | None, cache: str | Path | None) -> tuple[np.ndarray, np.ndarray]:
    """Renderings ``numbers`` of every digit of ``pen`` (see :func:`_render_chunk`), read
    into model inputs, cached under ``stem``."""
    scans = stem.endswith("scans")
    path = _cache_path(f"{stem}-{_cache_key(pen, mix, scans)}", cache)
    if not len(numbers):
        return np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.uint8)
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as f:
                return f["x"], f["y"]
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache is rebuilt below
    jobs = [(i, r) for i in range(len(pen.labels)) for r in numbers]
    workers = workers or min(4, os.cpu_count() or 1)
    chunks = [jobs[k::workers * 4] for k in range(workers * 4)]
    # spawn: the parent may have imported TensorFlow, whose threads do not survive a fork.
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        parts = list(pool.map(_render_chunk, [(pen, c, mix) for c in chunks]))
    per = len(numbers)
    order = np.concatenate([np.array([i * per + r - numbers.start for i, r in c], np.int64)
                            for c in chunks])
    images = np.concatenate([p[0] for p in parts])[np.argsort(order)]
    ok = np.concatenate([p[1] for p in parts])[np.argsort(order)]
    labels = np.repeat(pen.labels, per).astype(np.uint8)
    x, y = images[ok], labels[ok]
    _save_cache(path, x=x, y=y)
    return x, y


def _cache_path(stem: str, cache: str | Path | None) -> Path:
    folder = Path(cache or os.environ.get(CACHE_ENV_VAR) or Path.home() / ".cache" / "mnist-studio")
    return folder / f"{stem}.npz"


def _save_cache(path: Path, **arrays) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez_compressed(tmp, **arrays)
        tmp.replace(path)
    except OSError:
        pass  # no writable cache: render again next time


def _cache_key(pen: PenDigits, mix: WriterMix, scans: bool = False) -> str:
    """The key of ``pen``'s renderings under ``mix``: of its scans (``scans``) or of the
    rest, which the scan fields do not touch."""
    h = hashlib.sha256()
    settings = asdict(mix)
    if not scans:
        settings = {k: v for k, v in settings.items() if k not in SCAN_FIELDS}
    h.update(json.dumps([RENDER_VERSION, settings, sorted(STROKE_STYLES)],
                        sort_keys=True, default=str).encode())
    h.update(pen.labels.tobytes())
    h.update("\n".join(pen.writers.tolist()).encode())
    for strokes in pen.strokes:
        for s in strokes:
            h.update(s.tobytes())
    return h.hexdigest()[:16]


def training_set(path: str | Path | None = None, mix: WriterMix = WriterMix()
                 ) -> tuple[np.ndarray, np.ndarray, dict]:
    """The training writers' renderings for :class:`~mnist_core.datasets.data.Dataset`'s
    ``x_extra``/``y_extra``, and a record for the manifest (source, credit, writers, mix)."""
    pen = load(path)
    train, held = split_writers(pen.writers, mix)
    mine = pen.subset(np.isin(pen.writers, train))
    x, y = training_images(mine, mix)
    xs, ys = scan_images(mine, mix)
    x, y = np.concatenate([x, xs]), np.concatenate([y, ys])
    record = {"source": FILENAME, "credit": CREDIT, "images": int(len(y)),
              "scanned_images": int(len(ys)),
              "training_writers": train, "held_out_writers": held, "mix": asdict(mix)}
    return x, y, record


# ---------------------------------------------------------------------------------------
# Measuring on held-out writers
# ---------------------------------------------------------------------------------------

def held_out_sets(path: str | Path | None = None, mix: WriterMix = WriterMix(), seed: int = 100,
                  pen: PenDigits | None = None):
    """Yield ``(set name, raw images, labels, writers)`` for the held-out writers' digits,
    rendered once on the canvas and once as a photo (no extra styles: as they wrote them).
    The seed differs from the training renderings'. ``pen``: the strokes, when already
    loaded (else read from ``path``)."""
    pen = pen if pen is not None else load(path)
    _, held = split_writers(pen.writers, mix)
    pen = pen.subset(np.isin(pen.writers, held))
    for k, style in enumerate(("canvas", "photo")):
        rng = np.random.default_rng((seed, k))
        yield (f"writers-{style}", [render(s, style, rng, mix) for s in pen.strokes],
               pen.labels, pen.writers)


def per_writer(correct: np.ndarray, writers: np.ndarray, worst_share: float = 0.1) -> dict:
    """Accuracy per writer and its summary: ``{"mean", "worst", "worst_writer",
    "worst_tenth", "writers": {id: acc}}``. ``correct``: ``(N,) bool``. ``worst_tenth`` is
    the mean over the worst ``worst_share`` of writers (at least one)."""
    ids = sorted(set(writers.tolist()))
    acc = {w: float(correct[writers == w].mean()) for w in ids}
    ranked = sorted(acc.values())
    k = max(1, int(round(worst_share * len(ranked))))
    worst_writer = min(acc, key=acc.get)
    return {"mean": float(correct.mean()), "worst": acc[worst_writer], "worst_writer": worst_writer,
            "worst_tenth": float(np.mean(ranked[:k])), "writers": acc}


def with_writers(data, path: str | Path | None = None, mix: WriterMix = WriterMix(),
                 log=lambda line: None):
    """``data`` (a :class:`~mnist_core.datasets.data.Dataset`) with the training writers'
    renderings as its extra training images; ``data`` unchanged, and a line to ``log``
    saying why, when the strokes are not found."""
    from dataclasses import replace

    try:
        x, y, record = training_set(path, mix)
    except WritersMissing as exc:
        log(f"training on {data.name} alone: {exc}")
        return data
    log(f"real writers: {record['images']} renderings of {len(record['training_writers'])} "
        f"writers ({len(record['held_out_writers'])} held out to measure)")
    return replace(data, x_extra=x, y_extra=y, extra_source=record)


def held_out_inputs(path: str | Path | None = None, mix: WriterMix = WriterMix()) -> dict:
    """:func:`held_out_sets` read by the app's preprocessing: ``{set name: (inputs (N, 28,
    28) float32 in [0, 1], found (N,) bool, labels (N,), writers (N,))}``; an input where no
    digit is found is zeros with ``found`` False (it counts as wrong)."""
    pen = load(path)
    cached = _cache_path(f"held-{_cache_key(pen, mix)}", None)
    if cached.is_file():
        try:
            with np.load(cached, allow_pickle=False) as f:
                return {name: (f[f"{name}/x"].astype(np.float32) / 255, f[f"{name}/found"],
                               f[f"{name}/labels"], f[f"{name}/writers"])
                        for name in f["names"].tolist()}
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache is rebuilt below
    out, arrays = {}, {}
    for name, images, labels, ids in held_out_sets(path, mix, pen=pen):
        style = name.split("-")[1]
        finals = [model_input(img, style) for img in images]
        found = np.array([f is not None for f in finals])
        x = np.stack([f if f is not None else np.zeros((28, 28), np.uint8) for f in finals])
        out[name] = (x.astype(np.float32) / 255, found, labels, ids)
        arrays.update({f"{name}/x": x, f"{name}/found": found, f"{name}/labels": labels,
                       f"{name}/writers": ids})
    _save_cache(cached, names=np.array(list(out)), **arrays)
    return out


def score(models: dict, inputs: dict) -> dict:
    """Accuracy of each model on each set of :func:`held_out_inputs`, read as the app reads
    a digit (each model's views): ``{set: {model: per_writer(...)}}``."""
    from ..models.views import predict_views

    results = {}
    for name, (x, found, labels, ids) in inputs.items():
        probs = predict_views(models, x)
        results[name] = {m: per_writer((p.argmax(1) == labels) & found, ids) for m, p in probs.items()}
    return results
