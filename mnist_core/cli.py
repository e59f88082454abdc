"""Command line: ``python -m mnist_core {train,calibrate,evaluate,predict,bench} ...``."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from dataclasses import replace
from pathlib import Path

from .artifacts.files import (DEFAULT_DIR, ArtifactError, default_dir, load_models,
                              manifest_or_empty,
                              write_json, write_manifest)
from .datasets.common import DataError
from .datasets.data import DATASET_NAMES, load_dataset
from .training import writers
from .insight.evaluate import evaluate_model
from .artifacts.registry import DEFAULT_MODELS, REGISTRY


def _models_arg(text: str | None, default=DEFAULT_MODELS) -> list[str]:
    names = [n.strip() for n in text.split(",")] if text else list(default)
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise SystemExit(f"error: unknown model(s) {', '.join(unknown)}; known: "
                         f"{', '.join(REGISTRY)}")
    return names


# ---------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------

def cmd_train(args) -> int:
    from .package import train_and_package
    from .training.train import ProgressBar

    data = load_dataset(args.data, args.dataset)
    # Real writers join models of MNIST itself (its full test set), or when asked for.
    full_mnist = data.name == "mnist" and len(data.y_test) >= FULL_MNIST_TEST
    if args.writers or (args.writers is None and full_mnist):
        data = writers.with_writers(data, args.writers or None,
                                    log=lambda line: print(line, file=sys.stderr))
    out = _folder(args.out, data.name, as_the_app=False)
    seed = (lambda spec: replace(spec.train, seed=args.seed)) if args.seed is not None else None
    train_and_package(
        _models_arg(args.models), data, out, epochs=args.epochs, train_cfg=seed,
        callback_for=lambda name, cfg: ProgressBar(name, cfg.epochs),
        command=_command(args),
        log=lambda line: print(line, file=sys.stderr), handwriting=_handwriting_arg(args, data),
        last_epoch_out=args.last_epoch)
    print(f"wrote {out}", file=sys.stderr)
    return 0


# Real-handwriting curves by default only for models of MNIST itself (its full test set):
# preprocessing the dev set's 5,800 renderings takes minutes, wasted on a small or other set.
FULL_MNIST_TEST = 10_000


def _folder(given: str | None, dataset: str, *, as_the_app: bool = True) -> Path:
    """The artifacts folder: ``given``, else the one ``dataset``'s models ship in
    (``artifacts/``, ``artifacts/fashion/``), inside ``$MNIST_STUDIO_ARTIFACTS`` when set
    and ``as_the_app`` (reading, as the app reads; ``train`` writes to the repository's)."""
    if given:
        return Path(given)
    if not as_the_app:
        return default_dir(dataset)
    return Path(_artifacts_default()) / default_dir(dataset).relative_to(DEFAULT_DIR)


def _handwriting_arg(args, data) -> Path | None:
    """The dev-set folder for calibration's real-handwriting curves: ``--handwriting``
    (``''``: none), else the shared one when present and ``data`` is MNIST with its full
    test set, else None."""
    from .datasets.handwriting import DEFAULT_DIR as HANDWRITING_DIR

    if args.handwriting is not None:
        return Path(args.handwriting) if args.handwriting else None
    full_mnist = data.name == "mnist" and len(data.y_test) >= FULL_MNIST_TEST
    return HANDWRITING_DIR if full_mnist and HANDWRITING_DIR.is_dir() else None


# ---------------------------------------------------------------------------------------
# calibrate
# ---------------------------------------------------------------------------------------

def cmd_calibrate(args) -> int:
    """Fit and write the shipped models' temperatures without retraining: each model's own
    validation split (n_val and seed from its manifest entry), curves on MNIST's test set
    and real handwriting, then the manifest re-hashed."""
    from .insight.calibration import calibrate_models, default_handwriting

    data = load_dataset(args.data, args.dataset)
    out = _folder(args.artifacts, data.name)
    models = load_models(out, _models_arg(args.models, default=()) or None)
    manifest = manifest_or_empty(out)
    splits = {}
    for name in models:
        cfg = manifest.get("models", {}).get(name, {}).get("train_config") or {}
        splits[name] = (int(cfg.get("n_val", REGISTRY[name].train.n_val)),
                        int(cfg.get("seed", REGISTRY[name].train.seed)))
    log = lambda line: print(line, file=sys.stderr)  # noqa: E731
    where = _handwriting_arg(args, data)
    handwriting = default_handwriting(where, log) if where is not None else None
    records = calibrate_models(models, data, splits, out, handwriting, log=log)
    write_manifest(out, {k: v for k, v in manifest.items() if k not in ("files", "versions")})
    if args.json:
        print(json.dumps({n: {k: r[k] for k in ("temperature", "val")} | {
            "sets": {s: {k: v for k, v in c.items() if k not in ("before", "after")}
                     for s, c in r["sets"].items()}} for n, r in records.items()}))
    print(f"wrote {out}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------------------

def cmd_evaluate(args) -> int:
    data = load_dataset(args.data, args.dataset)
    out = _folder(args.artifacts, data.name)
    models = load_models(out, _models_arg(args.models, default=()) or None)
    results = {name: evaluate_model(model, data, model.metrics.get("train_seconds"),
                                    (out / REGISTRY[name].filename).stat().st_size)[0]
               for name, model in models.items()}
    if args.write:  # refresh metrics.json (training time kept) and re-hash the manifest
        for name, metrics in results.items():
            write_json(out, f"{name}.metrics.json", metrics)
        manifest = manifest_or_empty(out)
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

def read_image_file(path: str, max_bytes: int) -> bytes:
    """An image file's bytes, its size checked before it is read: ``OSError`` with a
    message for a folder, a device (``/dev/zero``), a pipe or a file over ``max_bytes``
    (a 6 GB sparse file is refused unread)."""
    p = Path(path)
    if not p.exists():
        raise OSError("no such file")
    if not p.is_file():
        raise OSError("not a regular file (a folder, device or pipe)")
    size = p.stat().st_size
    if size > max_bytes:
        raise OSError(f"file is {size / 2**20:,.0f} MB; the limit is {max_bytes / 2**20:.0f} MB")
    with open(p, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:   # grew while being read
        raise OSError(f"file is over the {max_bytes / 2**20:.0f} MB limit")
    return data


def cmd_predict(args) -> int:
    """One line per image; exit status 1 when any image could not be read (the others
    are still read and printed)."""
    from .reading.inference import read_row
    from .reading.novelty import references
    from .preprocess import ImageReadError, NoDigitError, decode_image
    from .preprocess.decode import MAX_BYTES

    models = load_models(args.artifacts, _models_arg(args.models, default=()) or None)
    refs = references(args.artifacts)   # the maps' far signal, as the app judges

    def answers(reading) -> dict:
        return {n: {"digit": reading.digit(n),
                    "probabilities": [round(float(p), 6) for p in reading.probs[n]]}
                for n in models}

    def verdict(reading) -> dict:
        return {"not_a_digit": reading.flagged, "reasons": list(reading.verdict.reasons)}

    failed = 0
    for path in args.images:
        line: dict = {"path": path}
        try:
            image = decode_image(read_image_file(path, MAX_BYTES))
            # "models" reads all the ink as one digit: the only digit found, or, for a row
            # of digits, the whole image preprocessed once more as one.
            whole, parts = read_row(image, models, refs=refs)
            line["models"] = answers(whole)
            line.update(verdict(whole))
            if len(parts) > 1:
                line["sequence"] = {n: "".join(str(r.digit(n)) for r in parts) for n in models}
                line["digits"] = [{"box": list(r.stages.box), "models": answers(r),
                                   **verdict(r)} for r in parts]
        except (OSError, ImageReadError, NoDigitError) as exc:
            line = {"path": path, "error": _os_message(exc)}
        except (MemoryError, ValueError) as exc:   # never lose the rest of the batch
            line = {"path": path, "error": f"could not be read ({type(exc).__name__})"}
        failed += "error" in line
        if args.json:
            print(json.dumps(line), flush=True)
        elif "error" in line:
            print(f"{path}: error: {line['error']}")
        else:
            said = ", ".join(f"{n} {v['digit']} ({max(v['probabilities']):.0%})"
                             for n, v in line["models"].items())
            seq = f"  sequence: {line['sequence']}" if "sequence" in line else ""
            odd = (f"  not a digit: {'; '.join(line['reasons'])}" if line["not_a_digit"]
                   else "")
            print(f"{path}: {said}{seq}{odd}")
    if failed:
        print(f"error: {failed} of {len(args.images)} images could not be read", file=sys.stderr)
    return 1 if failed else 0


def _os_message(exc: Exception) -> str:
    """An error's words without the path the line already names (``[Errno 13] Permission
    denied: 'x.png'`` -> ``permission denied``)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


# ---------------------------------------------------------------------------------------
# embed
# ---------------------------------------------------------------------------------------

def cmd_embed(args) -> int:
    """Model maps (mnist_core/embedding.py) of the shipped models; re-hashes the manifest."""
    from .insight.embedding import manifest_entry, write_maps

    data = load_dataset(args.data, args.dataset)
    out = _folder(args.artifacts, data.name)
    models = load_models(out, _models_arg(args.models, default=()) or None)
    write_maps(out, models, data.x_test, data.y_test,
               log=lambda line: print(line, file=sys.stderr))
    manifest = manifest_or_empty(out)
    info = {k: v for k, v in manifest.items() if k not in ("files", "versions")}
    command = _command(args)
    for name in models:  # how each map was made, beside how its model was trained
        info.setdefault("models", {}).setdefault(name, {})["map"] = manifest_entry(
            command=command)
    write_manifest(out, info)
    print(f"wrote {len(models)} maps into {out}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------------------
# bench
# ---------------------------------------------------------------------------------------

def cmd_bench(args) -> int:
    from .bench import run_bench
    return run_bench(args)


ARTIFACTS_ENV = "MNIST_STUDIO_ARTIFACTS"   # the folder the app reads (ui/data.py)


def _artifacts_default() -> str:
    """The models folder the app reads: ``$MNIST_STUDIO_ARTIFACTS``, else ``artifacts/``."""
    return str(Path(os.environ.get(ARTIFACTS_ENV) or DEFAULT_DIR).expanduser())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mnist_core",
                                     description="Train, evaluate and use the MNIST Studio models.")
    sub = parser.add_subparsers(dest="command", required=True)
    data_help = ("dataset folder (IDX), CSV or .npz; default $MNIST_DATA (digits) or "
                 "$FASHION_DATA, else /usr/share/datasets/fashion-mnist (clothing), else "
                 "keras download")
    dataset_help = "mnist (digits, the default) or fashion (Fashion-MNIST's clothing)"
    artifacts_help = f"artifacts folder; default ${ARTIFACTS_ENV}, as the app, else artifacts/"
    dir_help = (f"artifacts folder; default ${ARTIFACTS_ENV}, as the app, else artifacts/; "
                "its fashion/ folder for --dataset fashion")
    hw_help = ("handwriting-dev folder for the calibration curves on real handwriting "
               "(default ../shared/data/handwriting-dev when present and the data is "
               "MNIST's full set; '' for none)")

    p = sub.add_parser("train", help="train models and write artifacts")
    p.add_argument("--models", help=f"comma-separated, default {','.join(DEFAULT_MODELS)}")
    p.add_argument("--data", help=data_help)
    p.add_argument("--dataset", default="mnist", choices=sorted(DATASET_NAMES),
                   help=dataset_help)
    p.add_argument("--epochs", type=int, help="override every model's epoch count")
    p.add_argument("--out", help=dir_help)
    p.add_argument("--handwriting", help=hw_help)
    p.add_argument("--writers", help=f"folder of handwriting-train's {writers.FILENAME} "
                   f"(real writers' strokes mixed into training; default ${writers.ENV_VAR} or "
                   "../shared/data/handwriting-train; '' for MNIST alone)")
    p.add_argument("--seed", type=int,
                   help="seed every model's weights, shuffling, augmentation and validation "
                        "split with this instead of its own (0): another draw of the same "
                        "recipe, to see how much a seed moves the results")
    p.add_argument("--last-epoch", metavar="DIR",
                   help="also write each model whose last epochs' weights are averaged as its "
                        "last epoch left it, into DIR (a folder of its own, to compare)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("calibrate", help="fit each shipped model's temperature (no training)")
    p.add_argument("--models")
    p.add_argument("--data", help=data_help)
    p.add_argument("--dataset", default="mnist", choices=sorted(DATASET_NAMES),
                   help=dataset_help)
    p.add_argument("--artifacts", help=dir_help)
    p.add_argument("--handwriting", help=hw_help)
    p.add_argument("--json", action="store_true", help="the numbers as one JSON object")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("evaluate", help="score shipped models on the test set")
    p.add_argument("--models")
    p.add_argument("--data", help=data_help)
    p.add_argument("--dataset", default="mnist", choices=sorted(DATASET_NAMES),
                   help=dataset_help)
    p.add_argument("--artifacts", help=dir_help)
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--write", action="store_true",
                   help="rewrite each model's metrics.json with these numbers")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="read the digit(s) in image files (exit status 1 when "
                                       "any could not be read)")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--models")
    p.add_argument("--artifacts", default=_artifacts_default(), help=artifacts_help)
    p.add_argument("--json", action="store_true", help="one JSON line per image, in order")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("embed", help="2-D maps of the test digits from each model's last "
                                     "hidden layer (Model maps page)")
    p.add_argument("--models", help="comma-separated, default every model in the manifest")
    p.add_argument("--data", help=data_help)
    p.add_argument("--dataset", default="mnist", choices=sorted(DATASET_NAMES),
                   help=dataset_help)
    p.add_argument("--artifacts", help=dir_help)
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("bench", help="benchmark speed, memory and real-handwriting accuracy")
    p.add_argument("--data", help=data_help)
    p.add_argument("--handwriting", help="handwriting-dev folder (default ../shared/data/handwriting-dev)")
    p.add_argument("--artifacts", default=str(default_dir()))
    p.add_argument("--out", default="benchmarks/RESULTS.md")
    p.add_argument("--skip-mnist", action="store_true")
    p.add_argument("--readme", default="README.md",
                   help="README whose bench block is refreshed ('' to leave it alone)")
    p.set_defaults(func=cmd_bench)
    return parser


def _command(args) -> str:
    """The command line that ran, for the manifest: the arguments ``main`` was given (not
    ``sys.argv``, which is the caller's own when ``main`` is called from Python)."""
    return "python -m mnist_core " + " ".join(shlex.quote(a) for a in args.argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return args.func(args)
    except (DataError, ArtifactError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
