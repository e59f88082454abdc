"""What every dataset loader shares: the image shape, :class:`DataError`, reading a file
whether gzipped or not, and checking a split's images against its labels.

Images are ``(N, 28, 28) uint8 in [0, 255]`` (white digit on black), labels ``(N,) uint8 in
[0, 9]``; any deviation raises :class:`DataError` naming the file.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

IMAGE_SHAPE = (28, 28)
N_PIXELS = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]


class DataError(ValueError):
    """A dataset file is missing, malformed or inconsistent; the message names the file."""


@dataclass(frozen=True)
class FileLimits:
    """What one dataset file on disk may make a loader read."""

    max_unpacked_bytes: int = 2**30   # after gunzipping; MNIST's largest file is 47 MB,
                                      # EMNIST's about 700 MB


FILE_LIMITS = FileLimits()


def open_unpacked(path: Path) -> BinaryIO:
    """``path`` opened for reading, gunzipped as it is read when it holds gzip data;
    :class:`DataError` when it is not a regular file (a folder, a device, a pipe)."""
    if not path.is_file():
        raise DataError(f"{path}: not a regular file")
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def read_bytes(path: Path, limits: FileLimits = FILE_LIMITS) -> bytes:
    """``path``'s bytes, gunzipped when they are gzip data; :class:`DataError` past
    ``limits.max_unpacked_bytes`` (a gzip bomb is refused after that many bytes, not read
    whole), for a file that is not a regular one, or for damaged gzip data."""
    cap = limits.max_unpacked_bytes
    try:
        with open_unpacked(path) as f:
            raw = f.read(cap + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt or truncated gzip data ({exc})") from exc
    if len(raw) > cap:
        raise DataError(f"{path}: unpacks to more than {cap / 2**20:.0f} MB, the limit for "
                        f"one dataset file (a damaged file or a gzip bomb?)")
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

