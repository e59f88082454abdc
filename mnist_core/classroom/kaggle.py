"""Kaggle Digit Recognizer: read its unlabeled ``test.csv``, write ``submission.csv``.

Kaggle's ``test.csv`` is 51 MB, over the app's 20 MB upload limit, so a zip or gzip of it
is accepted too (:func:`csv_from_upload`).
"""

from __future__ import annotations

import gzip
import io
import os
import zipfile
import zlib
from typing import Callable

import numpy as np

from ..datasets.common import DataError
from ..datasets.csv_digits import parse_csv
from ..datasets.data import to_float

MAX_ROWS = 100_000  # Kaggle's test.csv has 28,000; anything far larger is not that file
MAX_CSV_BYTES = 200 * 1024 * 1024  # unpacked; Kaggle's test.csv is 51 MB


def read_test_csv(data: bytes, name: str = "test.csv") -> np.ndarray:
    """Digit Recognizer ``test.csv`` bytes -> ``(N, 28, 28) uint8`` images.

    Expects 784 pixel columns per row (header ``pixel0..pixel783`` optional); a labeled
    file (785 columns) is refused with a message, since a submission needs unlabeled rows.
    Raises :class:`~mnist_core.datasets.common.DataError` with the file name and the problem.
    """
    if data.count(b"\n") > MAX_ROWS + 1:
        raise DataError(f"{name}: more than {MAX_ROWS:,} rows; Kaggle's test.csv has 28,000")
    cut = data.find(b"\n")
    first = data[:cut if cut >= 0 else len(data)].decode("utf-8-sig", errors="replace").strip()
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


def csv_from_upload(name: str, raw: bytes) -> tuple[bytes, str]:
    """The CSV bytes of an upload, unpacking ``.zip`` (test.csv inside, or the only CSV) and
    ``.gz``; returns ``(bytes, name of the CSV)``. Raises :class:`DataError`."""
    lower = name.lower()
    if lower.endswith(".zip") or raw[:4] == b"PK\x03\x04":
        try:
            archive = zipfile.ZipFile(io.BytesIO(raw))
            members = [m for m in archive.infolist()
                       if m.filename.lower().endswith(".csv") and not m.is_dir()]
        except zipfile.BadZipFile as exc:
            raise DataError(f"{name}: not a readable zip file ({exc})") from exc
        named = [m for m in members if os.path.basename(m.filename).lower() == "test.csv"]
        if named:
            member = named[0]
        elif len(members) == 1:
            member = members[0]
        else:
            found = ", ".join(m.filename for m in members) or "no CSV files"
            raise DataError(f"{name}: expected test.csv inside, found {found}")
        if member.file_size > MAX_CSV_BYTES:
            raise DataError(f"{name}: {member.filename} unpacks to "
                            f"{member.file_size / 2**20:.0f} MB; {_KAGGLE_SIZE}")
        try:
            with archive.open(member) as f:
                out = _read_capped(f, f"{name}: {member.filename}")
        except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError, EOFError,
                zlib.error) as exc:  # damaged, encrypted or an unsupported compression
            raise DataError(f"{name}: could not unpack {member.filename} ({exc})") from exc
        return out, f"{name}/{member.filename}"
    if lower.endswith(".gz") or raw[:2] == b"\x1f\x8b":
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as f:
                out = _read_capped(f, name)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{name}: not readable gzip data ({exc})") from exc
        return out, name[:-3] if lower.endswith(".gz") else name
    return raw, name


_KAGGLE_SIZE = "Kaggle's test.csv is 51 MB"


def _read_capped(f, what: str) -> bytes:
    """At most :data:`MAX_CSV_BYTES` from ``f``; a :class:`DataError` naming ``what`` if
    there is more."""
    out = f.read(MAX_CSV_BYTES + 1)
    if len(out) > MAX_CSV_BYTES:
        raise DataError(f"{what} unpacks to more than {MAX_CSV_BYTES // 2**20} MB; "
                        f"{_KAGGLE_SIZE}")
    return out
