"""Command line: ``python -m mnist_core {train,evaluate,predict,bench} ...``."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from .artifacts import (DEFAULT_DIR, MANIFEST, ArtifactError, load_models, save_model,
                        write_json, write_manifest)
from .data import DATASETS, DataError, load_dataset, to_float
from .registry import DEFAULT_MODELS, REGISTRY, train_model

GALLERY_SAMPLES = 200   # random test digits shipped for the "show me a test digit" button
GALLERY_ERRORS = 300    # at most this many digits some model got wrong


def _models_arg(text: str | None, default=DEFAULT_MODELS) -> list[str]:
    names = [n.strip() for n in text.split(",")] if text else list(default)
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise SystemExit(f"error: unknown model(s) {', '.join(unknown)}; known: "
                         f"{', '.join(REGISTRY)}")
    return names


def _existing_manifest(out: Path) -> dict:
    try:
        return json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}


# ---------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------

def cmd_train(args) -> int:
    from .train import ProgressBar

    names = _models_arg(args.models)
    data = load_dataset(args.data, args.dataset)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = _existing_manifest(out)
    models_info = manifest.get("models", {}) if manifest.get("dataset") in (None, data.name) else {}
    command = "python -m mnist_core " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    for name in names:
        spec = REGISTRY[name]
        epochs = args.epochs or spec.train.epochs
        print(f"== {name}: {spec.title}, {epochs} epochs", file=sys.stderr)
        result = train_model(
            name, data, callback=ProgressBar(name, epochs), epochs=args.epochs)
        save_model(result.model, name, out)
        write_json(out, f"{name}.history.json", {
            "model": name, "epochs": [vars(e) for e in result.history],
            "train_seconds": result.seconds})
        models_info[name] = {"title": spec.title, "file": spec.filename, "epochs": epochs,
                             "seed": spec.train.seed, "train_seconds": round(result.seconds, 1),
                             "train_config": _plain(spec.train), "arch": _plain(spec.arch),
                             # Models trained by earlier runs keep the command that made them.
                             "command": command}
        print(f"== {name}: trained in {result.seconds:.0f}s", file=sys.stderr)
        # Evaluate now so metrics (with training time) exist for every trained model.
        _write_metrics(out, name, data, result.seconds, _loaded_from_result(name, result.model))
    write_manifest(out, {"dataset": data.name, "class_names": list(data.class_names),
                         "data_source": data.source, "command": command, "models": models_info})
    _write_gallery(out, data, [n for n in REGISTRY if n in models_info])
    write_manifest(out, {"dataset": data.name, "class_names": list(data.class_names),
                         "data_source": data.source, "command": command, "models": models_info})
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _plain(obj):
    if obj is None:
        return None
    from dataclasses import asdict, is_dataclass
    return asdict(obj) if is_dataclass(obj) else obj


def _loaded_from_result(name: str, net):
    from .artifacts import LoadedModel
    spec = REGISTRY[name]
    if spec.kind == "numpy":
        predict = net.predict_proba
    else:
        from .keras_models import fast_predict_fn
        predict = fast_predict_fn(net)
    return LoadedModel(name, spec.title, spec.kind, net, predict, views=spec.views)


def _param_count(model) -> int:
    return model.count_params()


def _metrics(out: Path, name: str, data, model, train_seconds: float | None) -> dict:
    from .evaluate import keras_predict_fn, score, time_batch, time_single
    x_test = to_float(data.x_test)
    y_test = data.y_test.astype(np.int64)
    probs = model.predict_proba(x_test)
    metrics = {"model": name, "title": REGISTRY[name].title, "dataset": data.name,
               **score(probs, y_test), "params": _param_count(model),
               "file_bytes": (out / REGISTRY[name].filename).stat().st_size,
               "train_seconds": train_seconds,
               "latency_single_ms": time_single(model.predict_proba, x_test),
               "latency_10k_ms": time_batch(model.predict_proba, x_test[:10000])}
    if model.kind == "keras":
        metrics["latency_single_predict_ms"] = time_single(keras_predict_fn(model.net), x_test, 20)
    return metrics


def _write_metrics(out: Path, name: str, data, train_seconds, model) -> dict:
    metrics = _metrics(out, name, data, model, train_seconds)
    write_json(out, f"{name}.metrics.json", metrics)
    print(f"== {name}: test accuracy {metrics['accuracy']:.4%}, loss {metrics['loss']:.4f}",
          file=sys.stderr)
    return metrics


def _write_gallery(out: Path, data, names: list[str]) -> None:
    """Random test digits plus digits some model got wrong, with every model's answer."""
    write_manifest(out, {**_existing_manifest(out)})  # hash what exists so loading verifies
    models = load_models(out, names)
    x_test = to_float(data.x_test)
    preds = {n: m.predict_proba(x_test).argmax(1).astype(np.uint8) for n, m in models.items()}
    wrong = np.zeros(len(x_test), bool)
    for p in preds.values():
        wrong |= p != data.y_test
    rng = np.random.default_rng(0)
    sample = rng.choice(len(x_test), GALLERY_SAMPLES, replace=False)
    errors = np.flatnonzero(wrong)
    if len(errors) > GALLERY_ERRORS:  # keep the digits most models got wrong
        n_wrong = sum((p != data.y_test).astype(int) for p in preds.values())[errors]
        errors = errors[np.argsort(-n_wrong, kind="stable")[:GALLERY_ERRORS]]
    index = np.unique(np.concatenate([sample, errors]))
    np.savez_compressed(out / "gallery.npz", images=data.x_test[index], labels=data.y_test[index],
                        index=index.astype(np.int64), sample=np.isin(index, sample),
                        **{f"pred_{n}": p[index] for n, p in preds.items()})


