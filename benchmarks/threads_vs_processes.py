"""Is it the GIL? The CNN over 28,000 images on two threads (the app's path) against two
forked processes each predicting half (no GIL shared), on the same inputs.

    .venv/bin/python benchmarks/threads_vs_processes.py [--rounds 2]

Prints the wall time of each, alternating; see KAGGLE_SPEED.md for what it showed.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time

import numpy as np

import harness as h
import mnist_core.keras_numpy as kn

MODEL = kn.KerasNumpyModel.load(h.REPO / "artifacts" / "cnn.keras")
X = np.random.default_rng(0).random((28_000, 28, 28), dtype=np.float32)
CHUNK = 1000  # images a process task takes


def _part(start: int) -> np.ndarray:
    return MODEL.predict_proba(X[start:start + CHUNK])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    MODEL.predict_proba(X[:2000])  # warm
    for _ in range(args.rounds):
        kn.WORKERS = 1  # one thread inside each process
        t = time.perf_counter()
        with mp.get_context("fork").Pool(2) as pool:
            forked = np.concatenate(pool.map(_part, range(0, len(X), CHUNK)))
        print(f"2 forked processes: {time.perf_counter() - t:.2f} s")
        kn.WORKERS = 2
        t = time.perf_counter()
        threaded = MODEL.predict_proba(X)
        print(f"2 threads:          {time.perf_counter() - t:.2f} s")
        assert np.array_equal(forked.argmax(1), threaded.argmax(1))


if __name__ == "__main__":
    main()
