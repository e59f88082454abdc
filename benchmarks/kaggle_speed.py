"""Kaggle batch speed: parse a Digit Recognizer ``test.csv`` and predict it, before and after.

Builds Kaggle-format files from the MNIST test set (``--rows``, default 28,000: Kaggle's
size, the 10,000 test digits tiled; and a ``--zip-rows`` zip, default 100,000: the app's
limit), then times, in fresh processes, this checkout and ``--before PATH`` (an older
checkout, run with ``PYTHONPATH=PATH``; both the wings' layout and the flat one before it):

* parsing: ``kaggle.read_test_csv`` on the CSV's bytes, with its peak memory beyond those
  bytes (tracemalloc's peak, and the growth of ``VmHWM`` in a process doing nothing else);
* the CNN predicting the parsed rows the way the Kaggle page does (``kaggle.submission_csv``
  with the model's ``predict_proba``);
* every shipped model's ``predict_proba`` on MNIST's 10,000 test images and on one image
  (``evaluate.time_single``, median over 200 images), also with BLAS at one thread as the
  app holds it.

Versions alternate and every figure is the median over ``--repeats`` rounds, CPU seconds
beside wall seconds (on a shared machine the CPU time depends much less on what else runs).

    python benchmarks/kaggle_speed.py --data ../shared/data/mnist --before /tmp/before

writes ``benchmarks/KAGGLE_SPEED.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import harness as h

ROOT = h.REPO
KAGGLE_ROWS = 28_000
ZIP_ROWS = 100_000
MODELS = ("numpy", "dense", "cnn", "lenet5")
SINGLE_REPEATS = 200  # evaluate.time_single's images (its default is 50)


def kaggle_csv(images, rows: int) -> bytes:
    """A Digit Recognizer ``test.csv``: header ``pixel0..pixel783``, then ``rows`` rows of
    784 pixels, the ``images`` tiled."""
    flat = images.reshape(len(images), -1)
    lines = [",".join(map(str, r)) for r in flat.tolist()]
    header = ",".join(f"pixel{i}" for i in range(flat.shape[1]))
    return "\n".join([header] + [lines[i % len(lines)] for i in range(rows)]).encode() + b"\n"


def kaggle_zip(path: Path, images, rows: int) -> Path:
    """:func:`kaggle_csv` zipped as ``test.csv`` into ``path`` (how the Kaggle page takes
    a file over its upload limit)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("test.csv", kaggle_csv(images, rows))
    return path


def read_csv_bytes(path: Path) -> bytes:
    """The CSV's bytes (unzipped: the app unpacks an upload the same way in both versions)."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as z:
            return z.read("test.csv")
    return path.read_bytes()


# Workers: run with PYTHONPATH set to the version's checkout.

def core() -> SimpleNamespace:
    """What the workers use, from the wings (``mnist_core.classroom.kaggle``...) or, in a
    checkout from before them (b3f39bc), from the flat modules."""
    try:
        from mnist_core.artifacts.files import load_models
        from mnist_core.classroom import kaggle
        from mnist_core.datasets.data import load_dataset, to_float
        from mnist_core.insight.evaluate import time_single
    except ModuleNotFoundError as exc:  # only a checkout without the wings falls back
        if exc.name != "mnist_core.artifacts.files":
            raise
        from mnist_core import kaggle
        from mnist_core.artifacts import load_models
        from mnist_core.data import load_dataset, to_float
        from mnist_core.evaluate import time_single
    return SimpleNamespace(load_models=load_models, kaggle=kaggle, load_dataset=load_dataset,
                           to_float=to_float, time_single=time_single)


def _timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def worker_memory(path: Path) -> dict:
    """Peak memory of parsing ``path``, alone in this process."""
    import tracemalloc

    kaggle = core().kaggle
    raw = read_csv_bytes(path)
    rss = h.rss_mb()
    kaggle.read_test_csv(raw)
    grew = h.peak_rss_mb() - rss
    tracemalloc.start()
    kaggle.read_test_csv(raw)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"rss_growth_mb": grew, "tracemalloc_mb": peak / 2**20}


def worker_speed(files: dict[str, Path], data: str, artifacts: Path, big: bool) -> dict:
    from threadpoolctl import threadpool_limits

    c = core()
    out: dict = {"load_start": os.getloadavg()[0]}
    models = c.load_models(artifacts, MODELS)
    x = c.to_float(c.load_dataset(data).x_test)
    for name, model in models.items():  # first, in a quiet process
        out[f"{name}_single_ms"] = c.time_single(model.predict_proba, x, SINGLE_REPEATS)
        with threadpool_limits(1, "blas"):  # as the app runs (tuning.limit_blas_threads)
            out[f"{name}_app_ms"] = c.time_single(model.predict_proba, x, SINGLE_REPEATS)

    cnn = models["cnn"]
    for key, path in [("", files["csv"])] + ([("big", files["zip"])] if big else []):
        raw = read_csv_bytes(path)
        images, out[f"parse{key}_s"], out[f"parse{key}_cpu"] = _timed(
            lambda: c.kaggle.read_test_csv(raw))
        sub, out[f"predict{key}_s"], out[f"predict{key}_cpu"] = _timed(
            lambda: c.kaggle.submission_csv(cnn.predict_proba, images))
    # The ONNX session sits on the model (wings) or on its NumPy plan (before them).
    onnx = getattr(cnn, "_onnx_session", None) or getattr(getattr(cnn, "fast", None),
                                                         "_onnx_session", None)
    out["engine"] = "ONNX Runtime" if onnx else "NumPy"
    out["total_s"] = out["parse_s"] + out["predict_s"]

    for name, model in models.items():
        model.predict_proba(x[:64])
        probs, out[f"{name}_10k_s"], out[f"{name}_10k_cpu"] = _timed(
            lambda: model.predict_proba(x))
        out[f"{name}_probs"] = probs.argmax(1).tolist()
        out[f"{name}_p"] = probs[::50].tolist()  # every 50th image's probabilities
    out["load_end"] = os.getloadavg()[0]
    return out


def run_worker(code: Path, mode: str, args: list[str], extra_env: dict | None = None) -> dict:
    return h.run_json([sys.executable, str(Path(__file__).resolve()), "--worker", mode, *args],
                      {"PYTHONPATH": str(code), **(extra_env or {})})


# Report

def _median(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if key in r]
    return statistics.median(values) if values else None


NOTES = """### Notes

