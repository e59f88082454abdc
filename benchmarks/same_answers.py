"""Same answers before and after a change of the core: ``predict --json`` in two checkouts.

Writes MNIST test digits as PNG files (28x28 grey, white on black) and the same digits as
canvas drawings (280x280 RGBA, the ink in the alpha channel, as the Draw page sends them),
runs ``python -m mnist_core predict --json`` on all of them in this checkout and in
``--before PATH`` (another checkout, same artifacts), and prints each model's largest
probability difference and how many predicted digits differ.

    python benchmarks/same_answers.py --before /tmp/before --data ../shared/data/mnist
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

import harness as h
from mnist_core.datasets.idx import load_idx_folder


def write_inputs(data: str, n: int, folder: Path) -> list[str]:
    """``n`` test digits as MNIST PNGs and ``n`` as canvas drawings; their paths."""
    x = load_idx_folder(data)[2][:n]
    paths = []
    for i, digit in enumerate(x):
        Image.fromarray(digit).save(folder / f"mnist{i:04d}.png")
        rgba = np.zeros((280, 280, 4), np.uint8)
        rgba[..., 3] = np.asarray(Image.fromarray(digit).resize((280, 280), Image.BILINEAR))
        Image.fromarray(rgba, "RGBA").save(folder / f"drawn{i:04d}.png")
        paths += [str(folder / f"mnist{i:04d}.png"), str(folder / f"drawn{i:04d}.png")]
    return paths


def answers(checkout: str, paths: list[str]) -> list[dict]:
    done = subprocess.run([sys.executable, "-m", "mnist_core", "predict", "--json",
                           "--artifacts", str(h.REPO / "artifacts"), *paths],
                          cwd=checkout, env={**os.environ, "PYTHONPATH": checkout},
                          capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode not in (0, 1):
        raise RuntimeError(done.stderr[-2000:])
    return [json.loads(line) for line in done.stdout.splitlines()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", required=True, help="a checkout of the code before")
    ap.add_argument("--data", default=str(h.REPO.parent / "shared" / "data" / "mnist"))
    ap.add_argument("--digits", type=int, default=500, help="test digits (each twice)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_inputs(args.data, args.digits, Path(tmp))
        before, after = answers(args.before, paths), answers(str(h.REPO), paths)
    worst: dict[str, float] = {}
    flipped: dict[str, int] = {}
    for b, a in zip(before, after, strict=True):
        for name, m in b.get("models", {}).items():
            pb, pa = np.array(m["probabilities"]), np.array(a["models"][name]["probabilities"])
            worst[name] = max(worst.get(name, 0.0), float(np.abs(pb - pa).max()))
            flipped[name] = flipped.get(name, 0) + int(m["digit"] != a["models"][name]["digit"])
    print(h.measured(h.command()))
    print(f"{len(paths)} images ({args.digits} MNIST test digits, the same drawn on the canvas)")
    for name in worst:
        print(f"{name}: largest probability difference {worst[name]:.1e}, "
              f"{flipped[name]} predicted digits differ")


if __name__ == "__main__":
    main()
