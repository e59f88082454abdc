"""A multilayer perceptron written from scratch in NumPy (no TensorFlow on this path).

Tiny API in the spirit of micrograd: ``forward`` caches what ``backward`` needs,
``backward`` returns gradients in the order of ``parameters()``, and an optimiser updates
those arrays in place. Inputs are ``(N, 784)`` or ``(N, 28, 28)`` float32 in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

ACTIVATIONS = ("relu", "sigmoid")


def softmax(logits: np.ndarray) -> np.ndarray:
    """``(N, K)`` float -> ``(N, K)`` probabilities, rows summing to 1 (overflow-safe)."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def cross_entropy(logits: np.ndarray, y: np.ndarray, label_smoothing: float = 0.0) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy and its gradient w.r.t. ``logits``.

    ``logits``: ``(N, K)`` float; ``y``: ``(N,)`` int in [0, K). Returns ``(loss, dlogits)``
    with ``dlogits`` of shape ``(N, K)``.
    """
    n, k = logits.shape
    target = np.full((n, k), label_smoothing / k, dtype=logits.dtype)
    target[np.arange(n), y] += 1.0 - label_smoothing
    z = logits - logits.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    loss = float(-(target * log_p).sum() / n)
    return loss, (np.exp(log_p) - target) / n


class NumpyMLP:
    """Fully connected network: ``784 -> hidden... -> 10`` with ReLU or sigmoid.

    Weights use He initialisation for ReLU and Xavier for sigmoid, drawn from
    ``np.random.default_rng(seed)`` so the same seed gives the same network.
    """

    def __init__(self, sizes: tuple[int, ...] = (784, 800, 800, 10), activation: str = "relu",
                 dropout: float = 0.0, seed: int = 0):
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        if len(sizes) < 2:
            raise ValueError("sizes needs at least an input and an output size")
        self.sizes = tuple(int(s) for s in sizes)
        self.activation = activation
        self.dropout = float(dropout)
        self.rng = np.random.default_rng(seed)
        self.weights: list[np.ndarray] = []
        self.biases: list[np.ndarray] = []
        for fan_in, fan_out in zip(self.sizes, self.sizes[1:]):
            gain = 2.0 if activation == "relu" else 1.0
            std = np.sqrt(gain / fan_in)
            self.weights.append((self.rng.standard_normal((fan_in, fan_out)) * std).astype(np.float32))
            self.biases.append(np.zeros(fan_out, np.float32))
        self._cache: list[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]] = []

    def parameters(self) -> list[np.ndarray]:
        """Weights and biases, interleaved ``[W1, b1, W2, b2, ...]``; arrays are live."""
        return [p for pair in zip(self.weights, self.biases) for p in pair]

    def count_params(self) -> int:
        return int(sum(p.size for p in self.parameters()))

    def _act(self, z: np.ndarray) -> np.ndarray:
        if self.activation == "relu":
            return np.maximum(z, 0)
        return 1.0 / (1.0 + np.exp(-z))

    def _act_grad(self, z: np.ndarray, a: np.ndarray) -> np.ndarray:
        if self.activation == "relu":
            return (z > 0).astype(z.dtype)
        return a * (1 - a)

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """``(N, 784)`` or ``(N, 28, 28)`` float32 in [0, 1] -> ``(N, 10)`` logits.

        With ``train=True`` applies inverted dropout to hidden layers and remembers the
        activations for :meth:`backward`.
        """
        a = np.asarray(x, np.float32).reshape(len(x), -1)
        self._cache = []
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            z = a @ w + b
            if i == last:
                self._cache.append((a, None, None))
                return z
            h = self._act(z)
            mask = None
            if train and self.dropout > 0:
                keep = 1.0 - self.dropout
                mask = (self.rng.random(h.shape, dtype=np.float32) < keep) / np.float32(keep)
                h_out = h * mask
            else:
                h_out = h
            self._cache.append((a, z, mask))
            a = h_out
        raise AssertionError("unreachable")

    def backward(self, dlogits: np.ndarray) -> list[np.ndarray]:
        """Gradients of the loss for the last :meth:`forward`, ordered like ``parameters()``.

        ``dlogits``: ``(N, 10)`` gradient of the loss w.r.t. the logits. Also stores the
        gradient w.r.t. the input in ``self.input_grad`` (``(N, 784)``) for saliency maps.
        """
        grads: list[np.ndarray] = []
        delta = np.asarray(dlogits, np.float32)
        for i in reversed(range(len(self.weights))):
            a_in, _, _ = self._cache[i]
            grads.append(delta.sum(axis=0))
            grads.append(a_in.T @ delta)
            delta = delta @ self.weights[i].T
            if i > 0:
                _, z, mask = self._cache[i - 1]
                h = self._act(z)
                if mask is not None:
                    delta = delta * mask
                delta = delta * self._act_grad(z, h)
        self.input_grad = delta
        grads.reverse()
        # reversed order was [db_L, dW_L, ...]; after reverse it is [..., dW_L, db_L]
        return grads

    def predict_proba(self, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """``(N, 28, 28)`` float32 in [0, 1] -> ``(N, 10)`` float32 probabilities."""
        x = np.asarray(x, np.float32).reshape(len(x), self.sizes[0])
        out = [softmax(self.forward(x[i:i + batch_size])) for i in range(0, len(x), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.sizes[-1]), np.float32)

    def input_gradient(self, x: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Gradient of the target classes' log-probability w.r.t. the input pixels.

        ``x``: ``(N, 28, 28)`` float32; ``target``: ``(N,)`` int. Returns ``(N, 28, 28)``.
        """
        logits = self.forward(x)
        p = softmax(logits)
        onehot = np.eye(self.sizes[-1], dtype=np.float32)[target]
        self.backward(onehot - p)  # d(log p_t)/dlogits
        return self.input_grad.reshape(np.shape(x))

    # -- persistence -------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Write architecture and weights to ``.npz`` (plain arrays, loadable without pickle)."""
        arrays = {f"W{i}": w for i, w in enumerate(self.weights)}
        arrays.update({f"b{i}": b for i, b in enumerate(self.biases)})
        np.savez(path, sizes=np.array(self.sizes, np.int64),
                 activation=np.array(self.activation), dropout=np.array(self.dropout), **arrays)

    @classmethod
    def load(cls, path: str | Path) -> "NumpyMLP":
        """Read a network written by :meth:`save`; never unpickles."""
        with np.load(path, allow_pickle=False) as f:
            sizes = tuple(int(s) for s in f["sizes"])
            net = cls(sizes, activation=str(f["activation"]), dropout=float(f["dropout"]))
            for i in range(len(sizes) - 1):
                w, b = f[f"W{i}"], f[f"b{i}"]
                if w.shape != net.weights[i].shape or b.shape != net.biases[i].shape:
                    raise ValueError(f"{path}: layer {i} has shape {w.shape}, expected "
                                     f"{net.weights[i].shape}")
                net.weights[i] = w.astype(np.float32)
                net.biases[i] = b.astype(np.float32)
        return net


