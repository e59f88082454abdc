"""The optimisers: each updates a list of weight arrays in place, one step per batch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AdamConfig:
    """Adam's constants: Keras's defaults (training sets only the rate and the decay)."""

    beta_1: float = 0.9      # decay of the running mean of gradients
    beta_2: float = 0.999    # decay of the running mean of squared gradients
    epsilon: float = 1e-7    # added to the root of the second moment, as Keras adds it


class AdamW:
    """``keras.optimizers.AdamW`` on NumPy arrays: per step every variable first decays,
    ``w -= w * weight_decay * lr`` (biases and BatchNorm's too, decoupled from the
    gradient), then takes Adam's step ``w -= m * alpha / (sqrt(v) + epsilon)`` with the
    bias correction folded into ``alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)``."""

    def __init__(self, params: list[np.ndarray], weight_decay: float = 0.0,
                 cfg: AdamConfig = AdamConfig()):
        self.params, self.weight_decay, self.cfg = params, weight_decay, cfg
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.iterations = 0

    def step(self, grads: list[np.ndarray], lr: float) -> None:
        c = self.cfg
        self.iterations += 1
        t = self.iterations
        alpha = lr * np.sqrt(1 - c.beta_2 ** t) / (1 - c.beta_1 ** t)
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            f = p.dtype.type
            if self.weight_decay:
                p -= p * f(self.weight_decay * lr)
            m += (g - m) * f(1 - c.beta_1)
            v += (g * g - v) * f(1 - c.beta_2)
            p -= m * f(alpha) / (np.sqrt(v) + f(c.epsilon))


class SGD:
    """Plain gradient descent with decoupled weight decay, as in the original notebooks:
    ``w -= lr * (g + weight_decay * w)`` for kernels (arrays of 2+ axes)."""

    def __init__(self, params: list[np.ndarray], weight_decay: float = 0.0):
        self.params, self.weight_decay = params, weight_decay

    def step(self, grads: list[np.ndarray], lr: float) -> None:
        for p, g in zip(self.params, grads):
            if self.weight_decay and p.ndim > 1:
                g = g + self.weight_decay * p
            p -= p.dtype.type(lr) * g


OPTIMIZERS = {"adam": AdamW, "sgd": SGD}
