"""What every dataset loader shares: the image shape, :class:`DataError`, reading a file
whether gzipped or not, and checking a split's images against its labels.

Images are ``(N, 28, 28) uint8 in [0, 255]`` (white digit on black), labels ``(N,) uint8 in
[0, 9]``; any deviation raises :class:`DataError` naming the file.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

IMAGE_SHAPE = (28, 28)
N_PIXELS = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]


class DataError(ValueError):
    """A dataset file is missing, malformed or inconsistent; the message names the file."""


def read_bytes(path: Path) -> bytes:
    """``path``'s bytes, gunzipped when they are gzip data."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise DataError(f"{path}: corrupt or truncated gzip data ({exc})") from exc
    return raw


def check_pair(x: np.ndarray, y: np.ndarray, name: str) -> None:
    """:class:`DataError` unless ``x`` is ``(N, 28, 28)`` in 0-255 and ``y`` ``(N,)`` in 0-9."""
    if x.ndim != 3 or x.shape[1:] != IMAGE_SHAPE:
        raise DataError(f"{name}: images have shape {x.shape}; expected (N, 28, 28)")
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"{name}: {len(x)} images but labels of shape {y.shape}")
    if len(y) and (y.min() < 0 or y.max() > 9):
        raise DataError(f"{name}: labels must lie in 0-9 (found {y.min()} to {y.max()})")
    if len(x) and (x.min() < 0 or x.max() > 255):
        raise DataError(f"{name}: pixels must lie in 0-255")