Parsing is `kaggle.read_test_csv` (`datasets.csv_digits.parse_csv`: a digits-only file read
straight from its bytes into uint8, 4 MB at a time). Predicting is `Model.predict_proba`:
batches of 1,024 images or more go through ONNX Runtime when it is installed
(`mnist_core.engine.onnx_graph`, the graph built from the model's folded network), smaller
ones (the 1-image rows) through the NumPy engine; `MNIST_STUDIO_BATCH_ENGINE=numpy` sends
every batch to NumPy (`--before . --before-env MNIST_STUDIO_BATCH_ENGINE=numpy` compares
the two engines). A CPU time near twice the wall time means both cores were working; near
the wall time, another process held the second core. With the process's BLAS threads the
1-image rows swing widely (OpenBLAS splits a tiny product over its threads and waits for a
busy core); the app holds BLAS at one thread (the rows "as in the app")."""


def report(versions: dict[str, dict], command: str, repeats: int, big_repeats: int,
           rows: int, zip_rows: int) -> list[str]:
    """The report below its title."""
    names = list(versions)
    two = len(names) == 2

    def row(label: str, key: str, scale: float = 1.0, fmt: str = "{:.2f}", cpu: bool = False):
        runs = [versions[n]["speed"] for n in names]
        walls = [_median(r, key) for r in runs]
        cells = ["-" if w is None else fmt.format(w * scale) + (
            f" ({fmt.format(_median(r, key[:-2] + '_cpu') * scale)} CPU)" if cpu else "")
            for w, r in zip(walls, runs)]
        ratio = [f"{walls[0] / walls[1]:.1f}x" if all(walls) else ""] if two else []
        return "| " + " | ".join([label, *cells, *ratio]) + " |"

    def mem_row(label: str, file: str, key: str):
        cells = [f"{versions[n]['memory'][file][key]:.0f}" for n in names]
        return "| " + " | ".join([label, *cells, *([""] if two else [])]) + " |"

    head = ["| measurement | " + " | ".join(names) + (" | speed-up |" if two else " |"),
            "|---|" + "---|" * (len(names) + two)]
    loads = ", ".join(f"{n} {min(r['load_start'] for r in versions[n]['speed']):.1f}-"
                      f"{max(r['load_end'] for r in versions[n]['speed']):.1f}" for n in names)
    lines = [
        h.measured(command), "",
        f"Median of {repeats} rounds (the {zip_rows:,}-row file: of the first {big_repeats}), "
        "the versions alternating; wall time, with the process's CPU time (all its threads) "
        f"in brackets. 1-minute load average during the runs: {loads}.", "",
        f"### Kaggle test.csv ({rows:,} rows) and a {zip_rows:,}-row zip", "", *head,
        row(f"parse {rows:,} rows, s", "parse_s", cpu=True),
        mem_row(f"parse {rows:,} rows, peak RSS growth, MB", "csv", "rss_growth_mb"),
        mem_row(f"parse {rows:,} rows, tracemalloc peak, MB", "csv", "tracemalloc_mb"),
        row(f"CNN predicts {rows:,} (submission_csv), s", "predict_s", cpu=True),
        row(f"parse + CNN predict {rows:,}, s", "total_s"),
        row(f"parse {zip_rows:,} rows (unzipped), s", "parsebig_s", cpu=True),
        mem_row(f"parse {zip_rows:,} rows, peak RSS growth, MB", "zip", "rss_growth_mb"),
        mem_row(f"parse {zip_rows:,} rows, tracemalloc peak, MB", "zip", "tracemalloc_mb"),
        row(f"CNN predicts {zip_rows:,}, s", "predictbig_s", cpu=True), "",
        "### Every model's `predict_proba` (MNIST test set)", "", *head,
        *(row(f"{m}: 10,000 images, ms", f"{m}_10k_s", 1000, "{:.0f}", True) for m in MODELS),
        *(row(f"{m}: 1 image, ms", f"{m}_single_ms", 1, "{:.3f}") for m in MODELS),
        *(row(f"{m}: 1 image, BLAS at 1 thread as in the app, ms", f"{m}_app_ms", 1, "{:.3f}")
          for m in MODELS),
    ]
    if two:
        import numpy as np

        first, second = (versions[n]["speed"][0] for n in names)
        same = ", ".join(f"{m} {'yes' if first[f'{m}_probs'] == second[f'{m}_probs'] else 'NO'}"
                         for m in MODELS)
        diff = ", ".join(f"{m} {np.abs(np.subtract(first[f'{m}_p'], second[f'{m}_p'])).max():.1e}"
                         for m in MODELS)
        lines += ["", "Predicted digits on the 10,000 test images identical between the "
                  f"versions: {same}; largest probability difference (every 50th image): {diff}."]
    last = names[-1]
    total = _median(versions[last]["speed"], "total_s")
    cpu = _median(versions[last]["speed"], "predict_cpu")
    engine = versions[last]["speed"][0]["engine"]
    lines += ["", f"The CNN's {rows:,} (and {zip_rows:,}) rows went through: " + ", ".join(
        f"{n}, {versions[n]['speed'][0]['engine']}" for n in names) + ".", "",
        f"**The goal, parse + predict {rows:,} rows in under 5 s**: measured {total:.2f} s "
        f"({last}, {engine}, median; the prediction's CPU time {cpu:.2f} s, "
        f"{cpu / rows * 1e6:.0f} us an image over all threads), "
        + ("met" if total < 5 else f"{total - 5:.2f} s over") + " with the load above."]
    return lines + ["", NOTES]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=os.environ.get("MNIST_DATA"), help="MNIST folder")
    p.add_argument("--before", type=Path, help="a checkout of the code to compare against")
    p.add_argument("--before-env", action="append", default=[], metavar="KEY=VALUE",
                   help="environment of the before runs, e.g. --before . --before-env "
                        "MNIST_STUDIO_BATCH_ENGINE=numpy: this checkout on NumPy alone")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--big-repeats", type=int, default=1,
                   help="rounds that also run the --zip-rows file")
    p.add_argument("--rows", type=int, default=KAGGLE_ROWS, help="rows of the test.csv")
    p.add_argument("--zip-rows", type=int, default=ZIP_ROWS, help="rows of the zipped file")
    p.add_argument("--artifacts", type=Path, default=ROOT / "artifacts")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "KAGGLE_SPEED.md")
    p.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        mode, *rest = args.worker
        result = (worker_memory(Path(rest[0])) if mode == "memory" else
                  worker_speed({"csv": Path(rest[0]), "zip": Path(rest[1])}, args.data,
                               args.artifacts, rest[2] == "big"))
        print(json.dumps(result))
        return
    if not args.data:
        p.error("give --data or set MNIST_DATA")
    command = h.command("python")
    codes = {"before": args.before.resolve()} if args.before else {}
    codes["after"] = ROOT
    envs = {"before": dict(kv.split("=", 1) for kv in args.before_env), "after": {}}
    versions: dict[str, dict] = {n: {"speed": [], "memory": {}} for n in codes}
    with tempfile.TemporaryDirectory() as tmp:
        from mnist_core.datasets.data import load_dataset

        x_test = load_dataset(args.data).x_test
        files = {"csv": Path(tmp) / "test.csv",
                 "zip": kaggle_zip(Path(tmp) / "test-big.zip", x_test, args.zip_rows)}
        files["csv"].write_bytes(kaggle_csv(x_test, args.rows))
        common = ["--data", args.data, "--artifacts", str(args.artifacts)]
        for name, code in codes.items():
            for key in ("csv", "zip"):
                versions[name]["memory"][key] = run_worker(code, "memory", [str(files[key])],
                                                           envs[name])
        for i in range(args.repeats):
            for name, code in codes.items():
                big = "big" if i < args.big_repeats else "small"
                run = run_worker(code, "speed", [str(files["csv"]), str(files["zip"]), big,
                                                 *common], envs[name])
                versions[name]["speed"].append(run)
                print(f"round {i + 1}, {name}: parse {run['parse_s']:.2f} s, "
                      f"CNN {run['predict_s']:.2f} s ({run['engine']})", flush=True)
    print(h.write_report(args.out, "Kaggle batch speed", report(
        versions, command, args.repeats, min(args.big_repeats, args.repeats), args.rows,
        args.zip_rows)))


if __name__ == "__main__":
    main()
