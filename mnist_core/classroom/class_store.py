"""A class's own handwritten digits in a SQL database (SQLAlchemy): SQLite by default,
PostgreSQL (or any SQLAlchemy URL) for a deployment with several replicas.

One table, ``class_digits``, one row per saved digit, keyed by a client-generated UUID so a
save that is retried (a timeout, a double click, a rerun) never stores the digit twice. The
schema is created and upgraded by :func:`migrate` (versioned, in ``class_schema``), never by
hand. Every database failure is raised as :class:`ClassStoreError` whose ``kind`` says what
happened (unreachable, locked, full, read-only) and whose message a learner can read.

Images are ``(28, 28) uint8 in [0, 255]`` white on black, as :mod:`mnist_core.datasets.data` keeps
them; the exports in :func:`export_zip` are read back by :func:`mnist_core.datasets.data.load_dataset`.

This module never imports streamlit.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import struct
import uuid as uuidlib
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

IMAGE_SHAPE = (28, 28)
N_PIXELS = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
SOURCES = ("collect", "flag-draw", "flag-upload", "import")  # where a digit came from
EXPORT_FORMAT = "mnist-studio-class-export"                  # class.json's "format"
EXPORT_VERSION = 1
MIGRATION_LOCK = 741201   # PostgreSQL advisory lock key held while migrating (any constant)


@dataclass(frozen=True)
class StoreConfig:
    """Limits on what one saved digit and one import may hold."""

    max_class_len: int = 16          # class codes are typed by children: short
    max_writer_len: int = 24         # a nickname or "w-" + a short random id
    max_strokes_bytes: int = 200_000  # canvas JSON of a busy digit is ~5-30 kB
    max_import_bytes: int = 50_000_000  # one export zip; ~20 bytes per pixel row in CSV
    max_import_digits: int = 100_000   # rows in one import
    sqlite_busy_ms: int = 30_000     # how long a SQLite writer waits for the lock
    test_every: int = 5              # single-writer exports: every 5th digit goes to test
    test_writer_share: float = 0.2   # several writers: about this share of writers to test
    pg_connect_timeout_s: int = 5    # a dead PostgreSQL fails a save in seconds, not minutes
    id_chunk: int = 500              # ids per IN (...) query: under SQLite's parameter limit


DEFAULT = StoreConfig()
CLASS_CODE = re.compile(r"[a-z0-9-]+")
WRITER = re.compile(r"[A-Za-z0-9 _.-]+")


class ClassStoreError(RuntimeError):
    """The database could not do what was asked. ``kind``: ``unreachable``, ``locked``,
    ``full``, ``read-only``, ``schema`` or ``error``; the message is for a person."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class ImportFileError(ValueError):
    """An import file is corrupt or is not a class export; nothing was changed."""


# ---------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------

def check_class_code(code: str, cfg: StoreConfig = DEFAULT) -> str:
    """``code`` stripped and lower-cased if it is 1-16 of ``a-z 0-9 -``; else ValueError
    with a message saying what a class code may be."""
    code = (code or "").strip().lower()
    if not code:
        raise ValueError("Type a class code, for example 7b.")
    if len(code) > cfg.max_class_len or not CLASS_CODE.fullmatch(code):
        raise ValueError(f"A class code is at most {cfg.max_class_len} characters: lower-case "
                         f"letters, digits and '-' (for example 7b or year-5). "
                         f"'{code[:40]}' is not one.")
    return code


def check_writer(name: str, cfg: StoreConfig = DEFAULT) -> str:
    """A writer id or nickname: 1-24 letters, digits, spaces, ``_ . -``; else ValueError."""
    name = (name or "").strip()
    if not name or len(name) > cfg.max_writer_len or not WRITER.fullmatch(name):
        raise ValueError(f"A nickname is 1-{cfg.max_writer_len} letters, digits, spaces, "
                         f"'_', '.' or '-' (no other personal data, please).")
    return name


def new_writer_id() -> str:
    """A random writer id for a browser session: ``w-`` and 6 hex digits."""
    return "w-" + uuidlib.uuid4().hex[:6]


def new_digit_id() -> str:
    return str(uuidlib.uuid4())


# ---------------------------------------------------------------------------------------
# Schema and migrations
# ---------------------------------------------------------------------------------------

