"""``python -m mnist_core bench``: accuracy, speed and memory, written as a markdown table.

Every number in ``benchmarks/RESULTS.md`` comes from this command; nothing is typed by hand.
"""

from __future__ import annotations

import datetime as _dt
import platform
import resource
import shlex
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from . import tuning
from .artifacts.files import load_models
from .datasets.data import load_dataset, to_float
from .insight.evaluate import time_batch, time_single
from .datasets.handwriting import DEFAULT_DIR as HANDWRITING_DIR
from .datasets.handwriting import dev_sets, sequence_sets
from .reading.inference import predict_all, read_digits
from .preprocess import NoDigitError, preprocess
from .models.views import predict_views


def _rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _grey(image: np.ndarray) -> np.ndarray:
    """Any raw input as grey ``uint8`` as a person sees it (a canvas's strokes white)."""
    if image.ndim == 3 and image.shape[2] == 4:
        return image[..., 3]
    if image.ndim == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return image


def naive_input(image: np.ndarray) -> np.ndarray:
    """What most digit apps do: the whole image, grey, resized to 28x28 (white on black).

    ``image``: canvas RGBA, photo RGB or grey uint8 -> ``(28, 28) float32 [0, 1]``.
    """
    grey = _grey(image)
    if image.ndim == 3 and image.shape[2] == 3:
        grey = 255 - grey  # photos are dark ink on light paper
    return cv2.resize(grey, (28, 28), interpolation=cv2.INTER_AREA).astype(np.float32) / 255


