"""Reaching a class's SQL database (SQLAlchemy): SQLite by default, PostgreSQL (or any
SQLAlchemy URL) for a deployment with several replicas.

Here: the store's limits (:class:`StoreConfig`), engines made ready for a class saving at
once, and every database failure raised as :class:`ClassStoreError`, whose ``kind`` says
what happened (unreachable, locked, full, read-only) and whose message a learner can read.

This module never imports streamlit.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine


@dataclass(frozen=True)
class StoreConfig:
    """Limits on what one saved digit and one import may hold."""

    max_class_len: int = 16          # class codes are typed by children: short
    max_writer_len: int = 24         # a nickname or "w-" + a short random id
    max_strokes_bytes: int = 200_000  # canvas JSON of a busy digit is ~5-30 kB
    max_import_bytes: int = 50_000_000  # one export zip; ~20 bytes per pixel row in CSV
    max_import_digits: int = 100_000   # rows in one import
    max_import_json_bytes: int = 64 * 2**20  # class.json unpacked: ids, nicknames, strokes
                                     # (~5-30 kB a drawn digit), refused past this unread
    sqlite_busy_ms: int = 30_000     # how long a SQLite writer waits for the lock
    test_every: int = 5              # single-writer exports: every 5th digit goes to test
    test_writer_share: float = 0.2   # several writers: about this share of writers to test
    pg_connect_timeout_s: int = 5    # a dead PostgreSQL fails a save in seconds, not minutes
    pg_pool_size: int = 2            # connections a replica keeps open ($MNIST_STUDIO_DB_POOL_SIZE)
    pg_max_overflow: int = 3         # more under load, closed after ($MNIST_STUDIO_DB_MAX_OVERFLOW):
                                     # 5 a replica, so 18 replicas fit PostgreSQL's 100 with
                                     # 10 to spare (a save holds one for ~5 ms: CAPACITY.md)
    pg_pool_timeout_s: int = 10      # a save waiting this long for a connection fails, saying so
    id_chunk: int = 500              # ids per IN (...) query: under SQLite's parameter limit


DEFAULT = StoreConfig()


class ClassStoreError(RuntimeError):
    """The database could not do what was asked. ``kind``: ``unreachable``, ``locked``,
    ``full``, ``read-only``, ``disk``, ``damaged``, ``vanished``, ``schema``, ``no-class``
    or ``error``; the message is for a person and names the kind in words."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------

