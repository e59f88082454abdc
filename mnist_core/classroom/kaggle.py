"""Kaggle Digit Recognizer: read its unlabeled ``test.csv``, write ``submission.csv``.

Kaggle's ``test.csv`` is 51 MB, over the app's 20 MB upload limit, so a zip or gzip of it
is accepted too (:func:`open_upload`). The CSV is parsed as it is unpacked, a block at a
time, within :data:`KAGGLE` (:class:`KaggleConfig`): a zip bomb or a runaway line is
refused after a few MB of it, never unpacked whole.
"""

from __future__ import annotations

import gzip
import io
import os
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO, Callable

import numpy as np

from ..datasets.common import DataError
from ..datasets.csv_digits import CsvLimits, parse_csv
from ..datasets.data import to_float


@dataclass(frozen=True)
class KaggleConfig:
    """What one upload on the Kaggle page may make the server do."""

    csv: CsvLimits = field(default_factory=lambda: CsvLimits(
        max_rows=100_000,               # Kaggle's test.csv has 28,000 rows
        max_bytes=200 * 2**20,          # unpacked; Kaggle's test.csv is 51 MB
        max_cpu_s=4.0))                 # Kaggle's test.csv parses in about 0.5 s
    # Kaggle's test.csv is 51 MB: said in messages about the size
    about: str = "Kaggle's test.csv is 51 MB and has 28,000 rows"


KAGGLE = KaggleConfig()
LABELED = "has a 'label' column; upload the unlabeled test.csv, not train.csv"


def read_test_csv(data: bytes | BinaryIO, name: str = "test.csv",
                  cfg: KaggleConfig = KAGGLE) -> np.ndarray:
    """Digit Recognizer ``test.csv`` (bytes or a binary stream) -> ``(N, 28, 28) uint8``.

    Expects 784 pixel columns per row (header ``pixel0..pixel783`` optional); a labeled
    file (785 columns) is refused with a message, since a submission needs unlabeled rows.
    Raises :class:`~mnist_core.datasets.common.DataError` with the file name and the problem,
    as soon as one of ``cfg.csv``'s limits is passed.
    """
    images, _ = parse_csv(data, name, labeled=None, limits=cfg.csv, refuse_labeled=LABELED)
    return images


def read_upload(name: str, raw: bytes, cfg: KaggleConfig = KAGGLE) -> tuple[np.ndarray, str]:
    """An uploaded ``test.csv`` (plain, ``.zip`` or ``.gz``) -> ``(images, name of the CSV)``,
    parsed as it unpacks. Raises :class:`DataError`."""
    with open_upload(name, raw) as (stream, csv_name):
        try:
            return read_test_csv(stream, csv_name, cfg), csv_name
        except (zipfile.BadZipFile, RuntimeError, NotImplementedError, EOFError,
                zlib.error) as exc:   # damaged, encrypted or an unsupported compression
            raise DataError(f"{csv_name}: could not be unpacked ({exc})") from exc


@contextmanager
def open_upload(name: str, raw: bytes) -> Iterator[tuple[BinaryIO, str]]:
    """The CSV inside an upload as a stream that unpacks as it is read: ``.zip``
    (test.csv inside, or the only CSV) and ``.gz``, else the bytes themselves; with the
    CSV's name. Raises :class:`DataError` for an archive that cannot be opened."""
    lower = name.lower()
    if lower.endswith(".zip") or raw[:4] == b"PK\x03\x04":
        try:
            archive = zipfile.ZipFile(io.BytesIO(raw))
            members = [m for m in archive.infolist()
                       if m.filename.lower().endswith(".csv") and not m.is_dir()]
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError) as exc:
            raise DataError(f"{name}: not a readable zip file ({exc})") from exc
        named = [m for m in members if os.path.basename(m.filename).lower() == "test.csv"]
        if named:
            member = named[0]
        elif len(members) == 1:
            member = members[0]
        else:
            found = ", ".join(m.filename[:60] for m in members[:5]) or "no CSV files"
            raise DataError(f"{name}: expected test.csv inside, found {found}")
        try:
            stream = archive.open(member)
        except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError, ValueError,
                EOFError, zlib.error) as exc:  # damaged, encrypted or an unsupported compression
            raise DataError(f"{name}: could not unpack {member.filename[:60]} ({exc})") from exc
        with stream:
            yield stream, f"{name}/{member.filename}"
        return
    if lower.endswith(".gz") or raw[:2] == b"\x1f\x8b":
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
            try:
                yield stream, name[:-3] if lower.endswith(".gz") else name
            except (OSError, EOFError, zlib.error) as exc:
                raise DataError(f"{name}: not readable gzip data ({exc})") from exc
        return
    yield io.BytesIO(raw), name


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
