"""A sequential network of :mod:`~mnist_core.engine.layers`: predictions, features,
input gradients and training steps, each written once over the layer list.

Inputs are one image's ``input_shape`` with a batch axis in front: ``(N, 28, 28, 1)``
for the Keras architectures, ``(N, 784)`` for the NumPy MLP; ``(N, 28, 28)`` float32 in
[0, 1] is reshaped to it. Outputs are ``(N, classes)``.
"""

from __future__ import annotations

import copy
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .. import tuning
from .layers import INFER, Activation, BatchNormalization, Context, Dense, Layer, Linear, softmax


def snake_case(kind: str) -> str:
    """Keras's name for a layer class: ``Conv2D`` -> ``conv2d``, ``ReLU`` -> ``re_lu``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", kind).lower().replace("2_d", "2d")


def softmax_cross_entropy(logits: np.ndarray, y: np.ndarray, label_smoothing: float = 0.0
                          ) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of ``softmax(logits)`` ``(N, K)`` against label-smoothed one-hot
    targets of ``y`` ``(N,)`` int (Keras's ``onehot * (1 - s) + s / K``), and its gradient
    with respect to the logits, ``(N, K)`` in the logits' dtype."""
    n, k = logits.shape
    t = np.full((n, k), label_smoothing / k, logits.dtype)
    t[np.arange(n), y] += 1.0 - label_smoothing
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-(t * logp).sum(axis=1).mean()), (np.exp(logp) - t) / n


