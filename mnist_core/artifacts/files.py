"""Save and load the trained models with their history, metrics and a hashed manifest.

Layout of ``artifacts/``::

    manifest.json          SHA-256 of every file, versions, data source, seeds, command
    <model>.npz|.keras     weights (Keras files hold no optimizer state)
    <model>.history.json   per-epoch train/val loss and accuracy, seconds
    <model>.metrics.json   test accuracy, loss, confusion matrix, per-class scores, timings
    gallery.npz            a few hundred test digits with every model's answer

Loading checks every file against the manifest, and each history and metrics file against
the shape the app reads (:data:`METRICS_FIELDS`, :data:`EPOCH_FIELDS`), so a missing, damaged
or malformed artifact raises :class:`ArtifactError` naming the file and the command that
rebuilds it. Files are named by their folder's name (``artifacts/numpy.npz``), never by
where the server keeps them: the message is shown to users.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..models.architectures import from_manifest, mismatch
from ..models.model import Model
from ..datasets.data import DATASET_INFO, canonical
from .registry import REGISTRY, registry_for

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "artifacts"
MANIFEST = "manifest.json"
# Where each dataset's models are shipped: MNIST's in artifacts/, every other dataset's in
# a folder of its own inside it, named as the app's address names it (artifacts/fashion/).
DATASET_DIRS: dict[str, Path] = {name: DEFAULT_DIR if name == "mnist" else
                                 DEFAULT_DIR / info.short for name, info in DATASET_INFO.items()}


def default_dir(dataset: str = "mnist") -> Path:
    """The shipped artifacts folder of ``dataset`` (any name
    :func:`~mnist_core.datasets.data.canonical` knows)."""
    return DATASET_DIRS[canonical(dataset)]


class ArtifactError(RuntimeError):
    """An artifact is missing, damaged or unreadable; the message says how to rebuild it."""


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def rebuild_hint(name: str | None = None, dataset: str | None = None) -> str:
    models = f" --models {name}" if name and name in REGISTRY else ""
    if dataset and canonical(dataset) != "mnist":
        short = DATASET_INFO[canonical(dataset)].short
        return f"rebuild with `python -m mnist_core train --dataset {short}{models}`"
    return f"rebuild with `python -m mnist_core train{models} --data PATH_TO_MNIST`"


def shown(path: str | Path) -> str:
    """``path`` as errors name it: its folder's name and its own (``artifacts/numpy.npz``)."""
    path = Path(path).absolute()
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def _scrubbed(text: str, directory: str | Path) -> str:
    """``text`` (a library's error) with ``directory``'s full path cut to its name."""
    name = Path(directory).absolute().name
    for full in {str(Path(directory).resolve()), str(Path(directory).absolute())}:
        text = text.replace(full, name)
    return text


def _dataset_of(directory: str | Path) -> str:
    """The dataset whose models a folder is meant for, by its name (``fashion`` for
    clothing, anything else digits), for messages about a folder without a manifest."""
    by_folder = {d.name: name for name, d in DATASET_DIRS.items() if name != "mnist"}
    return by_folder.get(Path(directory).name, "mnist")


def read_manifest(directory: str | Path = DEFAULT_DIR) -> dict:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{shown(path)} is missing; "
                            f"{rebuild_hint(dataset=_dataset_of(directory))}")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{shown(path)} is damaged ({_scrubbed(str(exc), directory)}); "
                            f"{rebuild_hint()}") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise ArtifactError(f"{shown(path)} has no 'files' table; {rebuild_hint()}")
    return manifest


def manifest_stamp(directory: str | Path) -> int:
    """Changes whenever ``directory``'s manifest is rewritten (0 when there is none): the
    key under which whatever was read from that folder is kept."""
    try:
        return (Path(directory) / MANIFEST).stat().st_mtime_ns
    except OSError:
        return 0


