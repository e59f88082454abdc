"""Cause before cure: which training ingredients move held-out writers AND the dev scans.

    python benchmarks/scans_ablation.py --data /path/to/mnist --model cnn --epochs 3 \
        --n-train 20000 [--runs base share0 ...] [--out benchmarks/SCANS_ABLATION.md]

Trains ``--model`` (its shipped architecture and settings, shortened to ``--epochs`` on
``--n-train`` MNIST images, same seed for every run) once per run below, and scores each
on: MNIST's validation split (carved from the training set; the test set is not looked
at), the held-out writers of handwriting-train (canvas and photo: mean / worst writer) and
the dev scans (USPS, Semeion: measured only, never trained on). Each trained model is also
read three ways at test time: as the app reads (its views, strokes normalised), without
the narrowed view for square digits, and without the stroke-width normalisation.
``--shipped`` scores the shipped models in ``artifacts/`` (or the ``--artifacts``
folders) the same three ways instead (no training), and MNIST's test set;
``--ensemble`` adds each kind averaged over the folders (a seed ensemble). ``--seeds``
trains each run once per seed, and the report gives each recipe's mean over its seeds. ``--arch FIELD=JSON ...`` changes the
architecture for every run (capacity: width, dropout); ``--augment FIELD=JSON ...`` the
recipe's augmentation (its strength). A run that averages its last
epochs' weights is scored twice: the averaged model and its last epoch's own. Results are appended to ``<out>.jsonl`` as each run ends, and the table is
rewritten from all of them, so a stopped run keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

import harness as h
from mnist_core.artifacts.files import load_models
from mnist_core.artifacts.registry import REGISTRY
from mnist_core.datasets.data import load_dataset, split_validation, to_float
from mnist_core.datasets.handwriting import DEFAULT_DIR as DEV_DIR
from mnist_core.datasets.handwriting import load_scans, upscale_scan
from mnist_core.models.views import model_config, predict_views
from mnist_core.preprocess import DEFAULT, NoDigitError, preprocess
from mnist_core.preprocess.geometry import GeometryConfig
from mnist_core.training import writers
from mnist_core.training.train import fit

# Runs: (writers' share, scans' share of MNIST, writer scans per digit, stroke styles on,
# share of the epochs whose end weights are averaged into the model kept).
RUNS = {
    "share0": (0.0, 0.0, 0, True, 0.0),        # MNIST alone
    "base": (0.15, 0.0, 0, True, 0.0),         # the shipped recipe of issue 11
    "share30": (0.3, 0.0, 0, True, 0.0),
    "scans": (0.15, 0.2, 1, True, 0.0),        # + scanned forms, on both sources
    "scans_nostyles": (0.15, 0.2, 1, False, 0.0),
    "scans_share30": (0.3, 0.2, 1, True, 0.0),
    # base, the last third of the epochs averaged; its last epoch's own weights are
    # scored too, as "average (last epoch)": one training, both models
    "average": (0.15, 0.0, 0, True, 1 / 3),
}
# Test-time readings: (name, keep the narrowed view, normalise stroke width).
READINGS = [("app", True, True), ("no narrowed view", False, True),
            ("no stroke normalising", True, False)]
NO_STROKE = replace(DEFAULT, geometry=GeometryConfig(stroke_tolerance=1e9))


def dev_inputs(directory: Path, config) -> dict:
    """``{set: (inputs (N, 28, 28) float32, found (N,) bool, labels)}`` for USPS and
    Semeion, read by the app's preprocessing with ``config``."""
    out = {}
    for name in ("usps_test", "semeion"):
        x, y = load_scans(directory / f"{name}.npz")
        finals, found = [], []
        for img in x:
            try:
                finals.append(preprocess(upscale_scan(img), config).final)
                found.append(True)
            except NoDigitError:
                finals.append(np.zeros((28, 28), np.float32))
                found.append(False)
        out[name.split("_")[0]] = (np.stack(finals).astype(np.float32), np.array(found), y)
    return out


