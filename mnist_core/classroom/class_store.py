"""A class's own handwritten digits in SQL: checking, saving, deleting and reading them.

One table, ``class_digits`` (:mod:`.class_schema`), one row per saved digit, keyed by a
client-generated UUID so a save that is retried (a timeout, a double click, a rerun) never
stores the digit twice. Every database failure is raised as
:class:`~mnist_core.classroom.class_engine.ClassStoreError` (:mod:`.class_engine`).

Images are ``(28, 28) uint8 in [0, 255]`` white on black, as :mod:`mnist_core.datasets.data` keeps
them; a class's export zip and its import are :mod:`.class_archive`.

This module never imports streamlit.
"""

from __future__ import annotations

import json
import re
import uuid as uuidlib
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .class_engine import DEFAULT, ClassStoreError, StoreConfig, database_errors, verify_file
from .class_schema import classes_table, digits_table

IMAGE_SHAPE = (28, 28)
SOURCES = ("collect", "flag-draw", "flag-upload", "import")  # where a digit came from
CLASS_CODE = re.compile(r"[a-z0-9-]+")
WRITER = re.compile(r"[A-Za-z0-9 _.-]+")


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


def to_row(d: Digit, cfg: StoreConfig) -> dict:
    """``d`` checked (ValueError) as the ``class_digits`` row that stores it."""
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


def insert_ignoring_duplicates(conn: Connection, rows: list[dict]) -> int:
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


def require_open_class(conn: Connection, code: str) -> None:
    """ClassStoreError("no-class") unless class ``code`` exists and has its teacher's PIN
    (:mod:`.class_access`): digits go only into a class a teacher made."""
    row = conn.execute(sa.select(classes_table.c.pin_hash)
                       .where(classes_table.c.code == code)).first()
    if row is None or not row.pin_hash:
        raise ClassStoreError("no-class", f"There is no open class {code}: check the class "
                              f"code with your teacher.")


@contextmanager
def writing(engine: Engine):
    """A transaction that reads then writes: SQLite takes its write lock up front (waiting
    its busy timeout for it), as a read lock that had to become a write lock could fail at
    once with "database is locked" while another save commits."""
    with engine.connect().execution_options(sqlite_immediate=True) as conn:
        with conn.begin():
            yield conn


def save_digit(engine: Engine, digit: Digit, cfg: StoreConfig = DEFAULT) -> bool:
    """Store one digit in an open class; True if stored now, False if its id was already
    there (a retry). Returns only once the database has committed it (and, for SQLite,
    the file committed to is still the database's file).

    ValueError for a bad digit (label, class code, image...), ClassStoreError when the
    class is not open or the database fails: then nothing was stored.
    """
    row = to_row(digit, cfg)
    with database_errors():
        with writing(engine) as conn:
            require_open_class(conn, row["class_code"])
            stored = insert_ignoring_duplicates(conn, [row]) == 1
        verify_file(engine)
    return stored


def delete_digit(engine: Engine, class_code: str, digit_id: str) -> bool:
    """Delete one digit of ``class_code`` (Undo); True if it was there."""
    with database_errors():
        with engine.begin() as conn:
            gone = conn.execute(digits_table.delete().where(
                (digits_table.c.id == digit_id) & (digits_table.c.class_code == class_code)))
            return gone.rowcount == 1


def delete_class(engine: Engine, class_code: str) -> int:
    """Delete every digit of ``class_code``; returns how many."""
    with database_errors():
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
    with database_errors():
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
    with database_errors():
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
    with database_errors():
        with engine.connect() as conn:
            for start in range(0, len(ids), cfg.id_chunk):
                chunk = list(ids[start:start + cfg.id_chunk])
                for i, n in conn.execute(sa.select(t.c.id, sa.func.count()).where(
                        t.c.id.in_(chunk)).group_by(t.c.id)).all():
                    out[i] = int(n)
    return out
