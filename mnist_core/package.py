"""Train, evaluate and package registry models: what ``python -m mnist_core train`` and the
app's Train live page share.

:func:`train_and_package` trains each requested model, evaluates it once on the test set
(the probabilities serve both its metrics and the gallery) and, given an output folder,
writes its weights, history and metrics, then the gallery and the manifest, each once.
Without a folder it only trains and evaluates: the models stay in memory. The same training
in a worker process, away from the app's server, is :mod:`mnist_core.worker`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from .models.architectures import Architecture, to_manifest
from .artifacts.files import load_models, manifest_or_empty, write_json, write_manifest
from .datasets.data import Dataset, to_float
from .insight.evaluate import evaluate_model
from .models.model import Model
from .artifacts.registry import ModelSpec, registry_for
from .training.config import Callback, EpochLog, StopFlag, TrainConfig
from .training.train import fit

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
                      engine: str = "tensorflow",
                      last_epoch_out: str | Path | None = None) -> dict[str, Trained]:
    """Train registry models ``names`` on ``data`` and evaluate each once on its test set.

    ``train_cfg``: a :class:`TrainConfig` for every model, or a function of the
    :class:`ModelSpec` giving one (default: each spec's ``train``); ``epochs`` overrides
    its epoch count. ``arch``: the architecture to build, likewise (default: each spec's
    ``arch``; ``lambda spec: spec.live_arch`` for short runs). ``callback_for(name, cfg)`` gives each model's progress
    callback, which hears the training loop's ``"batch"`` and ``"epoch"`` events, then
    ``"evaluate"`` (``{"model": Model}``) before the test set is scored. ``stop`` ends the
    training in progress after a batch and trains no further model. ``log`` receives one
    line per stage (the CLI prints them). ``engine``: what trains the Keras architectures
    (:func:`mnist_core.training.train.fit`): ``"tensorflow"`` (the CLI) or
    ``"numpy"`` (the app's worker: no TensorFlow).

    With ``out``, writes each model's weights, ``.history.json`` and ``.metrics.json`` as
    it finishes, then ``gallery.npz`` and ``manifest.json`` (``command`` recorded in it)
    once each; before them, each new model's temperature is fitted and its calibration
    record written (:func:`calibrate_trained`; ``handwriting``: the dev-set folder for its
    real-handwriting curves, None for MNIST's only). Models already in ``out``'s manifest
    (same dataset) and not trained now keep their entries, and are loaded and predicted once for the gallery, before any
    training, so a damaged folder fails at once. ``last_epoch_out``: a folder where each
    model whose weights were averaged (``TrainConfig.average_epochs``) is also written as
    its last epoch left it, with a manifest of those, to compare the two (never shipped).
    Returns ``{name: Trained}``.
    """
    names, log = list(names), log or (lambda line: None)
    registry = registry_for(data.name)
    out = Path(out) if out is not None else None
    info: dict = {}
    preds: dict[str, np.ndarray] = {}
    test_probs: dict[str, np.ndarray] = {}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        info, preds = _kept_models(out, data, names)
    trained: dict[str, Trained] = {}
    last_epoch: dict[str, Model] = {}
    if last_epoch_out is not None:
        Path(last_epoch_out).mkdir(parents=True, exist_ok=True)
    for name in names:
        if stop is not None and stop.is_set():
            break
        spec = registry[name]
        cfg = _per_model(train_cfg, spec, spec.train)
        cfg = replace(cfg, epochs=epochs) if epochs is not None else cfg
        model_arch = _per_model(arch, spec, spec.arch)
        log(f"== {name}: {spec.title}, {cfg.epochs} epochs")
        callback = callback_for(name, cfg) if callback_for is not None else None
        result = fit(data, cfg, model_arch, callback, stop, engine=engine)
        model = spec.backend.from_net(result.model, spec, arch=model_arch,
                                      history=[asdict(e) for e in result.history])
        if out is not None:
            _write_trained(out, spec, model, result)
        if last_epoch_out is not None and result.unaveraged is not None:
            last_epoch[name] = spec.backend.from_net(result.unaveraged, spec, arch=model_arch,
                                                     history=model.history)
            _write_trained(Path(last_epoch_out), spec, last_epoch[name], result)
            score_and_write(last_epoch[name], data, result.seconds, Path(last_epoch_out),
                            lambda line: log(f"{line} (last epoch)"))
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
        write_gallery(out, data, {n: preds[n] for n in registry if n in preds})
        write_manifest(out, {"dataset": data.name, "class_names": list(data.class_names),
                             "data_source": data.source, "command": command, "models": info,
                             # Real writers mixed into training (train_config.writers_share
                             # says how much per model), with the source's credit.
                             "extra_training_data": data.extra_source})
    if last_epoch:
        write_manifest(Path(last_epoch_out), {
            "dataset": data.name, "class_names": list(data.class_names),
            "data_source": data.source, "command": command,
            "models": {n: {**info[n], "train_config": {**info[n]["train_config"],
                                                       "average_epochs": 0}}
                       for n in last_epoch}})
    return trained


def _write_trained(out: Path, spec: ModelSpec, model: Model, result) -> None:
    """``model``'s weights file and ``.history.json`` (with ``result``'s timings) in ``out``."""
    model.save(out / spec.filename)
    write_json(out, f"{model.name}.history.json", {
        "model": model.name, "epochs": model.history, "train_seconds": result.seconds,
        "train_cpu_seconds": result.cpu_seconds})


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
    kept = [n for n in registry_for(data.name) if n in info and n not in names]
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