def writer_inputs(path, config) -> dict:
    """Held-out writers' digits as :func:`writers.held_out_inputs`, read with ``config``
    (the default's come from its cache)."""
    if config is DEFAULT:
        cached = writers.held_out_inputs(path)
        return {k: (x, f, y) for k, (x, f, y, _) in cached.items()}, \
            {k: v[3] for k, v in cached.items()}
    out, ids = {}, {}
    for name, images, labels, who in writers.held_out_sets(path):
        canvas = name.endswith("canvas")
        finals, found = [], []
        for img in images:
            try:
                finals.append(preprocess(img, config, canvas=canvas).final)
                found.append(True)
            except NoDigitError:
                finals.append(np.zeros((28, 28), np.float32))
                found.append(False)
        out[name], ids[name] = (np.stack(finals).astype(np.float32), np.array(found), labels), who
    return out, ids


def all_inputs(args) -> dict:
    """``{normalise strokes: (inputs, writer ids)}`` for both preprocessings, kept in the
    writers' cache folder (reading them takes minutes)."""
    path = writers._cache_path("ablation-inputs" + ("-dev" if args.dev_only else ""), None)
    sets: dict = {}
    try:
        with np.load(path, allow_pickle=False) as f:
            for stroke in (True, False):
                names = [str(n) for n in f[f"{stroke}/names"]]
                sets[stroke] = ({n: (f[f"{stroke}/{n}/x"], f[f"{stroke}/{n}/found"],
                                     f[f"{stroke}/{n}/y"]) for n in names},
                                {n: f[f"{stroke}/{n}/ids"] for n in names
                                 if f"{stroke}/{n}/ids" in f})
        return sets
    except (OSError, KeyError, ValueError):
        pass
    arrays = {}
    for stroke in (True, False):
        config = DEFAULT if stroke else NO_STROKE
        w, ids = ({}, {}) if args.dev_only else writer_inputs(args.writers, config)
        sets[stroke] = ({**w, **dev_inputs(Path(args.dev), config)}, ids)
        arrays[f"{stroke}/names"] = np.array(list(sets[stroke][0]))
        for n, (x, found, y) in sets[stroke][0].items():
            arrays.update({f"{stroke}/{n}/x": x, f"{stroke}/{n}/found": found, f"{stroke}/{n}/y": y})
        for n, who in ids.items():
            arrays[f"{stroke}/{n}/ids"] = np.asarray(who)
    writers._save_cache(path, **arrays)
    return sets


def probabilities(model, name: str, inputs: dict, narrowed: bool) -> dict:
    """``{set: (N, 10) probabilities}`` of ``model`` read as the app reads it (its views;
    without the narrowed view for square digits when not ``narrowed``)."""
    views = model_config(model)
    if not narrowed:
        views = replace(views, squeeze=0.0)
    return {s: predict_views({name: model}, x, views)[name] for s, (x, _, _) in inputs.items()}


def score(probs: dict, inputs: dict, ids: dict) -> dict:
    """Accuracy of ``probs`` (:func:`probabilities`) on each set (writers: mean and worst
    writer) and its misses."""
    row = {}
    for set_name, (x, found, labels) in inputs.items():
        p = probs[set_name]
        right = (p.argmax(1) == labels) & found
        row[set_name] = float(right.mean())
        if set_name in ids:
            row[set_name + " worst"] = writers.per_writer(right, ids[set_name])["worst"]
        row[set_name + " confusions"] = _confusions(p.argmax(1), labels, found)
    return row


def _confusions(pred, labels, found) -> dict:
    """``{"true->said": count}`` of the misses."""
    out: dict[str, int] = {}
    for t, s, f in zip(labels, pred, found):
        if t != s or not f:
            key = f"{t}->{s if f else '-'}"
            out[key] = out.get(key, 0) + 1
    return out


