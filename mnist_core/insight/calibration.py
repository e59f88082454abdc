"""Honest confidence: reliability diagrams, expected calibration error, temperature scaling.

A model that says "90% sure" should be right about 90% of the time it says so. The
reliability diagram bins predictions by confidence (the top probability) and plots each
bin's accuracy against its mean confidence; the expected calibration error (ECE) is the
gap between the two, averaged over bins weighted by how many predictions fall in each.

Temperature scaling (Guo et al., 2017) divides a network's logits by one number ``T`` fitted
on held-out data by minimising the negative log-likelihood: ``T > 1`` softens an
overconfident model, ``T < 1`` sharpens an underconfident one (label smoothing, which the
shipped models train with, makes them underconfident). The answer (argmax) never changes.
``T`` is fitted on the validation split the model was trained beside (the same images
:func:`mnist_core.training.feed.prepare` holds out, never the test set) and stored in
``<name>.metrics.json`` under ``"calibration"``, with the reliability curves before and
after on MNIST's test set and on real handwriting, so the app draws them without work;
:class:`~mnist_core.models.model.Model` applies ``T`` in ``predict_proba``
(:func:`~mnist_core.models.model.temper`).

MNIST test digits are scored on one view, as the test metrics are; real handwriting as the
app reads it: preprocessed, then each model's probabilities (tempered) averaged over its
test-time views (:mod:`mnist_core.models.views`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..datasets.data import Dataset, split_validation, to_float
from ..models.model import Model, temper
from ..models.views import views

Log = Callable[[str], None]


@dataclass(frozen=True)
class CalibrationConfig:
    n_bins: int = 15                 # equal-width confidence bins over [0, 1] (Guo et al.'s 15)
    t_min: float = 0.05              # temperature search range: far beyond any sane model's
    t_max: float = 20.0
    tolerance: float = 1e-4          # golden-section search stops at this width in log T
    max_iter: int = 200              # ...or after this many steps
    digits: int = 6                  # decimals kept in the JSON record (bin values, ECE)


DEFAULT = CalibrationConfig()
MNIST_TEST, HANDWRITING = "mnist-test", "handwriting-dev"   # names of the measured sets
# The golden ratio's conjugate: each step of the search keeps this fraction of the range.
_GOLDEN = (math.sqrt(5) - 1) / 2


# ---------------------------------------------------------------------------------------
# Measures
# ---------------------------------------------------------------------------------------

def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of ``labels`` (``(N,)`` ints) under ``probs``
    (``(N, 10)`` rows summing to 1)."""
    p = np.asarray(probs, np.float64)[np.arange(len(labels)), np.asarray(labels, np.int64)]
    return float(-np.log(np.maximum(p, np.finfo(np.float64).tiny)).mean())


def reliability(probs: np.ndarray, labels: np.ndarray, n_bins: int = DEFAULT.n_bins) -> dict:
    """The reliability diagram of ``probs`` (``(N, 10)``) against ``labels`` (``(N,)``).

    Returns ``{"ece", "accuracy", "n", "bins": {"lower", "upper", "count", "confidence",
    "accuracy"}}``: per equal-width confidence bin ``[lower, upper)`` (the last includes 1),
    how many predictions fell in it and their mean confidence and accuracy (``None`` for an
    empty bin). ``ece``: sum over bins of ``count / n * |accuracy - confidence|``, in [0, 1].
    """
    probs = np.asarray(probs, np.float64)
    labels = np.asarray(labels, np.int64)
    conf, right = probs.max(1), probs.argmax(1) == labels
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    conf_sum = np.bincount(which, conf, minlength=n_bins)
    right_sum = np.bincount(which, right.astype(np.float64), minlength=n_bins)
    safe = np.maximum(count, 1)
    ece = float(np.abs(right_sum - conf_sum).sum() / max(len(labels), 1))
    return {"ece": ece, "accuracy": float(right.mean()) if len(right) else 0.0,
            "n": int(len(labels)),
            "bins": {"lower": edges[:-1].tolist(), "upper": edges[1:].tolist(),
                     "count": count.tolist(),
                     "confidence": [float(c) if n else None for c, n in zip(conf_sum / safe, count)],
                     "accuracy": [float(a) if n else None for a, n in zip(right_sum / safe, count)]}}


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray,
                               n_bins: int = DEFAULT.n_bins) -> float:
    """ECE of ``probs`` (``(N, 10)``) against ``labels`` (``(N,)``): see :func:`reliability`."""
    return reliability(probs, labels, n_bins)["ece"]


