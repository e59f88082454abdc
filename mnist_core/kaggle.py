"""Kaggle Digit Recognizer: read its unlabeled ``test.csv``, write ``submission.csv``."""

from __future__ import annotations

from typing import Callable

import numpy as np

from .data import DataError, parse_csv, to_float

MAX_ROWS = 100_000  # Kaggle's test.csv has 28,000; anything far larger is not that file


def read_test_csv(data: bytes, name: str = "test.csv") -> np.ndarray:
    """Digit Recognizer ``test.csv`` bytes -> ``(N, 28, 28) uint8`` images.

    Expects 784 pixel columns per row (header ``pixel0..pixel783`` optional); a labeled
    file (785 columns) is refused with a message, since a submission needs unlabeled rows.
    Raises :class:`~mnist_core.data.DataError` with the file name and the problem.
    """
    if data.count(b"\n") > MAX_ROWS + 1:
        raise DataError(f"{name}: more than {MAX_ROWS:,} rows; Kaggle's test.csv has 28,000")
    first = data.split(b"\n", 1)[0].decode("utf-8-sig", errors="replace").strip()
    if first.lower().startswith("label"):
        raise DataError(f"{name}: has a 'label' column; upload the unlabeled test.csv, "
                        f"not train.csv")
    images, labels = parse_csv(data, name, labeled=False)
    assert labels is None
    return images


def submission_csv(predict_proba: Callable[[np.ndarray], np.ndarray], images: np.ndarray,
                   batch_size: int = 2000,
                   progress: Callable[[float], None] | None = None) -> str:
    """``ImageId,Label`` rows (ImageId from 1) for ``(N, 28, 28) uint8`` images."""
    labels = []
    for start in range(0, len(images), batch_size):
        chunk = to_float(images[start:start + batch_size])
        labels.append(np.asarray(predict_proba(chunk)).argmax(axis=1))
        if progress:
            progress(min(1.0, (start + len(chunk)) / len(images)))
    pred = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    rows = "\n".join(f"{i},{int(p)}" for i, p in enumerate(pred, start=1))
    return "ImageId,Label\n" + rows + ("\n" if rows else "")