def answers(model, name: str, sets: dict) -> dict:
    """``{reading: {set: (N, 10) probabilities}}``: what ``model`` says, each of
    :data:`READINGS` of every set, computed once (scored alone and in an ensemble)."""
    return {label: probabilities(model, name, sets[stroke][0], narrowed)
            for label, narrowed, stroke in READINGS}


def readings(said: list[dict], sets: dict) -> dict:
    """Each of :data:`READINGS` scored on the mean of ``said`` (:func:`answers` of one
    model, or of several: a seed ensemble answers with the mean of their probabilities)."""
    out = {}
    for label, _, stroke in READINGS:
        inputs, ids = sets[stroke]
        out[label] = score({s: np.mean([a[label][s] for a in said], 0) for s in inputs},
                           inputs, ids)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="MNIST folder (default $MNIST_DATA)")
    ap.add_argument("--writers", default=None, help="handwriting-train folder")
    ap.add_argument("--dev", default=str(DEV_DIR), help="handwriting-dev folder")
    ap.add_argument("--model", default="cnn", choices=sorted(REGISTRY))
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--n-train", type=int, default=20000, help="MNIST images (0: all)")
    ap.add_argument("--renders", type=int, default=writers.WriterMix().renders,
                    help="canvas/photo renderings per writer's digit (1: canvas only, cheaper)")
    ap.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    ap.add_argument("--arch", nargs="+", default=[], metavar="FIELD=JSON",
                    help="change the model's architecture for every run, e.g. "
                         "hidden=[2048,2048] dropout=0.4 (the runs are named with it)")
    ap.add_argument("--augment", nargs="+", default=[], metavar="FIELD=JSON",
                    help="change the recipe's AugmentConfig for every run, e.g. "
                         "rotate_deg=18 elastic_alpha=4.5 (the runs are named with it)")
    ap.add_argument("--shipped", action="store_true", help="score artifacts/ instead of training")
    ap.add_argument("--artifacts", nargs="+", default=[str(h.REPO / "artifacts")],
                    help="with --shipped: the folders to score, each as a run of its own "
                         "(e.g. a `train --last-epoch` folder beside the trained one)")
    ap.add_argument("--ensemble", action="store_true",
                    help="with --shipped and several --artifacts: also score each kind of "
                         "model as the mean of its probabilities over the folders")
    ap.add_argument("--seeds", nargs="+", type=int, default=None,
                    help="train every run once per seed (default: the recipe's own seed); "
                         "the report gives each recipe's mean over its seeds")
    ap.add_argument("--dev-only", action="store_true",
                    help="score the dev scans only (no held-out writers): minutes less")
    ap.add_argument("--report-only", action="store_true", help="rewrite the table from the .jsonl")
    ap.add_argument("--out", default=str(Path(__file__).with_name("SCANS_ABLATION.md")))
    args = ap.parse_args()
    log_path = Path(args.out).with_suffix(".jsonl")
    if not args.report_only:
        sets = all_inputs(args)
        print("inputs ready", file=sys.stderr)
        if args.shipped:
            score_folders(args, sets, log_path)
        else:
            run_training(args, sets, log_path)
    report(log_path, args)


def score_folders(args, sets: dict, log_path: Path) -> None:
    """Rows for the trained models of each ``--artifacts`` folder (recipe "train", the
    seed its manifest records; MNIST's test set too, as ``train`` reported it), and with
    ``--ensemble`` one row per kind for the mean of all the folders' probabilities."""
    mnist = load_dataset(args.data)
    x_test = to_float(mnist.x_test)
    kinds: dict[str, list[tuple[dict, np.ndarray]]] = {}   # name -> (answers, test probs)
    for folder in args.artifacts:
        run = "shipped" if Path(folder).resolve() == (h.REPO / "artifacts").resolve() \
            else Path(folder).name
        manifest = json.loads((Path(folder) / "manifest.json").read_text())["models"]
        for name, model in load_models(Path(folder)).items():
            said, test = answers(model, name, sets), model.predict_proba(x_test)
            kinds.setdefault(name, []).append((said, test))
            _append(log_path, {"run": run, "model": name, "recipe": "train",
                               "seed": manifest[name]["seed"],
                               "test": _accuracy(test, mnist.y_test),
                               "readings": readings([said], sets)})
    if args.ensemble and len(args.artifacts) > 1:
        for name, each in kinds.items():
            _append(log_path, {"run": f"ensemble of {len(each)}", "model": name,
                               "test": _accuracy(np.mean([t for _, t in each], 0), mnist.y_test),
                               "readings": readings([a for a, _ in each], sets)})