def misses_sheet(raw: list[np.ndarray], finals: np.ndarray, labels: np.ndarray,
                 probs: np.ndarray, columns: int = 8, side: int = 64) -> np.ndarray:
    """A contact sheet of a model's mistakes, to see which are fair and which are not.

    ``raw``: the inputs as given (any shape); ``finals``: ``(N, 28, 28) float32 [0, 1]``,
    what the model read; ``labels``: ``(N,)`` int; ``probs``: ``(N, 10)``. Every miss is one
    tile: the input and what the model saw side by side under a caption "label->answer
    confidence". Returns ``(rows * (side + 16), columns * (2 * side + 4)) uint8``, or an
    empty ``(0, 0)`` array when nothing was missed.
    """
    missed = np.flatnonzero(probs.argmax(1) != labels)
    if missed.size == 0:
        return np.zeros((0, 0), np.uint8)
    tile_h, tile_w = side + 16, 2 * side + 4
    rows = -(-missed.size // columns)
    sheet = np.full((rows * tile_h, columns * tile_w), 40, np.uint8)
    for k, i in enumerate(missed):
        y, x = (k // columns) * tile_h + 16, (k % columns) * tile_w
        seen = (np.clip(finals[i], 0, 1) * 255).astype(np.uint8)
        sheet[y:y + side, x:x + side] = cv2.resize(_grey(raw[i]), (side, side),
                                                   interpolation=cv2.INTER_AREA)
        sheet[y:y + side, x + side + 2:x + 2 * side + 2] = cv2.resize(
            seen, (side, side), interpolation=cv2.INTER_NEAREST)
        cv2.putText(sheet, f"{labels[i]}->{probs[i].argmax()} {probs[i].max():.2f}",
                    (x + 2, y - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, 255, 1, cv2.LINE_AA)
    return sheet


def handwriting_scores(models: dict, directory: str | Path = HANDWRITING_DIR,
                       misses_dir: str | Path | None = None, misses_model: str = "cnn") -> dict:
    """Accuracy per dev set and model, ours and the naive whole-image resize.

    Returns ``{set: {"n", "ms_per_image", "ours": {model: acc}, "one_view": {model: acc},
    "naive": {model: acc}, "no_digit": count}}``. ``ours`` is what the app and ``predict``
    do (preprocessing, then the average over the digit's views); ``one_view`` reads only
    the preprocessed image. An input where no digit is found counts as wrong. With
    ``misses_dir``, ``misses_model``'s mistakes on each set are drawn there as
    ``misses-<set>.png`` (:func:`misses_sheet`), whose path is added as ``"misses"``.
    """
    results = {}
    for name, images, labels in dev_sets(directory):
        t0 = time.perf_counter()
        finals, found = [], []
        canvas = name.endswith("-canvas")  # drawn on the app's canvas: read as the app does
        for img in images:
            try:
                finals.append(preprocess(img, canvas=canvas).final)
                found.append(True)
            except NoDigitError:
                finals.append(np.zeros((28, 28), np.float32))
                found.append(False)
        ms = 1000 * (time.perf_counter() - t0) / len(images)
        found_arr = np.array(found)
        finals = np.stack(finals)

        def accuracy(probs: dict, found: np.ndarray = found_arr) -> dict:
            return {m: float(((p.argmax(1) == labels) & found).mean()) for m, p in probs.items()}

        ours = predict_views(models, finals)
        results[name] = {
            "n": len(labels), "ms_per_image": ms, "no_digit": int((~found_arr).sum()),
            "ours": accuracy(ours),
            "one_view": accuracy(predict_all(models, finals)),
            "naive": accuracy(predict_all(models, np.stack([naive_input(i) for i in images])),
                              np.ones(len(labels), bool)),
        }
        if misses_dir is not None and misses_model in ours:
            path = Path(misses_dir) / f"misses-{name}.png"
            sheet = misses_sheet(images, finals, labels, ours[misses_model])
            path.unlink(missing_ok=True)  # an old sheet would show misses no longer made
            if sheet.size:
                path.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(path), sheet)
                results[name]["misses"] = path
    return results


def sequence_scores(models: dict, directory: str | Path = HANDWRITING_DIR, n: int = 200) -> dict:
    """How well rows of several digits are read (:func:`~mnist_core.datasets.handwriting.sequence_sets`).

    Returns ``{set: {"n", "ms_per_row", "count": share of rows split into the right
    number of digits, "exact": {model: share of rows read exactly}, "digits": {model:
    share of digits read right, in rows split into the right number}}}``. A row where no
    digit is found counts as wrong everywhere.
    """
    results = {}
    for name, images, labels in sequence_sets(directory, n=n):
        t0 = time.perf_counter()
        answers = []
        canvas = name.endswith("-canvas")  # drawn on the app's canvas: read as the app does
        for img in images:
            try:
                readings = read_digits(img, models, canvas=canvas)
            except NoDigitError:
                readings = []
            answers.append({m: "".join(str(r.digit(m)) for r in readings) for m in models})
        ms_per_row = 1000 * (time.perf_counter() - t0) / len(images)
        counted = [len(a[next(iter(models))]) == len(lab) for a, lab in zip(answers, labels)]
        digits_right = {m: sum(sum(x == y for x, y in zip(a[m], lab))
                               for a, lab, ok in zip(answers, labels, counted) if ok)
                        for m in models}
        digits_total = sum(len(lab) for lab, ok in zip(labels, counted) if ok)
        results[name] = {
            "n": len(labels), "ms_per_row": ms_per_row, "count": float(np.mean(counted)),
            "exact": {m: float(np.mean([a[m] == lab for a, lab in zip(answers, labels)]))
                      for m in models},
            "digits": {m: digits_right[m] / max(1, digits_total) for m in models},
        }
    return results


def _sequence_table(scores: dict, names: list[str]) -> list[str]:
    rows = ["| set | rows | split right | " + " | ".join(f"{n}: rows / digits" for n in names) +
            " | ms/row |", "|---|---|---|" + "---|" * len(names) + "---|"]
    for set_name, s in scores.items():
        rows.append(f"| {set_name} | {s['n']} | {s['count']:.1%} | " +
                    " | ".join(f"{s['exact'][n]:.1%} / {s['digits'][n]:.1%}" for n in names) +
                    f" | {s['ms_per_row']:.0f} |")
    return rows


def _mnist_table(models: dict, data) -> list[str]:
    x = to_float(data.x_test)
    y = data.y_test
    rows = ["| model | test accuracy | with its views | params | train s | "
            "1 image, fast path ms (1 BLAS thread, as the app) | 1 image, `model.predict` ms | "
            "10,000 images ms (Keras models: ONNX Runtime) |",
            "|---|---|---|---|---|---|---|---|"]
    for name, m in models.items():
        acc = float((m.predict_proba(x).argmax(1) == y).mean())
        viewed = float((predict_views({name: m}, x)[name].argmax(1) == y).mean())
        with tuning.blas_threads():  # as the app's server runs
            single = time_single(m.predict_proba, x)
        slow = f"{time_single(m.slow_predict_fn(), x, 20):.2f}" if m.slow_predict_fn() else "n/a"
        batch = time_batch(m.predict_proba, x)
        train_s = m.metrics.get("train_seconds")
        train = f"{train_s:.0f}" if train_s is not None else "-"
        rows.append(f"| {name} | {acc:.2%} | {viewed:.2%} | {m.count_params():,} | {train} | "
                    f"{single:.2f} | {slow} | {batch:.0f} |")
    total = sum(m.metrics.get("train_seconds") or 0 for m in models.values())
    rows.append("")
    rows.append(f"Training all models took {total:.0f} s in total ({total / 60:.1f} min), as "
                f"recorded by `train` in each model's metrics.")
    return rows


def _handwriting_table(scores: dict, names: list[str]) -> list[str]:
    rows = ["| set | n | " + " | ".join(names) + " | CNN, one view | naive CNN | "
            "preprocess ms/image |",
            "|---|---|" + "---|" * len(names) + "---|---|---|"]
    for set_name, s in scores.items():
        one = f"{s['one_view']['cnn']:.2%}" if "cnn" in s["one_view"] else "-"
        naive_cnn = f"{s['naive']['cnn']:.1%}" if "cnn" in s["naive"] else "-"
        rows.append(f"| {set_name} | {s['n']} | " +
                    " | ".join(f"{s['ours'][n]:.2%}" for n in names) +
                    f" | {one} | {naive_cnn} | {s['ms_per_image']:.1f} |")
    return rows


def _writers_table(models: dict, names: list[str]) -> list[str]:
    """Held-out writers of handwriting-train (never trained on), per writer."""
    from .training import writers

    try:
        inputs = writers.held_out_inputs()
    except writers.WritersMissing as exc:
        return [f"(held-out writers skipped: {exc})"]
    scores = writers.score(models, inputs)
    held = sorted(set(next(iter(inputs.values()))[3].tolist()))
    rows = [f"The {len(held)} writers of handwriting-train that no model trained on "
            f"({', '.join(held)}), each of their digits drawn once on the canvas and once as "
            "a photo of ink on paper, read as the app reads them. Per model: accuracy over "
            "all their digits / the worst writer's / the worst tenth of writers'.", "",
            "| set | n | " + " | ".join(f"{n}: mean / worst / worst tenth" for n in names) + " |",
            "|---|---|" + "---|" * len(names)]
    for set_name, per_model in scores.items():
        n = len(inputs[set_name][2])
        rows.append(f"| {set_name} | {n} | " + " | ".join(
            f"{per_model[m]['mean']:.2%} / {per_model[m]['worst']:.2%} / "
            f"{per_model[m]['worst_tenth']:.2%}" for m in names) + " |")
    return rows


def run_bench(args) -> int:
    t_start = time.perf_counter()
    rss_before = _rss_mb()
    models = load_models(args.artifacts)
    rss_loaded = _rss_mb()
    names = list(models)
    lines = ["# Benchmark results", "",
             f"Measured by `python -m mnist_core {' '.join(shlex.quote(a) for a in sys.argv[1:])}` "
             f"on {_dt.date.today().isoformat()}, {platform.processor() or platform.machine()}, "
             f"{len(__import__('os').sched_getaffinity(0))} CPU cores, Python "
             f"{platform.python_version()}.", ""]
    if not args.skip_mnist:
        data = load_dataset(args.data)
        lines += ["## MNIST test set (10,000 images)", "", *_mnist_table(models, data), ""]
    lines += ["## Held-out writers (handwriting-train)", "", *_writers_table(models, names), ""]
    hw_dir = Path(args.handwriting) if args.handwriting else HANDWRITING_DIR
    if hw_dir.is_dir():
        scores = handwriting_scores(models, hw_dir, misses_dir=Path(args.out).parent)
        sheets = [f"`{s['misses']}`" for s in scores.values() if "misses" in s]
        lines += ["## Real handwriting (handwriting-dev)", "",
                  "Accuracy of each model as the app reads a digit: this project's "
                  "preprocessing, then the average over the digit's views (the convnets: "
                  "the digit, turned 8 degrees either way, 0.9x and 1.1x; every model: "
                  "the same again narrowed to half its width when the digit is square, as "
                  "scans stretched to fill a box are). 'CNN, one view' reads only the "
                  "preprocessed image; 'naive CNN' is the same CNN fed the whole image "
                  "resized to 28x28, as most digit apps do. "
                  "Chars74K strokes are rendered as canvas drawings (brush 12-28 px, height "
                  "40-85% of 280 px, random position) and as JPEG photos of ink on unevenly lit "
                  "paper: filling the frame (photo), lying on a darker desk (desk), on ruled "
                  "or squared paper (ruled); USPS and Semeion scans are upscaled to 64x64.", "",
                  *_handwriting_table(scores, names), "",
                  "The CNN's misses, each shown as given and as the CNN read it, with its "
                  "answer and confidence: " + (", ".join(sheets) or "none") + ".", "",
                  "### Several digits at once", "",
                  "Rows of 2-5 Chars74K digits (drawn at random from the 550), written one "
                  "after another (gaps 15-45% of a digit's height, wandering baseline) on the "
                  "canvas (brush 8-22 px, so neighbours often touch) and photographed on "
                  "paper, read as the app reads them (`read_digits`). 'split right': rows cut "
                  "into the right number of digits; per model: rows read exactly / digits "
                  "read right in the rows split right.", "",
                  *_sequence_table(sequence_scores(models, hw_dir), names), ""]
    else:
        lines += [f"(handwriting set not found at {hw_dir}; skipped)", ""]
    lines += ["## Memory", "",
              f"Process RSS: {rss_before:.0f} MB before loading, {rss_loaded:.0f} MB with all "
              f"{len(models)} models loaded, peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB "
              f"during the benchmark.", "",
              f"Benchmark wall time: {time.perf_counter() - t_start:.0f} s.", ""]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print("\n".join(lines))
    if args.readme:
        update_readme(Path(args.readme), lines)
    return 0


README_START, README_END = "<!-- bench:start -->", "<!-- bench:end -->"


def update_readme(readme: Path, lines: list[str]) -> None:
    """Replace the block between the bench markers in README with these results."""
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        return
    # Under README's "## Results": drop the page title, demote the sections one level.
    body = "\n".join("#" + line if line.startswith("## ") else line
                     for line in lines if not line.startswith("# "))
    head, rest = text.split(README_START, 1)
    tail = rest.split(README_END, 1)[1]
    readme.write_text(f"{head}{README_START}\n{body}\n{README_END}{tail}")