metadata = sa.MetaData()
schema_table = sa.Table(
    "class_schema", metadata,
    sa.Column("id", sa.Integer, primary_key=True),        # always 1: one row
    sa.Column("version", sa.Integer, nullable=False),
)
digits_table = sa.Table(
    "class_digits", metadata,
    sa.Column("id", sa.String(36), primary_key=True),      # client-generated UUID
    sa.Column("class_code", sa.String(16), nullable=False, index=True),
    sa.Column("writer", sa.String(24), nullable=False),
    sa.Column("label", sa.SmallInteger, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("image", sa.LargeBinary, nullable=False),   # 784 bytes, row-major uint8
    sa.Column("strokes", sa.Text, nullable=True),          # the canvas's JSON, when drawn
    sa.Column("answers", sa.Text, nullable=False),         # JSON {model: digit} when saved
)


def _v1(conn: Connection) -> None:
    digits_table.create(conn, checkfirst=True)


def _v2(conn: Connection) -> None:
    # The dashboard reads a class's digits in saving order, per writer.
    # Plain DDL: an sa.Index on the Table object would join the table's own definition and
    # be created by _v1 too, so version 1 could never be reproduced.
    conn.execute(sa.text("CREATE INDEX IF NOT EXISTS ix_class_digits_class_writer "
                         "ON class_digits (class_code, writer)"))


MIGRATIONS: tuple[Callable[[Connection], None], ...] = (_v1, _v2)  # index i -> version i+1
LATEST = len(MIGRATIONS)


def schema_version(engine: Engine) -> int:
    """The schema version the database holds (0: none yet)."""
    with _errors():
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(schema_table.name):
                return 0
            row = conn.execute(sa.select(schema_table.c.version)).first()
            return int(row[0]) if row else 0


def migrate(engine: Engine, target: int = LATEST) -> int:
    """Create or upgrade the schema to ``target`` (default: the latest); returns it.

    Safe when several processes start at once: SQLite takes its write lock first
    (``BEGIN IMMEDIATE``), PostgreSQL an advisory lock, so one migrates and the others
    find the work done. A database newer than this code raises ``ClassStoreError("schema")``.
    """
    with _errors():
        with engine.connect().execution_options(sqlite_immediate=True) as conn:
            conn.begin()
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            schema_table.create(conn, checkfirst=True)
            row = conn.execute(sa.select(schema_table.c.version)).first()
            current = int(row[0]) if row else 0
            if current > len(MIGRATIONS):
                conn.rollback()
                raise ClassStoreError("schema", f"The class database has schema version "
                                      f"{current}, newer than this app knows ({LATEST}). "
                                      f"Update the app.")
            for version in range(current + 1, target + 1):
                MIGRATIONS[version - 1](conn)
            if target > current:
                if row:
                    conn.execute(schema_table.update().values(version=target))
                else:
                    conn.execute(schema_table.insert().values(id=1, version=target))
            conn.commit()
            return max(current, target)


def sqlite_url(path: str | Path) -> str:
    """A SQLAlchemy URL for a SQLite file (its folder is created on first use)."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def engine_kwargs(url: str, cfg: StoreConfig = DEFAULT) -> dict:
    """``create_engine`` keyword arguments for ``url``: SQLite waits ``sqlite_busy_ms`` for
    the write lock instead of failing at once."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": cfg.sqlite_busy_ms / 1000}}
    return {"pool_pre_ping": True, "connect_args": {"connect_timeout": cfg.pg_connect_timeout_s}}


def prepare_engine(engine: Engine, cfg: StoreConfig = DEFAULT) -> Engine:
    """Make a SQLite engine fit for a class saving at once: WAL (readers never block the
    writer), a busy timeout, and a plain BEGIN per transaction. Other dialects unchanged.
    Idempotent: the listener is attached once per engine."""
    if engine.dialect.name != "sqlite" or getattr(engine, "_class_store_ready", False):
        return engine

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None   # SQLAlchemy's BEGIN below, not pysqlite's guess
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {int(cfg.sqlite_busy_ms)}")
            cur.execute("PRAGMA journal_mode = WAL")
        except Exception:  # noqa: BLE001 - a read-only file: reads still work, writes say why
            pass
        finally:
            cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn):
        # IMMEDIATE takes the write lock up front (migrations): no upgrade from a read lock
        # that could fail half-way with "database is locked".
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    engine._class_store_ready = True  # type: ignore[attr-defined]
    return engine


def make_engine(url: str, cfg: StoreConfig = DEFAULT) -> Engine:
    """A ready engine for ``url`` (SQLite prepared by :func:`prepare_engine`)."""
    return prepare_engine(sa.create_engine(url, **engine_kwargs(url, cfg)), cfg)


# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------