class Sequential:
    """``layers`` run in order on inputs of ``input_shape`` (one example, no batch axis).

    Training updates the layers' weight arrays in place; :meth:`folded` gives an
    inference copy whose BatchNorms sit inside the layer before them.
    """

    def __init__(self, layers: list[Layer], input_shape: tuple[int, ...], name: str = ""):
        self.layers, self.input_shape, self.name = list(layers), tuple(input_shape), name
        seen: dict[str, int] = {}
        for layer in self.layers:  # Keras's names in a fresh session: conv2d, conv2d_1...
            snake = snake_case(layer.kind)
            k = seen.get(snake, 0)
            seen[snake] = k + 1
            layer.name = layer.name or snake + (f"_{k}" if k else "")

    @classmethod
    def build(cls, layers: list[Layer], input_shape: tuple[int, ...], name: str,
              rng: np.random.Generator) -> "Sequential":
        """A fresh network: every layer's weights drawn from ``rng``, in layer order."""
        shape = tuple(input_shape)
        for layer in layers:
            layer.init(shape, rng)
            shape = layer.out_shape(shape)
        return cls(layers, input_shape, name)

    # -- what it holds --------------------------------------------------------------------

    def shapes(self) -> list[tuple[int, ...]]:
        """Each layer's input shape, then the output's: ``len(layers) + 1`` shapes."""
        out = [self.input_shape]
        for layer in self.layers:
            out.append(layer.out_shape(out[-1]))
        return out

    def params(self) -> list[np.ndarray]:
        """The trainable weights in Keras's ``trainable_weights`` order (live arrays)."""
        return [w for layer in self.layers for w in layer.weights[:layer.n_trainable]]

    def count_params(self) -> int:
        return int(sum(w.size for layer in self.layers for w in layer.weights))

    def of_kind(self, cls: type) -> list:
        return [layer for layer in self.layers if isinstance(layer, cls)]

    def copy(self) -> "Sequential":
        """The same network with its own copies of every weight."""
        layers = []
        for layer in self.layers:
            dup = copy.copy(layer)
            dup.set_weights([np.array(w) for w in layer.weights])
            layers.append(dup)
        return Sequential(layers, self.input_shape, self.name)

    def folded(self) -> "Sequential":
        """An inference copy: each BatchNorm that follows a Dense or Conv2D without an
        activation folded into its weights (``x * scale + shift`` after a linear map is a
        linear map), and an activation layer after such a layer made its activation (one
        pass over the output, not two); the layers' arrays are not touched."""
        layers: list[Layer] = []
        for layer in self.layers:
            last = layers[-1] if layers else None
            if isinstance(last, Linear) and last.activation == "linear":
                if isinstance(layer, BatchNormalization):
                    last.fold(*layer.affine())
                    continue
                if isinstance(layer, Activation):
                    last.activation = layer.activation
                    continue
            layers.append(copy.copy(layer))
        return Sequential(layers, self.input_shape, self.name)

    def batch(self, x: np.ndarray) -> np.ndarray:
        """``x`` as a batch of ``input_shape`` float32 (``(N, 28, 28)`` in, say)."""
        x = np.asarray(x)
        return x.astype(np.float32, copy=False).reshape(-1, *self.input_shape) \
            if x.dtype != np.float64 else x.reshape(-1, *self.input_shape)

    # -- inference ------------------------------------------------------------------------

    def predict_proba(self, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """``x`` ``(N, ...)`` -> the last layer's outputs ``(N, classes)``."""
        return self.predict_with_features(x, batch_size)[0]

    def predict_with_features(self, x: np.ndarray, batch_size: int = 64,
                              workers: int = tuning.CORES) -> tuple[np.ndarray, np.ndarray]:
        """``(outputs (N, classes), features (N, D))`` from one pass: ``features`` is what
        the last Dense layer reads (the last hidden layer, flattened; Model maps and the
        not-a-digit check place a digit by it). Batches of ``batch_size`` (an im2col
        conv's columns stay tens of MB); more than one batch is spread over ``workers``
        threads with BLAS held at one thread each (NumPy releases the GIL in its products:
        whole batches per thread keep the cores busy with no hand-off inside a product,
        where OpenBLAS's own threads thrash as soon as another process wants a core)."""
        x = self.batch(x)
        head = max((i for i, layer in enumerate(self.layers) if isinstance(layer, Dense)),
                   default=len(self.layers))

        def run(start: int) -> tuple[np.ndarray, np.ndarray]:
            h, feats = x[start:start + batch_size], None
            for i, layer in enumerate(self.layers):
                if i == head:
                    feats = h.reshape(len(h), -1)
                h = layer(h)
            return h, feats if feats is not None else np.zeros((len(h), 0), h.dtype)

        starts = range(0, len(x), batch_size)
        if not starts:
            return np.zeros((0, self.shapes()[-1][-1]), x.dtype), np.zeros((0, 0), x.dtype)
        if workers > 1 and len(starts) > 1:
            with tuning.blas_threads(1), ThreadPoolExecutor(min(workers, len(starts))) as pool:
                parts = list(pool.map(run, starts))
        else:
            parts = [run(s) for s in starts]
        return np.concatenate([p for p, _ in parts]), np.concatenate([f for _, f in parts])

    def trace(self, image: np.ndarray) -> list[np.ndarray]:
        """Each layer's output for one example, batch axis dropped (as computed)."""
        h, outs = self.batch(image)[:1], []
        for layer in self.layers:
            h = layer(h)
            outs.append(h[0])
        return outs

    def input_gradient(self, image: np.ndarray, target: int) -> np.ndarray:
        """d log p(target) / d input for one example, inference mode, ``image``'s shape.
        A softmax head is differentiated as a log-softmax (``e_t - p`` on its logits,
        exact where ``p_t`` underflows); any other output as ``log(p + 1e-12)``."""
        x = self.batch(image)[:1]
        softmax_head = getattr(self.layers[-1], "activation", "") == "softmax" and \
            isinstance(self.layers[-1], Linear)
        y, caches = self.forward(x, INFER, logits=softmax_head)
        p = softmax(y) if softmax_head else y
        onehot = np.zeros_like(p)
        onehot[0, target] = 1.0
        g = onehot - p if softmax_head else onehot / (p + 1e-12)
        dx, _ = self.backward(caches, g, need_dx=True)
        return dx.reshape(np.shape(image))

    # -- training -------------------------------------------------------------------------

    def forward(self, x: np.ndarray, ctx: Context = INFER, logits: bool = False
                ) -> tuple[np.ndarray, list[Any]]:
        """``(output, caches)``; ``logits``: the last layer stops before its activation."""
        caches = []
        for i, layer in enumerate(self.layers):
            if logits and i == len(self.layers) - 1:
                x, cache = layer.forward(x, ctx, logits=True)
            else:
                x, cache = layer.forward(x, ctx)
            caches.append(cache)
        return x, caches

    def backward(self, caches: list[Any], g: np.ndarray, need_dx: bool = False
                 ) -> tuple[np.ndarray | None, list[np.ndarray]]:
        """``g`` (d loss / d output, or / d logits after ``forward(logits=True)``) back
        through every layer: ``(d input or None, grads in params() order)``. Each layer's
        cache is dropped once used, so the layers below reuse its memory; BatchNorm's
        batch statistics stay, for :meth:`update_moving_stats`."""
        grads: list[list[np.ndarray]] = []
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            g, layer_grads = layer.backward(caches[i], g, need_dx=need_dx or i > 0)
            grads.append(layer_grads)
            stats = caches[i] if isinstance(layer, BatchNormalization) else None
            caches[i] = (None, None, *stats[2:]) if isinstance(stats, tuple) else None
        return g, [w for layer_grads in reversed(grads) for w in layer_grads]

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray, label_smoothing: float,
                       ctx: Context) -> tuple[float, np.ndarray, list[np.ndarray], list]:
        """One training-mode pass over a batch ``x`` ``(B, *input_shape)``, labels ``y``
        ``(B,)`` int: ``(mean smoothed cross-entropy, logits (B, classes), grads in
        params() order, caches for update_moving_stats)``."""
        last = self.layers[-1] if self.layers else None
        if not isinstance(last, Linear) or last.activation != "softmax":
            raise ValueError("the network must end in a Dense layer with a softmax")
        logits, caches = self.forward(x, ctx, logits=True)
        loss, g = softmax_cross_entropy(logits, y, label_smoothing)
        _, grads = self.backward(caches, g)
        return loss, logits, grads, caches

    def update_moving_stats(self, caches: list[Any]) -> None:
        for layer, cache in zip(self.layers, caches):
            if isinstance(layer, BatchNormalization) and isinstance(cache, tuple):
                layer.update_stats(cache)

    def precise_batchnorm(self, x: np.ndarray, batch_size: int, ctx: Context = Context(True)
                          ) -> int:
        """Set every BatchNorm's moving mean and variance to its input's exact population
        statistics over the images ``x`` ("precise BN", Wu & Johnson 2021): one pass in
        training mode without dropout, ``x`` in equal batches of at most ``batch_size``
        each normalised by its own statistics (as in training), every BatchNorm's batch
        means and biased variances pooled over all of them (the variance with the batches'
        spread of means). ``x``: ``(N, 28, 28)`` uint8 or float. Returns how many images
        were used (0: no BatchNorm, nothing run); trainable weights are not touched."""
        bn = [i for i, layer in enumerate(self.layers) if isinstance(layer, BatchNormalization)]
        if not bn or not len(x):
            return 0
        ctx = Context(True, None, ctx.chunk_bytes)  # no dropout
        parts: dict[int, list] = {i: [] for i in bn}
        for idx in np.array_split(np.arange(len(x)), -(-len(x) // max(1, batch_size))):
            h = x[idx[0]:idx[-1] + 1]
            h = self.batch(h / np.float32(255) if h.dtype == np.uint8 else h)
            for i, layer in enumerate(self.layers[:bn[-1] + 1]):
                h, cache = layer.forward(h, ctx)
                if i in parts:
                    _, _, mean, var = cache
                    parts[i].append((len(idx), mean.astype(np.float64), var.astype(np.float64)))
        for i, stats in parts.items():
            counts = np.array([n for n, _, _ in stats], np.float64)[:, None]
            means, variances = np.stack([m for _, m, _ in stats]), np.stack([v for *_, v in stats])
            mean = (counts * means).sum(0) / counts.sum()
            var = (counts * (variances + (means - mean) ** 2)).sum(0) / counts.sum()
            self.layers[i].moving_mean[...] = mean
            self.layers[i].moving_var[...] = var
        return len(x)
