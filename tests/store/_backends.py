"""Every store backend for tests: ``MemoryStore``, ``SqliteStore`` and a real PostgreSQL.

Use the ``any_store`` fixture (import it into your test module) to run a trio test once per
backend, or :func:`open_backend` inside a test (also under ``each_backend``):

    from tests.store._backends import any_store  # noqa: F401  (the fixture)

    async def test_something(any_store: Store) -> None: ...

PostgreSQL: the server named by ``FSMFLOW_TEST_POSTGRES_DSN`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``, trust auth). Each test process creates
its own database (``fsmflow_test_<pid>_<random>``) on first use and drops it at exit
(databases left by dead processes are dropped too); each store gets a fresh schema in it,
dropped after the test. Without a server the PostgreSQL cases are skipped — except under
``CI=true``, where a missing server fails them.
"""

from __future__ import annotations

import atexit
import os
import re
import secrets
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import psycopg
import pytest

from fsmflow.store import Durability, MemoryStore, PostgresStore, SqliteStore, Store

#: The backends, in the order tests run on them.
BACKENDS = ("memory", "sqlite", "postgres")
DSN_VARIABLE = "FSMFLOW_TEST_POSTGRES_DSN"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"

_lock = threading.Lock()
_database_dsn: str | None = None
_unavailable: str | None = None


def server_dsn() -> str:
    """The DSN of the server's maintenance database (where databases are created)."""
    return os.environ.get(DSN_VARIABLE, DEFAULT_DSN)


def postgres_dsn() -> str:
    """The DSN of this test process's own database, created on first use; skips (or
    fails under ``CI=true``) when no server answers."""
    global _database_dsn, _unavailable
    with _lock:
        if _database_dsn is None and _unavailable is None:
            try:
                _database_dsn = _create_database()
            except psycopg.OperationalError as exc:
                _unavailable = str(exc).strip()
        if _database_dsn is not None:
            return _database_dsn
    message = f"no PostgreSQL server at {server_dsn()} ({_unavailable})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI needs one (.ci/run starts it)")
    pytest.skip(message)


def _create_database() -> str:
    name = f"fsmflow_test_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(server_dsn(), autocommit=True, connect_timeout=5) as admin:
        _drop_abandoned(admin)
        admin.execute(f'CREATE DATABASE "{name}"')
    atexit.register(_drop_database, name)
    return psycopg.conninfo.make_conninfo(server_dsn(), dbname=name)


def _drop_abandoned(admin: psycopg.Connection[tuple[object, ...]]) -> None:
    """Drop test databases whose creating process (on this machine) is gone."""
    rows = admin.execute(
        "SELECT datname FROM pg_database WHERE datname LIKE 'fsmflow\\_test\\_%'"
    ).fetchall()
    for (name,) in rows:
        match = re.fullmatch(r"fsmflow_test_(\d+)_[0-9a-f]+", str(name))
        if match and not _alive(int(match.group(1))):
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _drop_database(name: str) -> None:
    try:
        with psycopg.connect(server_dsn(), autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except psycopg.Error:
        pass


def new_schema() -> str:
    return f"t_{secrets.token_hex(6)}"


def drop_schema(schema: str) -> None:
    with psycopg.connect(postgres_dsn(), autocommit=True) as db:
        db.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@asynccontextmanager
async def open_backend(
    kind: str, tmp_path: Path, *, durability: Durability = Durability.OFF
) -> AsyncIterator[Store]:
    """A fresh, empty store of ``kind`` (one of :data:`BACKENDS`), closed (and its
    PostgreSQL schema dropped) afterwards."""
    if kind == "memory":
        memory = MemoryStore()
        try:
            yield memory
        finally:
            await memory.aclose()
    elif kind == "sqlite":
        path = tmp_path / f"store-{secrets.token_hex(4)}.sqlite3"
        async with await SqliteStore.open(path, durability=durability) as sqlite:
            yield sqlite
    elif kind == "postgres":
        dsn, schema = postgres_dsn(), new_schema()
        try:
            async with await PostgresStore.open(dsn, schema=schema) as postgres:
                yield postgres
        finally:
            drop_schema(schema)
    else:
        raise ValueError(f"unknown backend {kind!r}; one of {BACKENDS}")


@pytest.fixture(params=BACKENDS)
async def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A fresh store, once per backend (trio tests)."""
    async with open_backend(request.param, tmp_path) as store:
        yield store