_KINDS = (  # (kind, words in the driver's message, what a person is told)
    ("locked", ("database is locked", "lock timeout", "deadlock"),
     "The class database is busy (locked by another save)."),
    ("full", ("disk is full", "database or disk is full", "no space left", "disk full"),
     "The class database's disk is full."),
    ("read-only", ("readonly database", "read-only", "read only", "attempt to write a readonly"),
     "The class database is read-only here."),
    ("unreachable", ("unable to open database", "connection refused", "could not connect",
                     "connection failed", "timeout expired", "server closed",
                     "name or service not known", "could not translate host",
                     "connection is closed", "terminating connection"),
     "The class database cannot be reached."),
)


def classify(exc: BaseException) -> ClassStoreError:
    """A driver or SQLAlchemy error as a :class:`ClassStoreError` with a readable kind."""
    text = str(getattr(exc, "orig", None) or exc).lower()
    for kind, words, message in _KINDS:
        if any(w in text for w in words):
            return ClassStoreError(kind, message)
    return ClassStoreError("error", f"The class database failed: {type(exc).__name__}.")


class _errors:
    """``with _errors():`` turns SQLAlchemy/driver/OS errors into ClassStoreError."""

    def __enter__(self):
        return self

    def __exit__(self, typ, exc, tb):
        if exc is None or isinstance(exc, ClassStoreError):
            return False
        if isinstance(exc, (sa.exc.SQLAlchemyError, OSError)):
            raise classify(exc) from exc
        return False


# ---------------------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Digit:
    """One digit to save. ``image``: ``(28, 28) uint8 in [0, 255]`` white on black."""

    id: str                          # client-generated UUID: a retry never duplicates
    class_code: str
    writer: str
    label: int                       # 0-9, what the learner says it is
    source: str                      # one of SOURCES
    image: np.ndarray
    answers: Mapping[str, int] = field(default_factory=dict)  # model -> digit when saved
    strokes: str | None = None       # the canvas's JSON (lossless, re-renderable)
    created_at: datetime | None = None   # now (UTC) when None


def to_uint8(image: np.ndarray) -> np.ndarray:
    """``(28, 28)`` float in [0, 1] or uint8 -> ``(28, 28) uint8``; ValueError otherwise."""
    img = np.asarray(image)
    if img.shape != IMAGE_SHAPE:
        raise ValueError(f"a digit is 28x28 pixels, not {img.shape}")
    if img.dtype.kind == "f":
        if not np.all(np.isfinite(img)) or img.min() < 0 or img.max() > 1:
            raise ValueError("a float image must lie in [0, 1]")
        return np.round(img * 255).astype(np.uint8)
    if img.dtype != np.uint8:
        raise ValueError(f"a digit's pixels are uint8 or float, not {img.dtype}")
    return img


def _row(d: Digit, cfg: StoreConfig) -> dict:
    code = check_class_code(d.class_code, cfg)
    writer = check_writer(d.writer, cfg)
    if not (isinstance(d.label, (int, np.integer)) and 0 <= int(d.label) <= 9):
        raise ValueError(f"a label is a digit 0-9, not {d.label!r}")
    if d.source not in SOURCES:
        raise ValueError(f"unknown source {d.source!r}")
    uuidlib.UUID(d.id)   # ValueError if not a UUID
    if d.strokes is not None and len(d.strokes) > cfg.max_strokes_bytes:
        raise ValueError("the drawing's strokes are too large to store")
    answers = {str(k): int(v) for k, v in d.answers.items()}
    return {"id": d.id, "class_code": code, "writer": writer, "label": int(d.label),
            "source": d.source, "created_at": d.created_at or datetime.now(timezone.utc),
            "image": to_uint8(d.image).tobytes(), "strokes": d.strokes,
            "answers": json.dumps(answers, sort_keys=True)}


def _insert_ignoring_duplicates(conn: Connection, rows: list[dict]) -> int:
    """Insert ``rows``; an id already stored is left as it is. Returns rows inserted.

    One statement per row, counted by what ``RETURNING`` gives back (psycopg reports a
    rowcount of -1 for ``ON CONFLICT DO NOTHING`` executed through SQLAlchemy)."""
    name = conn.dialect.name
    if name in ("sqlite", "postgresql"):
        dialect = __import__(f"sqlalchemy.dialects.{name}", fromlist=["insert"])
        stmt = (dialect.insert(digits_table).on_conflict_do_nothing(index_elements=["id"])
                .returning(digits_table.c.id))
        return sum(conn.execute(stmt, r).first() is not None for r in rows)
    new = 0   # another dialect: look first (a racing duplicate still fails on the key)
    for r in rows:
        if conn.execute(sa.select(digits_table.c.id).where(digits_table.c.id == r["id"])).first():
            continue
        conn.execute(digits_table.insert(), [r])
        new += 1
    return new