def manifest_or_empty(directory: str | Path) -> dict:
    """``directory``'s manifest as written, unchecked; ``{}`` when missing or unreadable."""
    try:
        manifest = json.loads((Path(directory) / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def verified_path(directory: str | Path, filename: str, manifest: dict | None = None,
                  model: str | None = None) -> Path:
    """Path of an artifact file after checking its SHA-256 against the manifest."""
    directory = Path(directory)
    manifest = manifest if manifest is not None else read_manifest(directory)
    path = directory / filename
    expected = manifest["files"].get(filename)
    if expected is None:
        raise ArtifactError(f"{shown(path)} is not listed in {MANIFEST}; {rebuild_hint(model)}")
    if not path.is_file():
        raise ArtifactError(f"{shown(path)} is missing; {rebuild_hint(model)}")
    if sha256(path) != expected:
        raise ArtifactError(f"{shown(path)} is damaged (its SHA-256 does not match {MANIFEST}); "
                            f"{rebuild_hint(model)}")
    return path


def read_json(directory: str | Path, filename: str, manifest: dict | None = None,
              model: str | None = None, fields: Callable[[Any], str | None] | None = None) -> Any:
    """``filename``'s JSON after checking its hash; with ``fields`` (a check returning the
    first problem, or None), also its shape."""
    path = verified_path(directory, filename, manifest, model)
    try:
        payload = json.loads(path.read_text())
    except ValueError as exc:
        raise ArtifactError(f"{shown(path)} is not valid JSON ({exc}); "
                            f"{rebuild_hint(model)}") from exc
    problem = fields(payload) if fields is not None else None
    if problem:
        raise ArtifactError(f"{shown(path)} is not what the app reads: {problem}; "
                            f"{rebuild_hint(model)}")
    return payload


# ---------------------------------------------------------------------------------------
# The shape of history and metrics: what the pages, the CLI and the bench read
# ---------------------------------------------------------------------------------------

Field = tuple[Callable[[Any], bool], str]   # (check, what the value should be, in words)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _per_class(v: Any) -> bool:
    return isinstance(v, list) and len(v) == 10 and all(_number(x) for x in v)


def _confusion(v: Any) -> bool:
    return (isinstance(v, list) and len(v) == 10
            and all(isinstance(r, list) and len(r) == 10 and all(_count(x) for x in r) for r in v))


NUMBER: Field = (_number, "a number")
COUNT: Field = (_count, "a count")
SCORES: Field = (_per_class, "10 numbers")
# <model>.metrics.json: required fields, then fields that may be absent or null.
METRICS_FIELDS: dict[str, Field] = {
    "n": COUNT, "accuracy": (lambda v: _number(v) and 0 <= v <= 1, "a number from 0 to 1"),
    "loss": NUMBER, "confusion": (_confusion, "10 rows of 10 counts"),
    "precision": SCORES, "recall": SCORES, "f1": SCORES}
METRICS_OPTIONAL: dict[str, Field] = {
    "params": COUNT, "file_bytes": COUNT, "train_seconds": NUMBER, "latency_single_ms": NUMBER,
    "latency_10k_ms": NUMBER, "latency_single_predict_ms": NUMBER}
# One row of <model>.history.json's "epochs"; likewise.
EPOCH_FIELDS: dict[str, Field] = {
    "epoch": COUNT, "loss": NUMBER, "accuracy": NUMBER, "val_loss": NUMBER,
    "val_accuracy": NUMBER, "seconds": NUMBER}
EPOCH_OPTIONAL: dict[str, Field] = {"lr": NUMBER}


def _brief(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return "an object" if isinstance(value, dict) else "a list"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _record_problem(record: Any, required: dict[str, Field],
                    optional: dict[str, Field] | None = None) -> str | None:
    """The first way ``record`` is not a JSON object with ``required`` fields (and
    ``optional`` ones absent, null or right), in words; None when it is."""
    if not isinstance(record, dict):
        return f"should be an object, not {_brief(record)}"
    optional = optional or {}
    for key, (check, what) in {**required, **optional}.items():
        if key not in record or (record[key] is None and key in optional):
            if key in required:
                return f"{key!r} is missing"
        elif not check(record[key]):
            return f"{key!r} should be {what}, not {_brief(record[key])}"
    return None


def _unit(v: Any) -> bool:
    return _number(v) and 0 <= v <= 1


def _unit_or_none(v: Any) -> bool:
    return v is None or _unit(v)


def _bins_problem(bins: Any, n: int) -> str | None:
    """What is wrong with a reliability diagram's ``n`` bins (mnist_core.insight.calibration)."""
    problem = _record_problem(bins, {k: (lambda v: isinstance(v, list), "a list")
                                     for k in ("lower", "upper", "count", "confidence",
                                               "accuracy")})
    if problem:
        return problem
    checks = {"lower": _unit, "upper": _unit, "count": _count, "confidence": _unit_or_none,
              "accuracy": _unit_or_none}
    for key, check in checks.items():
        if len(bins[key]) != n or not all(check(v) for v in bins[key]):
            return f"{key!r} should be {n} bin values"
    return None


# The "calibration" record of <model>.metrics.json (mnist_core.insight.calibration.calibration_record).
CALIBRATION_FIELDS: dict[str, Field] = {
    "temperature": (lambda v: _number(v) and 0 < v < float("inf"), "a positive number"),
    "n_bins": (lambda v: _count(v) and v > 0, "a positive count"),
    "val": (lambda v: isinstance(v, dict), "an object"),
    "sets": (lambda v: isinstance(v, dict), "an object")}
CALIBRATION_SET_FIELDS: dict[str, Field] = {
    "n": COUNT, "ece_before": (_unit, "a number from 0 to 1"),
    "ece_after": (_unit, "a number from 0 to 1"), "before": (lambda v: True, ""),
    "after": (lambda v: True, "")}


def calibration_problem(record: Any) -> str | None:
    """What is wrong with a metrics file's ``"calibration"`` record, or None."""
    problem = _record_problem(record, CALIBRATION_FIELDS)
    if problem:
        return problem
    for name, curves in record["sets"].items():
        problem = _record_problem(curves, CALIBRATION_SET_FIELDS)
        for side in ("before", "after"):
            if problem is None:
                inner = _bins_problem(curves[side], record["n_bins"])
                problem = f"{side!r}: {inner}" if inner else None
        if problem:
            return f"sets[{name!r}]: {problem}"
    return None


def metrics_problem(metrics: Any) -> str | None:
    """What is wrong with a ``<model>.metrics.json`` payload, or None."""
    problem = _record_problem(metrics, METRICS_FIELDS, METRICS_OPTIONAL)
    if problem is None and metrics.get("calibration") is not None:
        inner = calibration_problem(metrics["calibration"])
        problem = f"'calibration': {inner}" if inner else None
    return problem


def history_problem(history: Any) -> str | None:
    """What is wrong with a ``<model>.history.json`` payload, or None."""
    problem = _record_problem(history, {"epochs": (lambda v: isinstance(v, list), "a list")})
    if problem:
        return problem
    for i, row in enumerate(history["epochs"]):
        problem = _record_problem(row, EPOCH_FIELDS, EPOCH_OPTIONAL)
        if problem:
            return f"epochs[{i}]{':' if isinstance(row, dict) else ''} {problem}"
    return None


# ---------------------------------------------------------------------------------------
# Loaded models
# ---------------------------------------------------------------------------------------

def load_model(name: str, directory: str | Path = DEFAULT_DIR, manifest: dict | None = None
               ) -> Model:
    """Load one registry model from ``directory``, verifying every file it reads.

    Its architecture is the one the manifest records (the registry's for a manifest from
    before they were recorded); predicting never imports TensorFlow
    (:class:`~mnist_core.models.model.Model`).
    """
    if name not in REGISTRY:
        raise ArtifactError(f"unknown model {name!r}; known: {', '.join(REGISTRY)}")
    manifest = manifest if manifest is not None else read_manifest(directory)
    # The manifest says which dataset the folder's models learned, hence their specs.
    spec = _registry(manifest, directory)[name]
    path = verified_path(directory, spec.filename, manifest, name)
    try:
        arch = from_manifest(manifest.get("models", {}).get(name, {}).get("arch"))
        model = spec.backend.load(path, spec, arch=arch)
    except Exception as exc:  # corrupt archives raise many types
        raise ArtifactError(f"{shown(path)} could not be loaded ({type(exc).__name__}: "
                            f"{_scrubbed(str(exc), directory)}); {rebuild_hint(name)}") from exc
    # The file must hold the architecture the manifest records (a manifest from before
    # they were recorded has none to compare): a swapped file is refused, re-hashed or not.
    problem = mismatch(arch, model.network) if arch is not None else None
    if problem:
        raise ArtifactError(f"{shown(path)} is not the architecture {MANIFEST} records for "
                            f"{name}: {problem}; {rebuild_hint(name)}")
    model.metrics = read_json(directory, f"{name}.metrics.json", manifest, name, metrics_problem)
    # The temperature fitted by `python -m mnist_core calibrate` (or training): the app's
    # probabilities are the calibrated ones.
    model.temperature = float((model.metrics.get("calibration") or {}).get("temperature", 1.0))
    model.history = read_json(directory, f"{name}.history.json", manifest, name,
                              history_problem)["epochs"]
    return model


def _registry(manifest: dict, directory: str | Path) -> dict:
    """The registry of the dataset ``manifest`` records (MNIST's when it names none)."""
    try:
        return registry_for(manifest.get("dataset"))
    except ValueError as exc:
        raise ArtifactError(f"{shown(Path(directory) / MANIFEST)}: {exc}") from exc


def load_models(directory: str | Path = DEFAULT_DIR, names: list[str] | tuple[str, ...] | None = None
                ) -> dict[str, Model]:
    """Every model listed in the manifest (or ``names``), in registry order."""
    manifest = read_manifest(directory)
    available = [n for n in REGISTRY if n in manifest.get("models", {})]
    wanted = list(names) if names else available
    for n in wanted:
        if n not in manifest.get("models", {}):
            raise ArtifactError(f"model {n!r} is not in {shown(Path(directory) / MANIFEST)}; "
                                f"{rebuild_hint(n)}")
    return {n: load_model(n, directory, manifest) for n in wanted}


@dataclass
class Gallery:
    """Shipped test digits. ``images``: ``(K, 28, 28) uint8``; ``labels``/``index``: ``(K,)``;
    ``preds``: model name -> ``(K,)`` uint8 predicted labels; ``sample``: ``(K,)`` bool, True
    for the random sample (False for digits kept because some model got them wrong)."""

    images: np.ndarray
    labels: np.ndarray
    index: np.ndarray
    sample: np.ndarray
    preds: dict[str, np.ndarray]


def load_gallery(directory: str | Path = DEFAULT_DIR, manifest: dict | None = None) -> Gallery:
    path = verified_path(directory, "gallery.npz", manifest)
    try:
        with np.load(path, allow_pickle=False) as f:
            preds = {k[len("pred_"):]: f[k] for k in f.files if k.startswith("pred_")}
            return Gallery(f["images"], f["labels"], f["index"], f["sample"], preds)
    except (OSError, ValueError, KeyError) as exc:
        raise ArtifactError(f"{shown(path)} could not be read ({_scrubbed(str(exc), directory)}); "
                            f"{rebuild_hint()}") from exc


# ---------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------

def save_model(model, name: str, directory: str | Path) -> Path:
    """Write a trained model's weights file (a :class:`~mnist_core.models.model.Model` or its bare
    network); Keras models are saved without optimizer state."""
    spec = REGISTRY[name]
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if not isinstance(model, Model):
        model = spec.backend.from_net(model, spec)
    return model.save(directory / spec.filename)


def write_json(directory: str | Path, filename: str, payload: dict) -> Path:
    path = Path(directory) / filename
    path.write_text(json.dumps(payload, indent=1, sort_keys=False) + "\n")
    return path


def library_versions() -> dict:
    import importlib.metadata as md
    out = {"python": platform.python_version()}
    for pkg in ("numpy", "tensorflow-cpu", "tensorflow", "keras", "opencv-python-headless",
                "pillow"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def write_manifest(directory: str | Path, info: dict) -> Path:
    """Hash every artifact file in ``directory`` and write ``manifest.json`` with ``info``.

    ``info`` holds at least ``models`` (name -> details); data source, seeds and the
    training command are recorded from it as given.
    """
    directory = Path(directory)
    files = {p.name: sha256(p) for p in sorted(directory.iterdir())
             if p.is_file() and p.name != MANIFEST and not p.name.startswith(".")}
    payload = {**info, "versions": library_versions(), "files": files}
    return write_json(directory, MANIFEST, payload)
