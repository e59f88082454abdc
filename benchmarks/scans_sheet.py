"""Contact sheet of the scan effects the training adds, to look at before training on them.

    python benchmarks/scans_sheet.py [--data MNIST] [--writers PATH] [--out benchmarks/scans.png]

One row per effect of :mod:`mnist_core.training.augment`'s scanned-paper section, each on
the same 8 digits (4 MNIST training digits, 4 real writers' from handwriting-train): left
as they come in (white ink on black, the digit ~80 px tall), right with only that effect
(a scanner's resolution shown in its own coarse pixels). The last two rows are whole scans
(:func:`~mnist_core.training.augment.scan`, every effect drawn at random) as the model
reads them: 28x28 after the app's fitting, MNIST digits first, then writers' strokes read
by the app's full preprocessing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

import harness  # noqa: F401 - puts the repository on sys.path
from mnist_core.datasets.data import load_dataset, to_float
from mnist_core.training import augment as a
from mnist_core.training import writers

TILE = 56       # pixels per digit in the sheet
PER_SIDE = 8    # digits per row on each side
LABEL_W = 150   # room for the row's name

EFFECTS = {
    "stroke_thickness": lambda img, rng: a.stroke_thickness(img, rng),
    "pen_pressure": lambda img, rng: a.pen_pressure(img, rng),
    "ink_bleed": lambda img, rng: a.ink_bleed(img, rng),
    "resample_dpi": lambda img, rng: a.resample_dpi(img, rng),
    "scan_levels": lambda img, rng: a.scan_levels(img, rng),
    "form_box": lambda img, rng: a.form_box(img, rng),
}


def _tile(img: np.ndarray) -> np.ndarray:
    """Any ``(h, w) float32 [0, 1]`` as a TILE x TILE uint8 tile, aspect kept, its own
    pixels visible (nearest-neighbour enlarging)."""
    h, w = img.shape
    s = TILE / max(h, w)
    small = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))),
                       interpolation=cv2.INTER_NEAREST if s >= 1 else cv2.INTER_AREA)
    out = np.zeros((TILE, TILE), np.float32)
    y, x = (TILE - small.shape[0]) // 2, (TILE - small.shape[1]) // 2
    out[y:y + small.shape[0], x:x + small.shape[1]] = small
    return np.round(np.clip(out, 0, 1) * 255).astype(np.uint8)


def _row(name: str, left: list[np.ndarray], right: list[np.ndarray]) -> np.ndarray:
    tiles = [_tile(t) for t in left] + [np.full((TILE, 8), 0.5)] + [_tile(t) for t in right]
    row = np.hstack([np.zeros((TILE, LABEL_W), np.uint8)] +
                    [t.astype(np.uint8) if t.dtype == np.uint8 else (t * 255).astype(np.uint8)
                     for t in tiles])
    cv2.putText(row, name, (4, TILE // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, 255, 1, cv2.LINE_AA)
    return row


def sheet(mnist: np.ndarray, pen: writers.PenDigits, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    digits = mnist[rng.choice(len(mnist), PER_SIDE, replace=False)]
    picks = rng.choice(len(pen.labels), PER_SIDE, replace=False)
    work = a.SCAN.work_height
    sources = [cv2.resize(d, None, fx=work / 20, fy=work / 20, interpolation=cv2.INTER_LINEAR)
               for d in digits[:PER_SIDE // 2]]
    sources += [a.ink_strokes(pen.strokes[i], rng, work) for i in picks[:PER_SIDE // 2]]
    rows = []
    for name, fn in EFFECTS.items():
        fx = np.random.default_rng((seed, len(rows)))
        rows.append(_row(name, sources, [fn(np.clip(s, 0, 1), fx) for s in sources]))
    fx = np.random.default_rng((seed, 100))
    rows.append(_row("MNIST scanned", list(digits),
                     list(a.scanned_digits(np.repeat(digits, 1, 0), fx, 1.0))))
    fx = np.random.default_rng((seed, 101))
    as_written = [writers.model_input(writers.render(pen.strokes[i], "canvas", fx), "canvas")
                  for i in picks]
    scanned = [writers.model_input(writers.render(pen.strokes[i], "scan", fx), "scan")
               for i in picks]
    blank = np.zeros((28, 28), np.uint8)
    rows.append(_row("writers scanned", [(i if i is not None else blank) / 255 for i in as_written],
                     [(i if i is not None else blank) / 255 for i in scanned]))
    gap = np.full((4, rows[0].shape[1]), 60, np.uint8)
    return np.vstack([r for row in rows for r in (row, gap)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="MNIST folder (default $MNIST_DATA)")
    ap.add_argument("--writers", default=None, help="handwriting-train folder or file")
    ap.add_argument("--out", default=str(Path(__file__).with_name("scans.png")))
    args = ap.parse_args()
    mnist = to_float(load_dataset(args.data).x_train[:5000])
    img = sheet(mnist, writers.load(args.writers))
    cv2.imwrite(args.out, img)
    print(f"wrote {args.out}: left {PER_SIDE} as they come in, right with the effect")


if __name__ == "__main__":
    main()