def _accuracy(p: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of ``(N, 10)`` probabilities ``p`` against labels ``y``."""
    return float((p.argmax(1) == y).mean())


def field_changes(pairs: list[str]) -> dict:
    """``["FIELD=JSON", ...]`` (``--arch``, ``--augment``) -> ``{field: value}``."""
    return {k: json.loads(v) for k, v in (a.split("=", 1) for a in pairs)}


def run_training(args, sets: dict, log_path: Path) -> None:
    spec = REGISTRY[args.model]
    changes = field_changes(args.arch)
    arch = replace(spec.arch, **{k: tuple(v) if isinstance(v, list) else v
                                 for k, v in changes.items()})
    augments = field_changes(args.augment)
    named = "".join(f" {a}" for a in args.arch + args.augment)
    base = load_dataset(args.data)
    for run, seed in ((r, s) for r in args.runs for s in args.seeds or [spec.train.seed]):
        # the validation split the training carves with this seed (never trained on)
        val = split_validation(base.x_train, base.y_train, spec.train.n_val, seed)
        share, scans, writer_scans, styles, averaged = RUNS[run]
        mix = writers.WriterMix(renders=args.renders, scans=writer_scans,
                                style_rate=writers.WriterMix().style_rate if styles else 0.0)
        x, y, record = writers.training_set(args.writers, mix)
        data = replace(base, x_extra=x, y_extra=y, extra_source=record)
        augment = replace(spec.train.augment, scans=scans, styles=1.0 if styles else 0.0,
                          **augments)
        cfg = replace(spec.train, epochs=args.epochs, n_train=args.n_train or None, writers_share=share,
                      augment=augment, average_epochs=round(averaged * args.epochs), seed=seed)
        t0, c0 = time.perf_counter(), time.process_time()
        result = fit(data, cfg, arch)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        seeded = f" seed {seed}" if args.seeds else ""
        kept = [(run + named, result.model)]
        if result.unaveraged is not None:
            kept.append((f"{run}{named} (last epoch)", result.unaveraged))
        for recipe, net in kept:
            label = recipe + seeded
            model = spec.backend.from_net(net, spec, arch=arch)
            val_acc = float((model.predict_proba(to_float(val.x_val)).argmax(1) == val.y_val).mean())
            row = {"run": label, "recipe": recipe, "seed": seed, "model": args.model, "epochs": args.epochs,
                   "n_train": args.n_train, "renders": args.renders, "share": share,
                   "scans": scans, "writer_scans": writer_scans, "styles": styles,
                   "average_epochs": cfg.average_epochs, "arch": changes, "augment": augments,
                   "val": val_acc, "seconds": seconds,
                   "cpu_seconds": cpu,
                   "readings": readings([answers(model, args.model, sets)], sets)}
            _append(log_path, row)
            app = row["readings"]["app"]
            print(f"{label}: val {val_acc:.4f} " + " ".join(
                f"{k} {v:.4f}" for k, v in app.items() if not k.endswith("confusions")),
                file=sys.stderr)


def _append(path: Path, row: dict) -> None:
    """One run's row, with the command and time that made it, appended to ``path``."""
    row = {**row, "command": h.command("python"),
           "when": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"}
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


# The report's hand-written findings start at this heading; rewriting the tables keeps them.
FINDINGS = "## What it says"


SETS = ["writers-canvas", "writers-photo", "usps", "semeion"]


def report(log_path: Path, args) -> None:
    rows = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    head = ["run", "model", "writers' share", "MNIST scans", "writer scans", "styles",
            "epochs averaged", "MNIST val", "MNIST test", "writers-canvas mean / worst", "writers-photo mean / worst", "USPS",
            "Semeion", "CPU s"]
    table = []
    for r in rows:
        app = r["readings"]["app"]
        pct = lambda v: "-" if v is None else f"{100 * v:.2f}%"  # noqa: E731
        table.append((r["run"], r["model"], r.get("share", "-"), r.get("scans", "-"),
                      r.get("writer_scans", "-"), r.get("styles", "-"),
                      r.get("average_epochs", 0), pct(r.get("val")), pct(r.get("test")),
                      *(f"{pct(app.get(s))} / {pct(app.get(s + ' worst'))}" for s in SETS[:2]),
                      pct(app["usps"]), pct(app["semeion"]),
                      f"{r['cpu_seconds']:.0f}" if "cpu_seconds" in r else "-"))
    reads = []
    for r in rows:
        for label, _, _ in READINGS:
            rd = r["readings"][label]
            reads.append((r["run"], r["model"], label,
                          *(f"{100 * rd[s]:.2f}%" if s in rd else "-" for s in SETS),
                          str(rd["usps confusions"].get("2->1", 0) + rd["semeion confusions"].get("2->1", 0))))
    means = seed_means(rows)
    made = {r.get("command", "?"): r.get("when", "?") for r in rows}  # when each one ended
    old = Path(args.out).read_text() if Path(args.out).exists() else ""
    findings = old[old.index(FINDINGS):].rstrip("\n").splitlines() if FINDINGS in old else []
    lines = [h.measured(None) + " CPU seconds of the training (all threads); the machine "
             "was shared with other work, so wall time is not given. The rows come from:", "",
             *(f"- `{cmd}` ({when})" for cmd, when in made.items()), "",
             "Training ablation (the app's reading):", "",
             *h.table(head, table), "",
             *(["Each recipe's mean over its seeds (the app's reading; in brackets the "
                "spread, highest minus lowest, in points):", "",
                *h.table(["recipe", "model", "seeds", "MNIST val", "MNIST test",
                          "writers-canvas", "writers-photo", "USPS", "Semeion"], means),
                ""] if means else []),
             "Each model read three ways at test time (same weights): as the app reads, "
             "without the narrowed view for square digits, without the stroke-width "
             "normalisation; last column: 2s read as 1 on USPS + Semeion.", "",
             *h.table(["run", "model", "reading", *SETS, "2->1 (dev scans)"], reads),
             "", *findings]
    h.write_report(args.out, "Scans ablation: what moves held-out writers and the dev scans",
                   lines)
    print(f"wrote {args.out}", file=sys.stderr)


def seed_means(rows: list[dict]) -> list[tuple]:
    """One line per (recipe, model) trained with two or more seeds: each set's mean
    accuracy and its spread over the seeds."""
    groups: dict[tuple, dict[int, dict]] = {}
    for r in rows:
        if "seed" in r:
            groups.setdefault((r["recipe"], r["model"]), {})[r["seed"]] = r
    lines = []
    for (recipe, model), by_seed in groups.items():
        if len(by_seed) < 2:
            continue
        def cell(get) -> str:
            v = [get(r) for r in by_seed.values()]
            if any(x is None for x in v):
                return "-"
            return f"{100 * np.mean(v):.2f}% ({100 * np.ptp(v):.2f})"
        lines.append((recipe, model, " ".join(map(str, sorted(by_seed))),
                      cell(lambda r: r.get("val")), cell(lambda r: r.get("test")),
                      *(cell(lambda r, s=s: r["readings"]["app"][s]) for s in SETS)))
    return lines


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
