"""The class database's tables and their versioned migrations.

``class_digits`` holds one row per saved digit, keyed by a client-generated UUID;
``classes`` one row per class, with its teacher's PIN (hashed); ``class_pin_failures`` the
wrong PINs typed lately, for the rate limits (:mod:`.class_access`); ``class_schema`` the
version the database holds. The schema is created and upgraded by
:func:`migrate`, never by hand.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .class_engine import ClassStoreError, database_errors

MIGRATION_LOCK = 741201   # PostgreSQL advisory lock key held while migrating (any constant)

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

classes_table = sa.Table(
    "classes", metadata,
    sa.Column("code", sa.String(16), primary_key=True),
    sa.Column("pin_hash", sa.String(200), nullable=True),  # scrypt; NULL: a class from before
                                                           # version 3, closed until claimed
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
failures_table = sa.Table(
    "class_pin_failures", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("class_code", sa.String(16), nullable=False, index=True),
    sa.Column("client", sa.String(64), nullable=False, index=True),   # who typed it
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)


def _v1(conn: Connection) -> None:
    digits_table.create(conn, checkfirst=True)


def _v2(conn: Connection) -> None:
    # The dashboard reads a class's digits in saving order, per writer.
    # Plain DDL: an sa.Index on the Table object would join the table's own definition and
    # be created by _v1 too, so version 1 could never be reproduced.
    conn.execute(sa.text("CREATE INDEX IF NOT EXISTS ix_class_digits_class_writer "
                         "ON class_digits (class_code, writer)"))


def _v3(conn: Connection) -> None:
    # Classes belong to their teacher: every class already holding digits becomes a
    # class without a PIN, closed (nothing shown, nothing added) until the deployment's
    # teacher PIN claims it and sets its own.
    classes_table.create(conn, checkfirst=True)
    failures_table.create(conn, checkfirst=True)
    conn.execute(classes_table.insert().from_select(
        ["code", "pin_hash", "created_at"],
        sa.select(digits_table.c.class_code, sa.null(), sa.func.min(digits_table.c.created_at))
        .group_by(digits_table.c.class_code)))


MIGRATIONS: tuple[Callable[[Connection], None], ...] = (_v1, _v2, _v3)  # index i -> version i+1
LATEST = len(MIGRATIONS)


def schema_version(engine: Engine) -> int:
    """The schema version the database holds (0: none yet)."""
    with database_errors():
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
    with database_errors():
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
