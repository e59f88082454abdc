"""keras's ``mnist.npz`` (``x_train``, ``y_train``, ``x_test``, ``y_test``), read without
unpickling."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import DataError, check_pair


def load_npz(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read keras's ``mnist.npz`` (never unpickles)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = {"x_train", "y_train", "x_test", "y_test"} - set(archive.files)
            if missing:
                raise DataError(f"{path}: missing arrays {sorted(missing)}")
            arrays = [np.asarray(archive[k]) for k in ("x_train", "y_train", "x_test", "y_test")]
    except DataError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npz archive ({exc})") from exc
    x_train, y_train, x_test, y_test = arrays
    for arr, key in ((x_train, "x_train"), (x_test, "x_test")):
        if arr.dtype.kind == "f" and np.any(arr != np.round(arr)):
            raise DataError(f"{path}: {key} holds fractional values; expected whole 0-255 pixels")
    check_pair(x_train, y_train, f"{path} (train)")
    check_pair(x_test, y_test, f"{path} (test)")
    return tuple(a.astype(np.uint8) for a in arrays)  # type: ignore[return-value]

