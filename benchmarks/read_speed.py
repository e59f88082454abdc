"""A drawing's read, three ways: what the compiled NumPy plan still bought a user.

Until issue 20 a Keras model answered through a plan compiled at load (BatchNorm folded,
3x3 convolutions by Winograd on parity planes, pooling fused into im2col, threads); the
engine now runs each layer's own forward over the folded network. This times what a user
waits for on the Draw page, in a fresh process per version, as the server runs (BLAS at
one thread): a drawing (an MNIST test digit drawn at canvas size, RGBA, its ink in the
alpha channel) preprocessed, every model reading every test-time view, and the
not-a-digit verdict with its far signal. Three versions, alternating round by round:

* ``plan``: the code before the engine (``--before PATH``, a checkout run with
  ``PYTHONPATH=PATH``), its reading plus ``novelty.check`` as its Draw page ran them;
* ``layers``: this checkout (``reading.inference.read_row`` with the maps);
* ``onnx``: this checkout with ONNX Runtime answering every Keras model's views (features
  for the far signal from the NumPy layers, as ONNX's graph gives probabilities only).

    python benchmarks/read_speed.py --before /tmp/before --data ../shared/data/mnist

writes ``benchmarks/READ_SPEED.md``: per version the median and p90 milliseconds a drawing
and the worker's RSS after the reads.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np

import harness as h

VERSIONS = ("plan", "layers", "onnx")


def drawings(data: str, n: int) -> list[np.ndarray]:
    """``n`` MNIST test digits as the canvas sends them: ``(280, 280, 4) uint8``, black
    ink whose alpha is the digit, upscaled 10x."""
    from PIL import Image

    try:
        from mnist_core.datasets.idx import load_idx_folder
    except ImportError:  # the checkout before the wings
        from mnist_core.data import load_idx_folder
    x = load_idx_folder(data)[2][:n]
    out = []
    for digit in x:
        alpha = np.asarray(Image.fromarray(digit).resize((280, 280), Image.BILINEAR))
        rgba = np.zeros((280, 280, 4), np.uint8)
        rgba[..., 3] = alpha
        out.append(rgba)
    return out


def worker(version: str, data: str, n: int) -> None:
    """Time ``n`` drawings' reads in this process; print one JSON line."""
    from threadpoolctl import threadpool_limits
    t0 = time.perf_counter()
    if version == "plan":
        from mnist_core import novelty
        from mnist_core.artifacts import DEFAULT_DIR, load_models
        from mnist_core.inference import read_row
        models, refs = load_models(DEFAULT_DIR), novelty.references(DEFAULT_DIR)

        def read(image):
            whole, digits = read_row(image, models, canvas=True)
            return [novelty.check(d.probs, d.stages.final, models=models, refs=refs)
                    for d in digits]
    else:
        from mnist_core.artifacts.files import DEFAULT_DIR, load_models
        from mnist_core.reading import novelty
        from mnist_core.reading.inference import read_row
        models, refs = load_models(DEFAULT_DIR), novelty.references(DEFAULT_DIR)
        if version == "onnx":
            _every_keras_view_through_onnx()

        def read(image):
            return read_row(image, models, canvas=True, refs=refs)
    loaded = time.perf_counter() - t0
    images = drawings(data, n + 3)
    times = []
    with threadpool_limits(1, "blas"):
        for image in images[:3]:   # warm: caches, the ONNX sessions, first-call costs
            read(image)
        for image in images[3:]:
            t = time.perf_counter()
            read(image)
            times.append((time.perf_counter() - t) * 1000)
    print(json.dumps({"ms": times, "rss_mb": h.rss_mb(), "load_s": loaded}))


def _every_keras_view_through_onnx() -> None:
    """Route every batch of a Keras model through ONNX Runtime (not only 1,024+ images)."""
    from mnist_core.engine import onnx_graph
    from mnist_core.models.model import KerasModel, temper
    every = onnx_graph.OnnxConfig(min_batch=1)

    def predict_proba(self, x):
        net = self.inference
        p = onnx_graph.predict(self, net, net.batch(x), every)
        return temper(p, self.temperature)

    def predict_with_features(self, x):
        return predict_proba(self, x), self.inference.predict_with_features(x)[1]

    KerasModel.predict_proba = predict_proba
    KerasModel.predict_with_features = predict_with_features


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", help="a checkout of the code before the engine (plan)")
    ap.add_argument("--data", default=str(h.REPO.parent / "shared" / "data" / "mnist"))
    ap.add_argument("--drawings", type=int, default=60, help="drawings per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--worker", choices=VERSIONS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker, args.data, args.drawings)
    load = h.os.getloadavg()
    versions = [v for v in VERSIONS if v != "plan" or args.before]
    results = {v: {"ms": [], "rss_mb": [], "load_s": []} for v in versions}
    for _ in range(args.rounds):
        for v in versions:
            env = {"PYTHONPATH": args.before} if v == "plan" else {"PYTHONPATH": str(h.REPO)}
            out = h.run_json([sys.executable, __file__, "--worker", v, "--data", args.data,
                              "--drawings", str(args.drawings)], env, timeout=900)
            for key in results[v]:
                results[v][key] += out[key] if key == "ms" else [out[key]]
    rows = []
    for v in versions:
        ms = sorted(results[v]["ms"])
        rows.append([v, f"{statistics.median(ms):.1f}", f"{ms[int(0.9 * (len(ms) - 1))]:.1f}",
                     f"{statistics.median(results[v]['rss_mb']):.0f}",
                     f"{statistics.median(results[v]['load_s']):.2f}"])
    text = h.write_report(h.REPO / "benchmarks" / "READ_SPEED.md", "A drawing's read: plan, layers, ONNX", [
        h.measured(h.command(), "onnxruntime", load_before=load), "",
        f"{args.drawings} drawings a round, {args.rounds} rounds, versions alternating; "
        "one fresh process per version and round, BLAS at one thread (as the server).", "",
        *h.table(["version", "median ms a drawing", "p90 ms", "RSS after, MB",
                  "import + load, s"], rows)])
    print(text)


if __name__ == "__main__":
    main()
