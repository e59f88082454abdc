"""Weight averaging over a training's last epochs (SWA: Izmailov et al. 2018).

The model kept is the mean of the weights each of the last ``TrainConfig.average_epochs``
epochs ended on: several snapshots of one training averaged into one network of the same
size (so reading a digit costs what it did), found in a wider, flatter part of the loss
than any single snapshot. BatchNorm's statistics belong to the weights they were measured
under, so they are re-estimated for the averaged weights afterwards (the engine's
:meth:`~mnist_core.engine.network.Sequential.precise_batchnorm`, or
:func:`keras_precise_batchnorm`).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .config import TrainConfig


class WeightAverage:
    """The running mean of the weights at the end of each of ``cfg``'s last
    ``average_epochs`` epochs (fewer than 2: nothing is averaged)."""

    def __init__(self, cfg: TrainConfig):
        n = cfg.average_epochs if cfg.average_epochs >= 2 else 0
        self.first = cfg.epochs - min(n, cfg.epochs) if n else None
        self.last = cfg.epochs - 1
        self.count = 0
        self._sum: list[np.ndarray] | None = None
        self._dtypes: list[np.dtype] = []

    def wants(self, epoch: int) -> bool:
        """Whether the weights at the end of ``epoch`` (0-based) join the average."""
        return self.first is not None and epoch >= self.first

    def offer(self, epoch: int, stopped: bool, weights: Callable[[], list[np.ndarray]]
              ) -> bool:
        """The end of ``epoch`` (0-based; ``stopped``: a stop ended it): ``weights()``
        joins the average when wanted; returns whether the network should now take
        :meth:`mean` (the last epoch, at least two snapshots, not stopped: a stopped
        training keeps its own weights)."""
        if stopped:
            return False
        if self.wants(epoch):
            self.add(weights())
        return epoch == self.last and self.count >= 2

    def add(self, weights: list[np.ndarray]) -> None:
        """Add one snapshot: the arrays of every weight, in one fixed order (copied)."""
        if self._sum is None:
            self._dtypes = [np.asarray(w).dtype for w in weights]
            self._sum = [np.array(w, np.float64) for w in weights]
        else:
            for total, w in zip(self._sum, weights, strict=True):
                total += w
        self.count += 1

    def mean(self) -> list[np.ndarray]:
        """The average of the snapshots added, each array in its own dtype and shape."""
        if not self.count:
            raise ValueError("no weights were added to the average")
        return [(total / self.count).astype(dtype)
                for total, dtype in zip(self._sum, self._dtypes)]


def keras_precise_batchnorm(model, x: np.ndarray, batch_size: int) -> int:
    """Re-estimate every BatchNormalization's moving mean and variance of the Keras
    ``model`` over the images ``x`` (``(N, 28, 28)`` float32 in [0, 1]): one pass in
    training mode with dropout off, each batch normalised by its own statistics as in
    training, the statistics the mean over the batches (a cumulative average, as
    PyTorch's ``swa_utils.update_bn``). Trainable weights are not touched. Returns how many
    images were used (0: the model has no BatchNorm)."""
    import keras

    bn = [layer for layer in model.layers
          if isinstance(layer, keras.layers.BatchNormalization)]
    if not bn or not len(x):
        return 0
    dropout = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    saved = [layer.momentum for layer in bn], [layer.rate for layer in dropout]
    try:
        for layer in dropout:
            layer.rate = 0.0
        for k, start in enumerate(range(0, len(x), batch_size)):
            for layer in bn:
                layer.momentum = k / (k + 1)  # the k-th batch weighs 1/(k+1): a plain mean
            model(np.asarray(x[start:start + batch_size], np.float32)[..., None], training=True)
    finally:
        for layer, momentum in zip(bn, saved[0]):
            layer.momentum = momentum
        for layer, rate in zip(dropout, saved[1]):
            layer.rate = rate
    return len(x)
