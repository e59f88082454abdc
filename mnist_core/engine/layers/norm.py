"""BatchNormalization: the batch's statistics in training, the moving ones at inference."""
from __future__ import annotations

import numpy as np

from .base import INFER, Layer, _initializer


class BatchNormalization(Layer):
    """Per channel (last axis): training ``gamma * (x - mean_B) / sqrt(var_B + eps) +
    beta`` over the batch's statistics (biased variance), which also move the moving ones
    (:meth:`update_stats`); inference the same with the moving statistics."""

    kind = "BatchNormalization"
    built_by_keras = True
    axis: int = -1  # as a file gives it: -1 or the input's last axis (checked by out_shape)

    def __init__(self, momentum: float = 0.99, epsilon: float = 1e-3, scale: bool = True,
                 center: bool = True):
        self.momentum, self.epsilon = float(momentum), float(epsilon)
        self.scale, self.center = bool(scale), bool(center)
        self.gamma = self.beta = self.moving_mean = self.moving_var = None

    @property
    def weights(self):
        return ([self.gamma] if self.scale else []) + ([self.beta] if self.center else []) \
            + [self.moving_mean, self.moving_var]

    @property
    def n_trainable(self):
        return int(self.scale) + int(self.center)

    def set_weights(self, weights):
        w = list(weights)
        if len(w) != self.n_trainable + 2:
            raise ValueError(f"BatchNormalization {self.name!r}: expected "
                             f"{self.n_trainable + 2} weight arrays, found {len(w)}")
        self.gamma = w.pop(0) if self.scale else None
        self.beta = w.pop(0) if self.center else None
        self.moving_mean, self.moving_var = w

    def out_shape(self, in_shape):
        if self.axis not in (-1, len(in_shape)):  # axis counts the batch axis
            raise ValueError("only BatchNormalization over the last axis is supported")
        return in_shape

    def weight_shapes(self, in_shape):
        return [(in_shape[-1],)] * (self.n_trainable + 2)

    def init(self, in_shape, rng):
        c = in_shape[-1]
        self.gamma = np.ones(c, np.float32) if self.scale else None
        self.beta = np.zeros(c, np.float32) if self.center else None
        self.moving_mean, self.moving_var = np.zeros(c, np.float32), np.ones(c, np.float32)

    def affine(self) -> tuple[np.ndarray, np.ndarray]:
        """Inference as ``x * scale + shift``, float64 per channel."""
        gamma = 1.0 if self.gamma is None else self.gamma.astype(np.float64)
        beta = 0.0 if self.beta is None else self.beta.astype(np.float64)
        scale = gamma / np.sqrt(self.moving_var.astype(np.float64) + self.epsilon)
        return scale, beta - self.moving_mean * scale

    def forward(self, x, ctx=INFER):
        if not ctx.train:
            scale, shift = (v.astype(x.dtype) for v in self.affine())
            return x * scale + shift, [x, scale]  # a list: training's cache is a tuple
        # Per channel over every other axis: as rows of a (pixels, channels) matrix,
        # which NumPy reduces several times faster than over three axes.
        x2 = x.reshape(-1, x.shape[-1])
        mean = x2.mean(axis=0)
        x_hat = x2 - mean
        var = np.einsum("ij,ij->j", x_hat, x_hat) / len(x2)  # biased, as Keras's moments
        inv = 1.0 / np.sqrt(var + self.epsilon)
        x_hat *= inv  # in place: each pass over a conv's output is ~2 ms at 128 images
        y = x_hat * self.gamma if self.scale else x_hat.copy()
        if self.center:
            y += self.beta
        return y.reshape(x.shape), (x_hat, inv, mean, var)

    def backward(self, cache, g, need_dx=True):
        if not isinstance(cache, tuple):  # inference: a per-channel affine map
            x, scale = cache
            g2 = g.reshape(-1, g.shape[-1])
            x_hat = (x.reshape(g2.shape) - self.moving_mean) / np.sqrt(
                self.moving_var.astype(x.dtype) + x.dtype.type(self.epsilon))
            return (g * scale if need_dx else None), \
                ([np.einsum("ij,ij->j", g2, x_hat)] if self.scale else []) + \
                ([g2.sum(axis=0)] if self.center else [])
        x_hat, inv, _, _ = cache
        g2 = g.reshape(-1, g.shape[-1])
        dbeta = g2.sum(axis=0)
        dgamma = np.einsum("ij,ij->j", g2, x_hat)
        dx = None
        if need_dx:  # gamma / std * (g - mean(g) - x_hat * mean(g * x_hat)), in place
            m = len(g2)
            dx = g2 - dbeta / m
            dx -= x_hat * (dgamma / m)
            dx *= (self.gamma if self.scale else 1.0) * inv
            dx = dx.reshape(g.shape)
        return dx, ([dgamma] if self.scale else []) + ([dbeta] if self.center else [])

    def update_stats(self, cache) -> None:
        """Move the moving mean and variance towards a training batch's, as Keras does:
        ``moving = moving * momentum + batch * (1 - momentum)``."""
        _, _, mean, var = cache
        for moving, batch in ((self.moving_mean, mean), (self.moving_var, var)):
            moving *= self.momentum
            moving += (batch * (1 - self.momentum)).astype(moving.dtype)

    def keras_config(self):
        return {"axis": -1, "momentum": self.momentum, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale,
                "beta_initializer": _initializer("Zeros"),
                "gamma_initializer": _initializer("Ones"),
                "moving_mean_initializer": _initializer("Zeros"),
                "moving_variance_initializer": _initializer("Ones"),
                "beta_regularizer": None, "gamma_regularizer": None, "beta_constraint": None,
                "gamma_constraint": None, "synchronized": False, "renorm": False,
                "renorm_clipping": None, "renorm_momentum": 0.99}

    @classmethod
    def from_keras(cls, cfg):
        axis = cfg.get("axis", -1)
        axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
        if axis not in (-1, 1, 2, 3):
            raise ValueError("only BatchNormalization over the last axis is supported")
        layer = cls(cfg.get("momentum", 0.99), cfg.get("epsilon", 1e-3), cfg.get("scale", True),
                    cfg.get("center", True))
        layer.axis = axis
        return layer

    def onnx(self, g, x):
        scale, shift = self.affine()
        shape = (-1, 1, 1) if g.is_channels_first(x) else (-1,)
        return g.op("Add", [g.op("Mul", [x, g.const(scale.reshape(shape))]),
                            g.const(shift.reshape(shape))])