def fit_temperature(probs: np.ndarray, labels: np.ndarray, *, t_min: float = DEFAULT.t_min,
                    t_max: float = DEFAULT.t_max, tolerance: float = DEFAULT.tolerance,
                    max_iter: int = DEFAULT.max_iter) -> float:
    """The ``T`` in ``[t_min, t_max]`` minimising :func:`nll` of ``temper(probs, T)``.

    ``probs``: ``(N, 10)`` softmax outputs at ``T = 1``; ``labels``: ``(N,)``. The NLL of
    temperature scaling is convex in ``1/T``, so a golden-section search over ``log T``
    (one dimension, bounded) finds its minimum; no SciPy needed.
    """
    logp = np.log(np.maximum(np.asarray(probs, np.float64), np.finfo(np.float64).tiny))
    labels = np.asarray(labels, np.int64)
    rows = np.arange(len(labels))

    def loss(log_t: float) -> float:
        z = logp / math.exp(log_t)
        z -= z.max(1, keepdims=True)
        return float((np.log(np.exp(z).sum(1)) - z[rows, labels]).mean())

    lo, hi = math.log(t_min), math.log(t_max)
    a, b = hi - _GOLDEN * (hi - lo), lo + _GOLDEN * (hi - lo)
    fa, fb = loss(a), loss(b)
    for _ in range(max_iter):
        if hi - lo < tolerance:
            break
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - _GOLDEN * (hi - lo)
            fa = loss(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + _GOLDEN * (hi - lo)
            fb = loss(b)
    return float(math.exp((lo + hi) / 2))


# ---------------------------------------------------------------------------------------
# A model's probabilities, untempered
# ---------------------------------------------------------------------------------------

def untempered(model: Model) -> Model:
    """A shallow copy of ``model`` whose ``predict_proba`` gives the network's own softmax
    (temperature 1), whatever temperature ``model`` carries; ``model`` is left alone."""
    raw = copy.copy(model)
    raw.temperature = 1.0
    return raw


@dataclass
class ViewProbs:
    """Each view's untempered probabilities for a batch of inputs, to average tempered.

    ``probs``: ``(V_total, 10) float32``; ``owner``: ``(V_total,)`` index of the input each
    view came from; ``n``: how many inputs."""

    probs: np.ndarray
    owner: np.ndarray
    n: int

    def averaged(self, temperature: float = 1.0) -> np.ndarray:
        """``(n, 10) float32``: each input's tempered probabilities averaged over its views,
        as :func:`~mnist_core.models.views.predict_views` averages them."""
        p = temper(self.probs, temperature).astype(np.float64)
        total = np.zeros((self.n, p.shape[1]))
        np.add.at(total, self.owner, p)
        return (total / np.bincount(self.owner, minlength=self.n)[:, None]).astype(np.float32)


def view_probs(model: Model, x: np.ndarray) -> ViewProbs:
    """``model``'s untempered probabilities for every test-time view of each ``(N, 28, 28)
    float32 in [0, 1]`` input (the model's own :attr:`~mnist_core.models.model.Model.views`)."""
    stacks = [views(img, model.views) for img in np.asarray(x, np.float32)]
    owner = np.repeat(np.arange(len(stacks)), [len(s) for s in stacks])
    probs = untempered(model).predict_proba(np.concatenate(stacks))
    return ViewProbs(np.asarray(probs, np.float32), owner, len(stacks))


# ---------------------------------------------------------------------------------------
# Real handwriting, as the app reads it
# ---------------------------------------------------------------------------------------

@dataclass
class Handwriting:
    """The development set's renderings preprocessed: ``x`` ``(N, 28, 28) float32 in
    [0, 1]`` model inputs, ``labels`` ``(N,) int64``, ``sets`` each input's set name,
    ``skipped`` how many renderings had no digit to read (per set)."""

    x: np.ndarray
    labels: np.ndarray
    sets: np.ndarray
    skipped: dict[str, int]


def handwriting_inputs(directory: str | Path | None = None, log: Log | None = None
                       ) -> Handwriting:
    """Every rendering of :func:`mnist_core.datasets.handwriting.dev_sets` preprocessed as the app
    preprocesses it (canvas drawings by their alpha). Takes about a minute on 2 cores."""
    from ..datasets.handwriting import DEFAULT_DIR, dev_sets
    from ..preprocess import NoDigitError, preprocess

    xs, ys, names, skipped = [], [], [], {}
    for name, images, labels in dev_sets(directory or DEFAULT_DIR):
        skipped[name] = 0
        for image, label in zip(images, labels):
            try:
                xs.append(preprocess(image, canvas=name.endswith("canvas")).final)
            except NoDigitError:
                skipped[name] += 1
                continue
            ys.append(int(label))
            names.append(name)
        if log is not None:
            log(f"== handwriting: {name}, {len(images) - skipped[name]} digits read")
    return Handwriting(np.stack(xs).astype(np.float32), np.array(ys, np.int64),
                       np.array(names), skipped)


# ---------------------------------------------------------------------------------------
# The record in <name>.metrics.json
# ---------------------------------------------------------------------------------------

def validation_split(data: Dataset, n_val: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The validation images a model trained with ``n_val``/``seed`` held out, exactly as
    :func:`mnist_core.training.feed.prepare` carves them: ``(n, 28, 28) float32``, ``(n,) int64``."""
    n_val = max(1, min(n_val, len(data.x_train) // 5))
    split = split_validation(data.x_train, data.y_train, n_val, seed)
    return to_float(split.x_val), split.y_val.astype(np.int64)


def _rounded(value, digits: int):
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, list):
        return [_rounded(v, digits) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v, digits) for k, v in value.items()}
    return value


def _curves(before: np.ndarray, after: np.ndarray, labels: np.ndarray,
            cfg: CalibrationConfig) -> dict:
    b, a = reliability(before, labels, cfg.n_bins), reliability(after, labels, cfg.n_bins)
    return {"n": b["n"], "accuracy": b["accuracy"], "ece_before": b["ece"],
            "ece_after": a["ece"], "before": b["bins"], "after": a["bins"]}


def validation_record(model: Model, data: Dataset, n_val: int, seed: int,
                      cfg: CalibrationConfig = DEFAULT) -> dict:
    """Fit ``model``'s temperature on its validation split (the images
    :func:`validation_split` gives for ``n_val``/``seed``, which the training's history
    rows were scored on) and measure it there; ``model`` is not changed.

    Returns a ``"calibration"`` record without reliability curves (``sets`` empty):
    ``temperature``, ``n_bins``, ``fit_on``, ``val`` (``n``, NLL and ECE before and
    after). What the app's worker fits for a model trained live
    (:func:`mnist_core.worker.train_in_worker`); :func:`calibration_record` adds the
    curves the shipped models' records hold. Values rounded to ``cfg.digits`` decimals."""
    return _rounded(_validation_fit(model, data, n_val, seed, cfg), cfg.digits)


def _validation_fit(model: Model, data: Dataset, n_val: int, seed: int,
                    cfg: CalibrationConfig) -> dict:
    raw = untempered(model)
    x_val, y_val = validation_split(data, n_val, seed)
    p_val = raw.predict_proba(x_val)
    t = fit_temperature(p_val, y_val, t_min=cfg.t_min, t_max=cfg.t_max,
                        tolerance=cfg.tolerance, max_iter=cfg.max_iter)
    tempered_val = temper(p_val, t)
    return {
        "temperature": t, "n_bins": cfg.n_bins,
        "fit_on": f"validation split ({len(y_val)} training images, seed {seed})",
        "val": {"n": int(len(y_val)), "nll_before": nll(p_val, y_val),
                "nll_after": nll(tempered_val, y_val),
                "ece_before": expected_calibration_error(p_val, y_val, cfg.n_bins),
                "ece_after": expected_calibration_error(tempered_val, y_val, cfg.n_bins)},
        "sets": {}}


def calibration_record(model: Model, data: Dataset, n_val: int, seed: int,
                       handwriting: Handwriting | None = None,
                       cfg: CalibrationConfig = DEFAULT,
                       test_probs: np.ndarray | None = None) -> dict:
    """Fit ``model``'s temperature on its validation split and measure it.

    Returns the ``"calibration"`` record of ``<name>.metrics.json``: ``temperature``,
    ``n_bins``, ``val`` (``n``, NLL and ECE before and after), and ``sets``: for MNIST's
    test set and (given ``handwriting``) the real handwriting, ``n``, ``accuracy``,
    ``ece_before``/``ece_after`` and the reliability bins before and after
    (:func:`reliability`). ``model`` is not changed. ``test_probs``: the untempered
    ``(N, 10)`` probabilities of MNIST's test set when the caller has them already (training
    has just scored it), so it is not predicted twice.
    """
    raw = untempered(model)
    record = _validation_fit(model, data, n_val, seed, cfg)
    t = record["temperature"]
    p_test = test_probs if test_probs is not None else raw.predict_proba(to_float(data.x_test))
    record["sets"][MNIST_TEST] = _curves(p_test, temper(p_test, t),
                                         data.y_test.astype(np.int64), cfg)
    if handwriting is not None and len(handwriting.labels):
        vp = view_probs(model, handwriting.x)
        record["sets"][HANDWRITING] = {
            **_curves(vp.averaged(1.0), vp.averaged(t), handwriting.labels, cfg),
            "sets": sorted(set(handwriting.sets.tolist()))}
    return _rounded(record, cfg.digits)


def calibrate(model: Model, data: Dataset, n_val: int, seed: int,
              handwriting: Handwriting | None = None, cfg: CalibrationConfig = DEFAULT,
              log: Log | None = None, test_probs: np.ndarray | None = None) -> dict:
    """:func:`calibration_record` for ``model``, put into ``model.metrics["calibration"]``
    and applied (``model.temperature``); returns the record."""
    record = calibration_record(model, data, n_val, seed, handwriting, cfg, test_probs)
    model.metrics = {**model.metrics, "calibration": record}
    model.temperature = record["temperature"]
    if log is not None:
        test = record["sets"][MNIST_TEST]
        log(f"== {model.name}: temperature {record['temperature']:.3f}, validation NLL "
            f"{record['val']['nll_before']:.4f} -> {record['val']['nll_after']:.4f}, "
            f"test ECE {test['ece_before']:.4f} -> {test['ece_after']:.4f}")
    return record


def calibrate_models(models: Mapping[str, Model], data: Dataset,
                     splits: Mapping[str, tuple[int, int]], out: str | Path | None = None,
                     handwriting: Handwriting | None = None, cfg: CalibrationConfig = DEFAULT,
                     log: Log | None = None,
                     test_probs: Mapping[str, np.ndarray] | None = None) -> dict[str, dict]:
    """:func:`calibrate` every model (``splits``: name -> its ``(n_val, seed)``) and, given
    ``out``, rewrite each ``<name>.metrics.json`` there with its record. The caller writes
    the manifest afterwards (:func:`~mnist_core.artifacts.files.write_manifest`), so the hashes
    follow. ``test_probs``: name -> untempered test-set probabilities already computed.
    Returns name -> record."""
    from ..artifacts.files import write_json

    records = {}
    for name, model in models.items():
        n_val, seed = splits[name]
        records[name] = calibrate(model, data, n_val, seed, handwriting, cfg, log,
                                  (test_probs or {}).get(name))
        if out is not None:
            write_json(out, f"{name}.metrics.json", model.metrics)
    return records


def default_handwriting(directory: str | Path | None = None, log: Log | None = None
                        ) -> Handwriting | None:
    """:func:`handwriting_inputs` of ``directory`` (default: the shared dev set) when it is
    there, else None (the record then holds MNIST's curves only)."""
    from ..datasets.handwriting import DEFAULT_DIR

    where = Path(directory) if directory else DEFAULT_DIR
    if not (where / "chars74k_digits_strokes.jsonl").is_file():
        if log is not None:
            log(f"== handwriting: {where} not found, calibrating on MNIST only")
        return None
    return handwriting_inputs(where, log)