def save_digit(engine: Engine, digit: Digit, cfg: StoreConfig = DEFAULT) -> bool:
    """Store one digit; True if stored now, False if its id was already there (a retry).

    ValueError for a bad digit (label, class code, image...), ClassStoreError when the
    database fails: then nothing was stored.
    """
    row = _row(digit, cfg)
    with _errors():
        with engine.begin() as conn:
            return _insert_ignoring_duplicates(conn, [row]) == 1


def delete_digit(engine: Engine, class_code: str, digit_id: str) -> bool:
    """Delete one digit of ``class_code`` (Undo); True if it was there."""
    with _errors():
        with engine.begin() as conn:
            gone = conn.execute(digits_table.delete().where(
                (digits_table.c.id == digit_id) & (digits_table.c.class_code == class_code)))
            return gone.rowcount == 1


def delete_class(engine: Engine, class_code: str) -> int:
    """Delete every digit of ``class_code``; returns how many."""
    with _errors():
        with engine.begin() as conn:
            return conn.execute(digits_table.delete().where(
                digits_table.c.class_code == check_class_code(class_code))).rowcount


# ---------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClassDigits:
    """A class's digits in saving order. ``images``: ``(N, 28, 28) uint8 in [0, 255]``."""

    ids: list[str]
    writers: list[str]
    labels: np.ndarray           # (N,) uint8 in [0, 9]
    sources: list[str]
    created: list[datetime]
    images: np.ndarray
    answers: list[dict[str, int]]    # each model's answer when the digit was saved
    strokes: list[str | None]

    def __len__(self) -> int:
        return len(self.ids)


def load_class(engine: Engine, class_code: str) -> ClassDigits:
    """Every digit of ``class_code``, oldest first (ties broken by id)."""
    code = check_class_code(class_code)
    t = digits_table
    with _errors():
        with engine.connect() as conn:
            rows = conn.execute(sa.select(t).where(t.c.class_code == code)
                                .order_by(t.c.created_at, t.c.id)).all()
    images = (np.frombuffer(b"".join(r.image for r in rows), np.uint8)
              .reshape(len(rows), *IMAGE_SHAPE).copy())
    return ClassDigits([r.id for r in rows], [r.writer for r in rows],
                       np.array([r.label for r in rows], np.uint8), [r.source for r in rows],
                       [r.created_at for r in rows], images,
                       [json.loads(r.answers) for r in rows], [r.strokes for r in rows])


def count_by_label(engine: Engine, class_code: str, writer: str | None = None) -> dict[int, int]:
    """How many digits of each label the class (or one writer of it) has saved."""
    t = digits_table
    where = t.c.class_code == check_class_code(class_code)
    if writer is not None:
        where = where & (t.c.writer == writer)
    with _errors():
        with engine.connect() as conn:
            rows = conn.execute(sa.select(t.c.label, sa.func.count()).where(where)
                                .group_by(t.c.label)).all()
    counts = {d: 0 for d in range(10)}
    counts.update({int(label): int(n) for label, n in rows})
    return counts


def count_ids(engine: Engine, ids: Sequence[str], cfg: StoreConfig = DEFAULT) -> dict[str, int]:
    """How many rows hold each of ``ids`` (the benchmark's duplicate check)."""
    t = digits_table
    out: dict[str, int] = {i: 0 for i in ids}
    with _errors():
        with engine.connect() as conn:
            for start in range(0, len(ids), cfg.id_chunk):
                chunk = list(ids[start:start + cfg.id_chunk])
                for i, n in conn.execute(sa.select(t.c.id, sa.func.count()).where(
                        t.c.id.in_(chunk)).group_by(t.c.id)).all():
                    out[i] = int(n)
    return out


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
    table = np.column_stack([labels.astype(int), images.reshape(len(images), -1).astype(int)])
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
        meta = json.loads(z.read("class.json"))
        npz = np.load(io.BytesIO(z.read("mnist.npz")), allow_pickle=False)
        arrays = {k: np.asarray(npz[k]) for k in ("x_train", "y_train", "x_test", "y_test")}
    except ImportFileError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, KeyError, ValueError, OSError,
            EOFError, RuntimeError) as exc:
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
        rows.append(_row(Digit(ident, code, r["writer"], r["label"], r["source"], r["image"],
                               r["answers"], r["strokes"], r["created_at"]), cfg))
    with _errors():
        with engine.begin() as conn:
            added = _insert_ignoring_duplicates(conn, rows)
    return added, len(rows) - added
