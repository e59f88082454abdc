"""Fixtures for the class store, on both backends: a fresh SQLite file, and a fresh
database on the PostgreSQL server named by ``$CLASSROOM_TEST_PG_URL`` (``scripts/test.sh``
starts one with ``scripts/postgres.sh`` and sets it).

With the variable unset (pytest run by hand) the PostgreSQL cases skip and say how to run
them; with it set, an unreachable server FAILS them: a CI run must not pass on SQLite alone.

Test modules import what they use: ``from class_db import store_engine, BACKENDS``.
"""

from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy as sa

from mnist_core.classroom import class_access, class_engine, class_schema

PG_ENV = "CLASSROOM_TEST_PG_URL"
BACKENDS = ("sqlite", "postgresql")
OPEN_CLASSES = ("7b", "8a")        # classes store_engine opens, each with PIN_OF[code]
# scrypt at its cheapest: a test hashes many PINs (the app's cost is ACCESS.scrypt_n)
CHEAP = class_access.AccessConfig(scrypt_n=2**4)


def pin_of(code: str) -> str:
    return f"pin-{code}-pin"


def open_classes(engine, codes=OPEN_CLASSES) -> None:
    """Create the classes ``codes`` (PIN: :func:`pin_of`), as a teacher does on the dashboard."""
    for code in codes:
        class_access.create_class(engine, code, pin_of(code), CHEAP)


def pg_url() -> str | None:
    return os.environ.get(PG_ENV) or None


def _pg_database() -> tuple[str, sa.Engine]:
    """A new, empty database on the test server: ``(its URL, an admin engine)``."""
    url = pg_url()
    if url is None:
        pytest.skip(f"${PG_ENV} is not set: run `export {PG_ENV}=$(bash scripts/postgres.sh)` "
                    f"(scripts/test.sh does) to run the PostgreSQL cases")
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT",
                             connect_args={"connect_timeout": 5})
    name = "classroom_test_" + uuid.uuid4().hex[:12]
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.fail(f"${PG_ENV} is set but its PostgreSQL server is unreachable: {exc}",
                    pytrace=False)
    return str(sa.make_url(url).set(database=name)), admin


def _drop(admin: sa.Engine, url: str) -> None:
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{sa.make_url(url).database}" '
                             f'WITH (FORCE)')
    admin.dispose()


@pytest.fixture(params=BACKENDS)
def store_url(request, tmp_path):
    """A URL to an empty database of each backend (no schema yet)."""
    if request.param == "sqlite":
        yield class_engine.sqlite_url(tmp_path / "db" / "classroom.sqlite")
        return
    url, admin = _pg_database()
    yield url
    _drop(admin, url)


@pytest.fixture
def store_engine(store_url):
    """A migrated engine on each backend, with the classes :data:`OPEN_CLASSES` created."""
    engine = class_engine.make_engine(store_url)
    class_schema.migrate(engine)
    open_classes(engine)
    yield engine
    engine.dispose()
