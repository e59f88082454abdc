"""Score models: accuracy, loss, confusion matrix, per-class precision/recall/F1, speed."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import numpy as np

Predict = Callable[[np.ndarray], np.ndarray]


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = 10) -> np.ndarray:
    """``(n_classes, n_classes) int64``; row = true label, column = prediction."""
    cm = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(cm, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return cm


def per_class_scores(cm: np.ndarray) -> dict[str, list[float]]:
    """Precision, recall and F1 per class from a confusion matrix (0 where undefined)."""
    tp = np.diag(cm).astype(np.float64)
    predicted, actual = cm.sum(axis=0), cm.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {"precision": precision.tolist(), "recall": recall.tolist(), "f1": f1.tolist()}


def log_loss(probs: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of the true labels (probabilities clipped at 1e-7)."""
    return float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0)).mean())


def score(probs: np.ndarray, y: np.ndarray) -> dict:
    """Metrics of ``(N, 10)`` probabilities against ``(N,)`` labels."""
    pred = probs.argmax(axis=1)
    cm = confusion_matrix(y, pred)
    return {"n": int(len(y)), "accuracy": float((pred == y).mean()), "loss": log_loss(probs, y),
            "confusion": cm.tolist(), **per_class_scores(cm)}


def time_single(predict: Predict, x: np.ndarray, repeats: int = 50) -> float:
    """Median milliseconds for one ``(1, 28, 28)`` image (after one warm-up call)."""
    predict(x[:1])
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        predict(x[i % len(x):i % len(x) + 1])
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def time_batch(predict: Predict, x: np.ndarray) -> float:
    """Milliseconds to predict all of ``x`` in one call."""
    return timed_predict(predict, x, len(x))[1]


def timed_predict(predict: Predict, x: np.ndarray, n: int = 10_000) -> tuple[np.ndarray, float]:
    """``predict(x)`` with the milliseconds its first ``n`` images take in one call (after a
    warm-up call on ``x[:64]``); the rest of ``x``, if any, follows in a second call, so
    every image is predicted once."""
    predict(x[:64])
    t0 = time.perf_counter()
    head = np.asarray(predict(x[:n]))
    ms = 1000 * (time.perf_counter() - t0)
    if len(x) <= n:
        return head, ms
    return np.concatenate([head, np.asarray(predict(x[n:]))]), ms


def evaluate_model(model, data, train_seconds: float | None = None,
                   file_bytes: int | None = None) -> tuple[dict, np.ndarray]:
    """A :class:`~mnist_core.models.model.Model`'s test-set metrics (what ``<name>.metrics.json``
    holds) and its ``(N, 10)`` test-set probabilities, predicting each test image once
    (besides the timing calls on single images)."""
    from ..datasets.data import to_float

    x_test = to_float(data.x_test)
    probs, batch_ms = timed_predict(model.predict_proba, x_test)
    metrics = {"model": model.name, "title": model.title, "dataset": data.name,
               **score(probs, data.y_test.astype(np.int64)), "params": model.count_params(),
               "file_bytes": file_bytes, "train_seconds": train_seconds,
               "latency_single_ms": time_single(model.predict_proba, x_test),
               "latency_10k_ms": batch_ms}
    slow = model.slow_predict_fn()
    if slow is not None:
        metrics["latency_single_predict_ms"] = time_single(slow, x_test, 20)
    return metrics, probs
