"""What a Kaggle-size batch leaves in a process like the app's server: the shipped models
loaded, the server's malloc settings, then the CNN over 28,000 random digits twice, the way
the Kaggle page predicts them (``kaggle.submission_csv``). Prints the wall time of each
run, the resident memory after it and the peak.

    MALLOC_MMAP_THRESHOLD_=1048576 MALLOC_TRIM_THRESHOLD_=2097152 \\
        .venv/bin/python benchmarks/batch_memory.py
    # the same with MNIST_STUDIO_BATCH_ENGINE=numpy: the NumPy plan instead of ONNX Runtime

(The two malloc variables are what ``mnist_core.tuning.return_big_buffers`` sets with ``mallopt`` in
the server.)
"""

from __future__ import annotations

import gc
import os
import time

import numpy as np

import harness as h
from mnist_core.artifacts.files import load_models
from mnist_core.classroom.kaggle import submission_csv


def main() -> None:
    models = load_models(h.REPO / "artifacts")
    x = (np.random.default_rng(0).random((28_000, 28, 28)) * 255).astype(np.uint8)
    cnn = models["cnn"]
    cnn.predict_proba(np.zeros((1, 28, 28), np.float32))
    engine = os.environ.get("MNIST_STUDIO_BATCH_ENGINE") or "default (ONNX Runtime if installed)"
    print(f"engine {engine}; RSS before {h.rss_mb():.0f} MB")
    for i in range(2):
        t = time.perf_counter()
        submission_csv(cnn.predict_proba, x)
        dt = time.perf_counter() - t
        gc.collect()
        print(f"run {i + 1}: {dt:.2f} s, RSS after {h.rss_mb():.0f} MB, "
              f"peak {h.peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
