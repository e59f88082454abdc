"""Contact sheet of the writing styles the training adds, to look at before training on them.

    python benchmarks/styles_sheet.py [--writers PATH] [--out benchmarks/styles.png]

One row per style of :data:`mnist_core.training.augment.STROKE_STYLES`: real writers' digits of that
class (handwriting-train) as written, then with the style drawn in, each as the model input
(28x28, after the app's preprocessing of a canvas drawing), scaled up.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

import harness  # noqa: F401 - puts the repository on sys.path
from mnist_core.training import writers
from mnist_core.training.augment import STROKE_STYLES

TILE = 56       # pixels per 28x28 input in the sheet
PER_ROW = 8     # digits per style
LABEL_W = 150   # room for the style's name


def sheet(pen: writers.PenDigits, seed: int = 0) -> np.ndarray:
    rows = []
    for name, (digit, fn) in STROKE_STYLES.items():
        rng = np.random.default_rng(seed)
        idx = rng.choice(np.flatnonzero(pen.labels == digit), PER_ROW, replace=False)
        tiles = []
        for styled in (False, True):
            for i in idx:
                strokes = fn(pen.strokes[i], rng) if styled else pen.strokes[i]
                img = writers.model_input(writers.render(strokes, "canvas", np.random.default_rng(i)), "canvas")
                img = np.zeros((28, 28), np.uint8) if img is None else img
                tiles.append(cv2.resize(img, (TILE, TILE), interpolation=cv2.INTER_NEAREST))
            tiles.append(np.full((TILE, 8), 128, np.uint8))
        row = np.hstack([np.zeros((TILE, LABEL_W), np.uint8)] + tiles[:-1])
        cv2.putText(row, name, (4, TILE // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 255, 1, cv2.LINE_AA)
        rows += [row, np.full((4, row.shape[1]), 60, np.uint8)]
    return np.vstack(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--writers", default=None, help="handwriting-train folder or file")
    ap.add_argument("--out", default=str(Path(__file__).with_name("styles.png")))
    args = ap.parse_args()
    img = sheet(writers.load(args.writers))
    cv2.imwrite(args.out, img)
    print(f"wrote {args.out}: left {PER_ROW} as written, right {PER_ROW} with the style")


if __name__ == "__main__":
    main()