# ---------------------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------------------

def cmd_evaluate(args) -> int:
    data = load_dataset(args.data, args.dataset)
    out = Path(args.artifacts)
    models = load_models(out, _models_arg(args.models, default=()) or None)
    results = {}
    for name, model in models.items():
        results[name] = _metrics(out, name, data, model, model.metrics.get("train_seconds"))
    if args.write:  # refresh metrics.json (training time kept) and re-hash the manifest
        for name, metrics in results.items():
            write_json(out, f"{name}.metrics.json", metrics)
        manifest = _existing_manifest(out)
        write_manifest(out, {k: v for k, v in manifest.items() if k not in ("files", "versions")})
    if args.json:
        print(json.dumps(results))
        return 0
    print(f"{'model':8} {'accuracy':>9} {'loss':>7} {'params':>9} {'MB':>6} {'train s':>8} "
          f"{'1 img ms':>9} {'10k ms':>8}")
    for name, m in results.items():
        train_s = f"{m['train_seconds']:.0f}" if m.get("train_seconds") else "-"
        print(f"{name:8} {m['accuracy']:9.4%} {m['loss']:7.4f} {m['params']:9,d} "
              f"{m['file_bytes'] / 2**20:6.2f} {train_s:>8} {m['latency_single_ms']:9.2f} "
              f"{m['latency_10k_ms']:8.0f}")
        print("   precision " + " ".join(f"{v:.3f}" for v in m["precision"]))
        print("   recall    " + " ".join(f"{v:.3f}" for v in m["recall"]))
        print("   f1        " + " ".join(f"{v:.3f}" for v in m["f1"]))
        print("   confusion (rows = true digit)")
        for row in m["confusion"]:
            print("     " + " ".join(f"{v:5d}" for v in row))
    return 0


# ---------------------------------------------------------------------------------------
# predict
# ---------------------------------------------------------------------------------------

def cmd_predict(args) -> int:
    from .inference import read_digit, read_digits
    from .preprocess import ImageReadError, NoDigitError, decode_image

    models = load_models(args.artifacts, _models_arg(args.models, default=()) or None)
    for path in args.images:
        line: dict = {"path": path}
        try:
            image = decode_image(Path(path).read_bytes())
            reading = read_digit(image, models)
            line["models"] = {n: {"digit": reading.digit(n),
                                  "probabilities": [round(float(p), 6) for p in reading.probs[n]]}
                              for n in models}
            parts = read_digits(image, models)
            if len(parts) > 1:
                line["sequence"] = {n: "".join(str(r.digit(n)) for r in parts) for n in models}
                line["digits"] = [{"box": list(r.stages.box),
                                   "models": {n: {"digit": r.digit(n),
                                                  "probabilities": [round(float(p), 6)
                                                                    for p in r.probs[n]]}
                                              for n in models}} for r in parts]
        except (OSError, ImageReadError, NoDigitError) as exc:
            line = {"path": path, "error": str(exc) or type(exc).__name__}
        if args.json:
            print(json.dumps(line), flush=True)
        elif "error" in line:
            print(f"{path}: error: {line['error']}")
        else:
            answers = ", ".join(f"{n} {v['digit']} ({max(v['probabilities']):.0%})"
                                for n, v in line["models"].items())
            seq = f"  sequence: {line['sequence']}" if "sequence" in line else ""
            print(f"{path}: {answers}{seq}")
    return 0


# ---------------------------------------------------------------------------------------
# bench
# ---------------------------------------------------------------------------------------

def cmd_bench(args) -> int:
    from .bench import run_bench
    return run_bench(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mnist_core",
                                     description="Train, evaluate and use the MNIST Studio models.")
    sub = parser.add_subparsers(dest="command", required=True)
    data_help = "MNIST folder (IDX), CSV or mnist.npz; default $MNIST_DATA, else keras download"

    p = sub.add_parser("train", help="train models and write artifacts")
    p.add_argument("--models", help=f"comma-separated, default {','.join(DEFAULT_MODELS)}")
    p.add_argument("--data", help=data_help)
    p.add_argument("--dataset", default="mnist", choices=sorted(DATASETS))
    p.add_argument("--epochs", type=int, help="override every model's epoch count")
    p.add_argument("--out", default=str(DEFAULT_DIR), help="artifact folder")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="score shipped models on the test set")
    p.add_argument("--models")
    p.add_argument("--data", help=data_help)
    p.add_argument("--dataset", default="mnist", choices=sorted(DATASETS))
    p.add_argument("--artifacts", default=str(DEFAULT_DIR))
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--write", action="store_true",
                   help="rewrite each model's metrics.json with these numbers")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="read the digit(s) in image files")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--models")
    p.add_argument("--artifacts", default=str(DEFAULT_DIR))
    p.add_argument("--json", action="store_true", help="one JSON line per image, in order")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("bench", help="benchmark speed, memory and real-handwriting accuracy")
    p.add_argument("--data", help=data_help)
    p.add_argument("--handwriting", help="handwriting-dev folder (default ../shared/data/handwriting-dev)")
    p.add_argument("--artifacts", default=str(DEFAULT_DIR))
    p.add_argument("--out", default="benchmarks/RESULTS.md")
    p.add_argument("--skip-mnist", action="store_true")
    p.add_argument("--readme", default="README.md",
                   help="README whose bench block is refreshed ('' to leave it alone)")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (DataError, ArtifactError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
