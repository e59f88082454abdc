"""MNIST's own files: unsigned-byte IDX (gzipped or raw), and a folder of the four of them
(``train-images-idx3-ubyte`` or ``train-images.idx3-ubyte`` spellings)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from .common import FILE_LIMITS, DataError, FileLimits, check_pair, open_unpacked

_IDX_MAGIC = {1: 2049, 3: 2051}  # ndim -> magic number for unsigned-byte IDX files
_IDX_STEMS = {
    "x_train": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "y_train": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "x_test": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "y_test": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse an unsigned-byte IDX file (MNIST's format) into a uint8 array.

    Returns ``(N,)`` for label files (magic 2049) and ``(N, rows, cols)`` for image files
    (magic 2051). Raises :class:`DataError` on a wrong magic number or a size mismatch.
    """
    if len(data) < 8:
        raise DataError(f"{name}: too short to be an IDX file ({len(data)} bytes)")
    magic = struct.unpack(">I", data[:4])[0]
    ndim = {v: k for k, v in _IDX_MAGIC.items()}.get(magic)
    if ndim is None:
        raise DataError(f"{name}: bad magic number {magic} (expected 2049 for labels "
                        f"or 2051 for images)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{name}: truncated header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(dims))
    body = len(data) - header
    if body != expected:
        raise DataError(f"{name}: header promises {dims} = {expected} bytes of data but the "
                        f"file holds {body} (truncated or corrupt)")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def read_idx(path: Path, limits: FileLimits = FILE_LIMITS) -> np.ndarray:
    """An IDX file (gzipped or not) read as it unpacks: its header first, so a file whose
    header promises more than ``limits.max_unpacked_bytes``, or that holds more than its
    header promises (a gzip bomb), is refused after reading at most that many bytes."""
    cap = limits.max_unpacked_bytes
    try:
        with open_unpacked(path) as f:
            head = f.read(8)
            if len(head) == 8:
                ndim = {2049: 1, 2051: 3}.get(struct.unpack(">I", head[:4])[0], 0)
                head += f.read(4 * ndim - 4) if ndim > 1 else b""
                if ndim and len(head) == 4 + 4 * ndim:
                    promised = int(np.prod(struct.unpack(f">{ndim}I", head[4:]), dtype=object))
                    if promised > cap:
                        raise DataError(f"{path}: its header promises {promised:,} bytes, over "
                                        f"the {cap / 2**20:.0f} MB limit for one dataset file")
                    body = f.read(promised + 1)
                    if len(body) > promised:
                        raise DataError(f"{path}: holds more data than its header promises "
                                        f"({promised:,} bytes): a damaged file or a gzip bomb")
                    return parse_idx(head + body, str(path))
            return parse_idx(head + f.read(cap), str(path))   # parse_idx says what is wrong
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt or truncated gzip data ({exc})") from exc


def _find(folder: Path, stems: tuple[str, ...]) -> Path | None:
    for stem in stems:
        for suffix in (".gz", ""):
            candidate = folder / f"{stem}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def load_idx_folder(folder: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read the four IDX files from ``folder``: ``x_train, y_train, x_test, y_test``."""
    folder = Path(folder)
    arrays = {}
    for key, stems in _IDX_STEMS.items():
        path = _find(folder, stems)
        if path is None:
            raise DataError(f"{folder}: no {stems[0]}[.gz] (or {stems[1]}) found")
        arrays[key] = read_idx(path)
        expected_ndim = 3 if key.startswith("x") else 1
        if arrays[key].ndim != expected_ndim:
            raise DataError(f"{path}: expected a {'image' if expected_ndim == 3 else 'label'} "
                            f"file, found {arrays[key].ndim}-D data")
    for split in ("train", "test"):
        check_pair(arrays[f"x_{split}"], arrays[f"y_{split}"], f"{folder} ({split})")
    return arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"]


def holds_idx(folder: Path) -> bool:
    """Whether ``folder`` holds a training-images IDX file (then it is read as IDX)."""
    return _find(folder, _IDX_STEMS["x_train"]) is not None
