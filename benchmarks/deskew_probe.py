"""Probe: does a deskewed view of each digit, read beside the app's views, help the models?

    python benchmarks/deskew_probe.py [--artifacts artifacts]

Deskewing (shearing each digit so the second moment of its ink says it stands upright) is
the classic cure for MLPs on MNIST (LeCun et al. 1998). The models here were trained on
slanted digits (``AugmentConfig.shear``) and not deskewed, so the deskewed digit is one
more test-time view, not a new input space. Each shipped model reads the held-out writers
(canvas, photo) and the dev scans (USPS, Semeion) three ways: as the app reads (its own
views), the app's reading averaged with the same reading of the deskewed digit, and the
deskewed digit alone. Prints a Markdown table of accuracies. Inputs are
:mod:`scans_ablation`'s (its cache). A probe for SCANS_TRAINING.md, not a reading of the
app.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np

import harness as h
import scans_ablation as sa
from mnist_core.artifacts.files import load_models
from mnist_core.models.views import predict_views

MIN_MU02 = 1e-2  # a digit with less vertical spread than this has no slant to measure


def deskew(img: np.ndarray) -> np.ndarray:
    """``(28, 28) float32 [0, 1]`` -> the same digit sheared upright about its centre of
    mass's row (x += skew * (y - cy), skew = mu11 / mu02), same shape and range."""
    m = cv2.moments(img)
    if abs(m["mu02"]) < MIN_MU02:
        return img
    skew, cy = m["mu11"] / m["mu02"], m["m01"] / m["m00"]
    shear = np.float32([[1, skew, -cy * skew], [0, 1, 0]])
    return cv2.warpAffine(img, shear, img.shape[::-1],
                          flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifacts", default=str(h.REPO / "artifacts"))
    args = ap.parse_args()
    inputs, _ = sa.all_inputs(SimpleNamespace(dev_only=False, writers=None,
                                              dev=str(sa.DEV_DIR)))[True]
    straight = {s: np.stack([deskew(i) for i in x]).astype(np.float32)
                for s, (x, _, _) in inputs.items()}
    print("| model | " + " | ".join(inputs) + " |")
    print("|---|" + "---|" * len(inputs))
    for name, model in load_models(Path(args.artifacts)).items():
        cells = []
        for s, (x, found, y) in inputs.items():
            app = predict_views({name: model}, x)[name]
            upright = predict_views({name: model}, straight[s])[name]
            acc = [float(((p.argmax(1) == y) & found).mean())
                   for p in (app, (app + upright) / 2, upright)]
            cells.append(" / ".join(f"{a:.2%}" for a in acc))
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