@dataclass
class Adam:
    """Adam (Kingma & Ba) with decoupled weight decay, updating arrays in place."""

    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0

    def __post_init__(self):
        self.t = 0
        self.m: list[np.ndarray] = []
        self.v: list[np.ndarray] = []

    def step(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        if not self.m:
            self.m = [np.zeros_like(p) for p in params]
            self.v = [np.zeros_like(p) for p in params]
        self.t += 1
        c1 = 1 - self.beta1 ** self.t
        c2 = 1 - self.beta2 ** self.t
        for p, g, m, v in zip(params, grads, self.m, self.v):
            m *= self.beta1
            m += (1 - self.beta1) * g
            v *= self.beta2
            v += (1 - self.beta2) * g * g
            if self.weight_decay and p.ndim > 1:
                p -= self.lr * self.weight_decay * p
            p -= (self.lr * (m / c1) / (np.sqrt(v / c2) + self.eps)).astype(p.dtype)


@dataclass
class SGD:
    """Plain (optionally momentum) gradient descent, as in the original notebooks."""

    lr: float = 0.1
    momentum: float = 0.0
    weight_decay: float = 0.0

    def __post_init__(self):
        self.velocity: list[np.ndarray] = []

    def step(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        if not self.velocity:
            self.velocity = [np.zeros_like(p) for p in params]
        for p, g, vel in zip(params, grads, self.velocity):
            if self.weight_decay and p.ndim > 1:
                g = g + self.weight_decay * p
            vel *= self.momentum
            vel -= self.lr * g
            p += vel
