"""A class's digits as one export zip and back: the four MNIST IDX files (gzip), Kaggle-style
CSV, ``mnist.npz`` and ``class.json`` (every digit's id, writer, source, time, answers,
strokes), and importing such a zip into a class, all or nothing.

The exports in :func:`export_zip` are read back by :func:`mnist_core.datasets.data.load_dataset`;
images are ``(28, 28) uint8 in [0, 255]`` white on black, as :mod:`.class_store` keeps them.

This module never imports streamlit.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import struct
import uuid as uuidlib
import zipfile
import zlib
from collections.abc import Sequence
from datetime import datetime

import numpy as np
from sqlalchemy.engine import Engine

from .class_engine import DEFAULT, StoreConfig, database_errors, verify_file
from .class_store import (IMAGE_SHAPE, SOURCES, ClassDigits, Digit, check_class_code,
                          check_writer, insert_ignoring_duplicates, require_open_class, to_row,
                          writing)

N_PIXELS = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
EXPORT_FORMAT = "mnist-studio-class-export"                  # class.json's "format"
EXPORT_VERSION = 1


class ImportFileError(ValueError):
    """An import file is corrupt or is not a class export; nothing was changed."""


# ---------------------------------------------------------------------------------------
# Export: IDX (gzip), Kaggle-style CSV and .npz in one zip, plus class.json
# ---------------------------------------------------------------------------------------

def split_test(writers: Sequence[str], cfg: StoreConfig = DEFAULT) -> np.ndarray:
    """``(N,) bool``: which digits go to the export's test split. With several writers,
    whole writers (about ``test_writer_share`` of them, picked by a hash of the name so
    the split is stable), else every ``test_every``-th digit. Never empty when N >= 2."""
    n = len(writers)
    names = sorted(set(writers))
    if len(names) >= 2:
        ranked = sorted(names, key=lambda w: hashlib.sha256(w.encode()).hexdigest())
        k = max(1, round(cfg.test_writer_share * len(names)))
        held = set(ranked[:k])
        return np.array([w in held for w in writers], bool)
    test = np.zeros(n, bool)
    if n >= 2:
        test[cfg.test_every - 1::cfg.test_every] = True
        test[-1] |= not test.any()
    return test


def _idx(array: np.ndarray) -> bytes:
    magic = {1: 2049, 3: 2051}[array.ndim]
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()


def _csv(images: np.ndarray, labels: np.ndarray) -> bytes:
    header = "label," + ",".join(f"pixel{i}" for i in range(N_PIXELS))
    table = np.column_stack([labels.astype(int), images.reshape(len(images), N_PIXELS).astype(int)])
    lines = [header] + [",".join(map(str, row)) for row in table]
    return ("\n".join(lines) + "\n").encode()


def export_zip(digits: ClassDigits, class_code: str, cfg: StoreConfig = DEFAULT) -> bytes:
    """The class's digits as one zip: the four MNIST IDX files (gzip), ``mnist_train.csv``
    and ``mnist_test.csv`` (``label,pixel0..pixel783``), ``mnist.npz`` and ``class.json``
    (every digit's id, writer, source, time, answers and strokes, in the files' order:
    train then test). Unzipped, ``python -m mnist_core train --data FOLDER`` reads the IDX
    files; ``--data FOLDER/mnist_train.csv`` and ``--data FOLDER/mnist.npz`` the others."""
    test = split_test(digits.writers, cfg)
    order = np.concatenate([np.flatnonzero(~test), np.flatnonzero(test)])
    tr, te = np.flatnonzero(~test), np.flatnonzero(test)
    x_tr, y_tr, x_te, y_te = digits.images[tr], digits.labels[tr], digits.images[te], digits.labels[te]
    meta = {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "class_code": class_code,
            "n_train": len(tr), "n_test": len(te),
            "digits": [{"id": digits.ids[i], "writer": digits.writers[i],
                        "label": int(digits.labels[i]), "source": digits.sources[i],
                        "created_at": digits.created[i].isoformat(),
                        "answers": digits.answers[i], "strokes": digits.strokes[i],
                        "split": "test" if test[i] else "train"} for i in order]}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, arr in (("train-images-idx3-ubyte", x_tr), ("train-labels-idx1-ubyte", y_tr),
                          ("t10k-images-idx3-ubyte", x_te), ("t10k-labels-idx1-ubyte", y_te)):
            z.writestr(f"{name}.gz", gzip.compress(_idx(arr), mtime=0), zipfile.ZIP_STORED)
        z.writestr("mnist_train.csv", _csv(x_tr, y_tr))
        z.writestr("mnist_test.csv", _csv(x_te, y_te))
        npz = io.BytesIO()
        np.savez_compressed(npz, x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)
        z.writestr("mnist.npz", npz.getvalue(), zipfile.ZIP_STORED)
        z.writestr("class.json", json.dumps(meta))
    return out.getvalue()


def read_export(data: bytes, cfg: StoreConfig = DEFAULT) -> tuple[str, list[dict]]:
    """An export zip's class code and its digits as rows ready to insert (images from ``mnist.npz``,
    everything else from ``class.json``). Raises :class:`ImportFileError` with a readable
    message for anything that is not an intact export; reads only, never unpickles."""
    if len(data) > cfg.max_import_bytes:
        raise ImportFileError(f"The file is {len(data) / 1e6:.0f} MB; an export is at most "
                              f"{cfg.max_import_bytes / 1e6:.0f} MB.")
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
        names = set(z.namelist())
        if not {"class.json", "mnist.npz"} <= names:
            raise ImportFileError("This zip is not a class export from MNIST Studio (it has "
                                  "no class.json and mnist.npz).")
        meta = json.loads(_member(z, "class.json", cfg.max_import_json_bytes))
        arrays = _npz_arrays(_member(z, "mnist.npz", cfg.max_import_bytes), cfg)
    except ImportFileError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, KeyError, ValueError, OSError,
            EOFError, RuntimeError, zlib.error, RecursionError) as exc:
        raise ImportFileError(f"The file is not a readable class export "
                              f"({type(exc).__name__}).") from exc
    if not isinstance(meta, dict) or meta.get("format") != EXPORT_FORMAT:
        raise ImportFileError("This zip's class.json is not from an MNIST Studio class export.")
    if meta.get("version") != EXPORT_VERSION:
        raise ImportFileError(f"This export has version {meta.get('version')!r}; this app "
                              f"reads version {EXPORT_VERSION}.")
    images = np.concatenate([arrays["x_train"], arrays["x_test"]])
    labels = np.concatenate([arrays["y_train"], arrays["y_test"]])
    entries = meta.get("digits")
    if (images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE
            or not isinstance(entries, list) or len(entries) != len(images)
            or len(labels) != len(images)):
        raise ImportFileError("The export is damaged: its images, labels and class.json "
                              "do not match.")
    if len(images) > cfg.max_import_digits:
        raise ImportFileError(f"The export holds {len(images)} digits; at most "
                              f"{cfg.max_import_digits} can be imported at once.")
    rows = []
    for i, e in enumerate(entries):
        try:
            if int(e["label"]) != int(labels[i]):
                raise ValueError("label differs from the image files")
            created = datetime.fromisoformat(e["created_at"])
            answers = {str(k): int(v) for k, v in dict(e.get("answers") or {}).items()}
            strokes = e.get("strokes")
            if strokes is not None and not isinstance(strokes, str):
                raise ValueError("strokes must be text")
            rows.append({"id": str(uuidlib.UUID(e["id"])), "writer": check_writer(e["writer"]),
                         "label": int(labels[i]), "source": str(e["source"]),
                         "created_at": created, "image": images[i], "answers": answers,
                         "strokes": strokes})
            if rows[-1]["source"] not in SOURCES or not 0 <= rows[-1]["label"] <= 9:
                raise ValueError("bad source or label")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ImportFileError(f"The export is damaged at digit {i + 1}: {exc}.") from exc
    return str(meta.get("class_code") or ""), rows


def _member(z: zipfile.ZipFile, name: str, cap: int) -> bytes:
    """Member ``name`` of ``z`` unpacked, refused unread when its header says it is over
    ``cap`` bytes, and after ``cap`` bytes when the header lies."""
    what = f"Its {name} unpacks to more than {cap / 2**20:.0f} MB, the most an export's may."
    if z.getinfo(name).file_size > cap:
        raise ImportFileError(what)
    with z.open(name) as f:
        out = f.read(cap + 1)
    if len(out) > cap:
        raise ImportFileError(what)
    return out


def _npz_arrays(data: bytes, cfg: StoreConfig) -> dict[str, np.ndarray]:
    """The four uint8 arrays of an export's ``mnist.npz``, each one's header (dtype, shape)
    checked before it is read: a header claiming 10^11 elements is refused, not allocated."""
    npz = zipfile.ZipFile(io.BytesIO(data))
    limits = {"x_train": cfg.max_import_digits * N_PIXELS, "x_test": cfg.max_import_digits * N_PIXELS,
              "y_train": cfg.max_import_digits, "y_test": cfg.max_import_digits}
    arrays = {}
    for key, most in limits.items():
        with npz.open(f"{key}.npy") as f:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(f)
            count = int(np.prod(shape, dtype=object))
            if dtype != np.uint8 or fortran or count > most:
                raise ImportFileError(f"Its mnist.npz holds {key} of {count:,} {dtype} values; "
                                      f"an export holds at most {most:,} uint8 values there.")
        with npz.open(f"{key}.npy") as f:
            arrays[key] = np.lib.format.read_array(f, allow_pickle=False)
    return arrays


def import_export(engine: Engine, data: bytes, class_code: str,
                  cfg: StoreConfig = DEFAULT) -> tuple[int, int]:
    """Add an export's digits to ``class_code``; returns ``(added, already there)``.

    All or nothing: the file is read and checked completely first (ImportFileError), then
    inserted in one transaction. A digit keeps its id, so importing twice adds nothing.
    Digits imported into another class get new ids derived from the old id and the class,
    so the same file can seed several classes and still never duplicates within one.
    """
    code = check_class_code(class_code, cfg)
    origin, digits = read_export(data, cfg)
    rows = []
    for r in digits:
        ident = r["id"] if origin == code else str(uuidlib.uuid5(uuidlib.UUID(r["id"]), code))
        rows.append(to_row(Digit(ident, code, r["writer"], r["label"], r["source"], r["image"],
                                 r["answers"], r["strokes"], r["created_at"]), cfg))
    with database_errors():
        with writing(engine) as conn:
            require_open_class(conn, code)
            added = insert_ignoring_duplicates(conn, rows)
        verify_file(engine)
    return added, len(rows) - added