_KINDS = (  # (kind, words in the driver's message, what a person is told)
    ("locked", ("database is locked", "lock timeout", "deadlock"),
     "The class database is busy (locked by another save)."),
    ("full", ("disk is full", "database or disk is full", "no space left", "disk full"),
     "The class database's disk is full."),
    ("read-only", ("readonly database", "read-only", "read only", "attempt to write a readonly"),
     "The class database is read-only here: its file (or its folder) cannot be written."),
    ("disk", ("disk i/o error", "file too large", "input/output error"),
     "The class database's disk refused to read or write (a disk I/O error: a size limit "
     "on the file, a failing or vanished disk)."),
    ("damaged", ("file is not a database", "malformed", "file is encrypted"),
     "The class database file is damaged (not a readable SQLite database)."),
    ("schema", ("no such table", "no such column", 'relation "'),
     "The class database is missing its tables (was its file replaced or emptied?)."),
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
    detail = str(getattr(exc, "orig", None) or exc).splitlines()[0][:100] if str(exc) else ""
    detail = re.sub(r"(/[^\s'\"]+)+", "<path>", detail)   # never a server path
    return ClassStoreError("error", f"The class database failed with an unexpected error "
                                    f"({detail or 'no details given'}).")


class database_errors:
    """``with database_errors():`` turns SQLAlchemy/driver/OS errors into ClassStoreError."""

    def __enter__(self):
        return self

    def __exit__(self, typ, exc, tb):
        if exc is None or isinstance(exc, ClassStoreError):
            return False
        if isinstance(exc, (sa.exc.SQLAlchemyError, OSError)):
            raise classify(exc) from exc
        return False


# ---------------------------------------------------------------------------------------
# Engines
# ---------------------------------------------------------------------------------------

def sqlite_url(path: str | Path) -> str:
    """A SQLAlchemy URL for a SQLite file (its folder is created on first use)."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


POOL_ENV = ("MNIST_STUDIO_DB_POOL_SIZE", "MNIST_STUDIO_DB_MAX_OVERFLOW")
# A database URL's parts, each from its own environment variable (deploy/compose.yaml):
# the password is quoted into the URL here, never pasted into it by hand.
URL_PARTS_ENV = {"host": "MNIST_STUDIO_DB_HOST", "port": "MNIST_STUDIO_DB_PORT",
                 "database": "MNIST_STUDIO_DB_NAME", "username": "MNIST_STUDIO_DB_USER",
                 "password": "MNIST_STUDIO_DB_PASSWORD"}
URL_DRIVER = "postgresql+psycopg"


def config_from_env(env=os.environ, cfg: StoreConfig = DEFAULT) -> StoreConfig:
    """``cfg`` with the pool sizes from ``$MNIST_STUDIO_DB_POOL_SIZE`` and
    ``$MNIST_STUDIO_DB_MAX_OVERFLOW`` when set (whole numbers; ValueError otherwise)."""
    from dataclasses import replace
    size, overflow = (env.get(name) for name in POOL_ENV)
    return replace(cfg, pg_pool_size=int(size) if size else cfg.pg_pool_size,
                   pg_max_overflow=int(overflow) if overflow else cfg.pg_max_overflow)


def url_from_parts(env=os.environ) -> str | None:
    """A PostgreSQL URL from ``$MNIST_STUDIO_DB_HOST`` and the other :data:`URL_PARTS_ENV`
    variables, every part quoted (a password with ``@``, ``%``, ``/`` or ``:`` stays a
    password); None when no host is set."""
    parts = {key: env.get(name) or None for key, name in URL_PARTS_ENV.items()}
    if not parts["host"]:
        return None
    port = int(parts.pop("port")) if parts.get("port") else None
    url = sa.URL.create(URL_DRIVER, port=port, **parts)
    return url.render_as_string(hide_password=False)


def engine_kwargs(url: str, cfg: StoreConfig = DEFAULT) -> dict:
    """``create_engine`` keyword arguments for ``url``: SQLite waits ``sqlite_busy_ms`` for
    the write lock instead of failing at once; a server database gets a bounded pool
    (``pg_pool_size`` + ``pg_max_overflow`` connections per process)."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": cfg.sqlite_busy_ms / 1000}}
    return {"pool_pre_ping": True, "pool_size": cfg.pg_pool_size,
            "max_overflow": cfg.pg_max_overflow, "pool_timeout": cfg.pg_pool_timeout_s,
            "connect_args": {"connect_timeout": cfg.pg_connect_timeout_s}}


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
        # The file this engine opened first: a later connection to another file at the
        # same path (the first deleted, a new empty one made) is told apart by verify_file.
        engine.__dict__.setdefault("_class_store_file", _file_identity(engine))

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn):
        verify_file(engine)   # never write into a file deleted while the app runs
        # IMMEDIATE takes the write lock up front (migrations): no upgrade from a read lock
        # that could fail half-way with "database is locked".
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    engine._class_store_ready = True  # type: ignore[attr-defined]
    return engine


def _file_identity(engine: Engine) -> tuple[int, int] | None:
    """``(device, inode)`` of a SQLite engine's file; None when it has none (in memory)
    or it is gone."""
    path = engine.url.database
    if engine.dialect.name != "sqlite" or not path or path == ":memory:":
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def verify_file(engine: Engine) -> None:
    """ClassStoreError("vanished") when a SQLite engine's file was deleted or replaced
    since the engine first opened it: SQLite would go on writing into the deleted file,
    and every save acknowledged then would be lost. A no-op for other databases."""
    first = engine.__dict__.get("_class_store_file")
    if first is None:
        return
    if _file_identity(engine) != first:
        raise ClassStoreError("vanished", "The class database file was deleted or replaced "
                              "while the app was running, so nothing more can be saved in it "
                              "(saving on would lose the digits). Whoever runs the app must "
                              "restore the file, or restart the app to start a new one.")


def make_engine(url: str, cfg: StoreConfig = DEFAULT) -> Engine:
    """A ready engine for ``url`` (SQLite prepared by :func:`prepare_engine`)."""
    return prepare_engine(sa.create_engine(url, **engine_kwargs(url, cfg)), cfg)
