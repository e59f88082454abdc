"""One Train live epoch, for timing a whole process before and after a change of the core.

Trains registry model ``MODEL``'s live architecture for one epoch as Train live's defaults
do (10,000 images, batch 128, no augmentation) through the NumPy loop of whichever
checkout is first on ``PYTHONPATH`` (this layout, or the one before the engine), and
prints the wall seconds and validation accuracy. Time it from outside, A against B:

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=. python benchmarks/live_epoch.py cnn
    OPENBLAS_NUM_THREADS=1 PYTHONPATH=/tmp/before python benchmarks/live_epoch.py cnn
"""

from __future__ import annotations

import sys
import time

import harness as h

name = sys.argv[1] if len(sys.argv) > 1 else "cnn"
data = sys.argv[2] if len(sys.argv) > 2 else str(h.REPO.parent / "shared" / "data" / "mnist")
try:
    from mnist_core.artifacts.registry import REGISTRY
    from mnist_core.datasets.data import load_dataset
    from mnist_core.training.augment import NONE
    from mnist_core.training.config import TrainConfig
    from mnist_core.training.train import train_network as train
except ImportError:  # the checkout before the engine
    from mnist_core.augment import NONE
    from mnist_core.data import load_dataset
    from mnist_core.keras_numpy_train import train_keras_numpy
    from mnist_core.registry import REGISTRY
    from mnist_core.train import TrainConfig, train_numpy
    train = train_numpy if name == "numpy" else train_keras_numpy

cfg = TrainConfig(epochs=1, batch_size=128, lr=3e-3, n_train=10_000, augment=NONE, seed=0)
dataset, t0 = load_dataset(data), time.perf_counter()
result = train(dataset, cfg, REGISTRY[name].live_arch)
print(f"{name}: {time.perf_counter() - t0:.2f} s, validation {result.history[-1].val_accuracy:.3f}")
