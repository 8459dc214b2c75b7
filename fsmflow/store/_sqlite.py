"""``SqliteStore``: the embedded default backend.

One SQLite file in WAL mode, one connection, and one worker thread at a time (an anyio
``CapacityLimiter`` of 1): every statement runs off the event loop, and writes are
serialised without SQLite's busy-waiting. A write that has started is never abandoned on
cancellation; the cancellation is delivered once the transaction has committed or rolled
back, so a cancelled caller never leaves a half-written batch.
"""

from __future__ import annotations

import enum
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from . import _leases
from ._errors import BackendError, SchemaError, StoreError, VersionConflict
from ._protocols import (
    Append,
    BatchOp,
    Checkpoint,
    Delete,
    DropLease,
    Fence,
    Lease,
    LogEntry,
    OfferLease,
    Put,
    ReleaseLease,
    Remove,
    Versioned,
)
from ._single_ops import SingleOpWrites

T = TypeVar("T")


class Durability(enum.Enum):
    """SQLite's ``synchronous`` setting: what a commit survives.

    ``FULL`` (the default) survives power loss; ``NORMAL`` survives a crash or kill of the
    process but may lose the last commits on power loss (WAL mode); ``OFF`` leaves
    syncing to the OS and is for tests and throwaway data.
    """

    OFF = "OFF"
    NORMAL = "NORMAL"
    FULL = "FULL"


#: Schema migrations: (version, statements). Append only; never edit a released step.
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            "CREATE TABLE kv (namespace TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,"
            " version INTEGER NOT NULL, PRIMARY KEY (namespace, key)) WITHOUT ROWID",
            "CREATE TABLE log_heads (log TEXT PRIMARY KEY, last_seq INTEGER NOT NULL)",
            "CREATE TABLE log (log TEXT NOT NULL, seq INTEGER NOT NULL, value BLOB NOT NULL,"
            " PRIMARY KEY (log, seq)) WITHOUT ROWID",
            "CREATE TABLE checkpoints (run_id TEXT NOT NULL, step INTEGER NOT NULL,"
            " value BLOB NOT NULL, created_at REAL NOT NULL, PRIMARY KEY (run_id, step))"
            " WITHOUT ROWID",
        ),
    ),
    (
        2,
        (
            "CREATE TABLE leases (resource TEXT PRIMARY KEY, owner TEXT NOT NULL,"
            " token INTEGER NOT NULL, expires_at REAL NOT NULL) WITHOUT ROWID",
            "CREATE INDEX leases_by_expiry ON leases (expires_at)",
        ),
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]


class SqliteStore(SingleOpWrites):
    """A :class:`Store` in one SQLite file; create it with ``await SqliteStore.open(path)``.

    Use it as an async context manager or call :meth:`aclose`.
    """

    def __init__(self, connection: sqlite3.Connection, path: str) -> None:
        self._db = connection
        self.path = path
        self._limiter = anyio.CapacityLimiter(1)
        self._closed = False

    @classmethod
    async def open(
        cls, path: str | os.PathLike[str], *, durability: Durability = Durability.FULL
    ) -> SqliteStore:
        """Open (creating if needed) the database at ``path`` and migrate its schema.

        Raises :class:`SchemaError` when the file was written by a newer schema.
        """
        location = os.fspath(path)

        def connect() -> sqlite3.Connection:
            db = sqlite3.connect(location, isolation_level=None, check_same_thread=False)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(f"PRAGMA synchronous={durability.value}")
                _migrate(db, location)
            except BaseException:
                db.close()
                raise
            return db

        return cls(await anyio.to_thread.run_sync(connect), location)

    async def __aenter__(self) -> SqliteStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await anyio.to_thread.run_sync(self._db.close, limiter=self._limiter)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise StoreError(f"SqliteStore {self.path!r} is closed")
        try:
            return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)
        except sqlite3.Error as exc:
            raise BackendError(f"SqliteStore {self.path!r}: {fn.__name__}", str(exc)) from exc

    # -- key / value ------------------------------------------------------------------

    async def get(self, namespace: str, key: str) -> Versioned | None:
        row = await self._run(
            _fetchone,
            self._db,
            "SELECT value, version FROM kv WHERE namespace=? AND key=?",
            (namespace, key),
        )
        return None if row is None else Versioned(bytes(row[0]), row[1])

    async def keys(self, namespace: str) -> list[str]:
        rows = await self._run(
            _fetchall, self._db, "SELECT key FROM kv WHERE namespace=? ORDER BY key", (namespace,)
        )
        return [r[0] for r in rows]

    # -- logs -------------------------------------------------------------------------

    async def read(self, log: str, *, after: int = 0, limit: int | None = None) -> list[LogEntry]:
        rows = await self._run(
            _fetchall,
            self._db,
            "SELECT seq, value FROM log WHERE log=? AND seq>? ORDER BY seq LIMIT ?",
            (log, after, -1 if limit is None else limit),
        )
        return [LogEntry(r[0], bytes(r[1])) for r in rows]

    async def length(self, log: str) -> int:
        row = await self._run(_fetchone, self._db, "SELECT COUNT(*) FROM log WHERE log=?", (log,))
        assert row is not None
        return int(row[0])

    # -- checkpoints ------------------------------------------------------------------

    async def save_checkpoint(self, run_id: str, step: int, value: bytes) -> None:
        await self._run(
            _execute_in_transaction,
            self._db,
            "INSERT OR REPLACE INTO checkpoints (run_id, step, value, created_at) VALUES (?,?,?,?)",
            (run_id, step, value, time.time()),
        )

    async def latest_checkpoint(self, run_id: str) -> Checkpoint | None:
        row = await self._run(
            _fetchone,
            self._db,
            "SELECT run_id, step, value, created_at FROM checkpoints WHERE run_id=?"
            " ORDER BY step DESC LIMIT 1",
            (run_id,),
        )
        return None if row is None else Checkpoint(row[0], row[1], bytes(row[2]), row[3])

    async def checkpoints(self, run_id: str) -> list[Checkpoint]:
        rows = await self._run(
            _fetchall,
            self._db,
            "SELECT run_id, step, value, created_at FROM checkpoints WHERE run_id=? ORDER BY step",
            (run_id,),
        )
        return [Checkpoint(r[0], r[1], bytes(r[2]), r[3]) for r in rows]

    async def runs(self) -> list[str]:
        rows = await self._run(
            _fetchall, self._db, "SELECT DISTINCT run_id FROM checkpoints ORDER BY run_id", ()
        )
        return [r[0] for r in rows]

    async def delete_run(self, run_id: str) -> int:
        return await self._run(
            _execute_in_transaction, self._db, "DELETE FROM checkpoints WHERE run_id=?", (run_id,)
        )

    # -- leases -----------------------------------------------------------------------

    async def clock(self) -> float:
        """The machine's wall clock, which every process on this file shares."""
        return time.time()

    async def acquire_lease(self, resource: str, owner: str, ttl: float) -> Lease:
        return await self._run(_acquire_lease, self._db, resource, owner, ttl)

    async def renew_lease(self, lease: Lease, ttl: float) -> Lease:
        return await self._run(_renew_lease, self._db, lease, ttl)

    async def get_lease(self, resource: str) -> Lease | None:
        return await self._run(_lease_row, self._db, resource)

    async def claim_leases(self, prefix: str, owner: str, ttl: float, *, limit: int) -> list[Lease]:
        return await self._run(_claim_leases, self._db, prefix, owner, ttl, limit)

    # -- batches ----------------------------------------------------------------------

    async def write_batch(
        self, ops: Sequence[BatchOp], *, fence: Fence | None = None
    ) -> list[int | bool | None]:
        return await self._run(_write_batch, self._db, list(ops), fence)


# The functions below run in the worker thread.


def _fetchone(db: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> Any:
    return db.execute(sql, params).fetchone()


def _fetchall(db: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> list[Any]:
    return db.execute(sql, params).fetchall()


def _execute_in_transaction(db: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> int:
    return _in_write_transaction(db, lambda: db.execute(sql, params).rowcount)


def _in_write_transaction(db: sqlite3.Connection, body: Callable[[], T]) -> T:
    """``body()`` inside ``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back if it raises."""
    db.execute("BEGIN IMMEDIATE")
    try:
        result = body()
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return result


def _lease_row(db: sqlite3.Connection, resource: str) -> Lease | None:
    row = db.execute(
        "SELECT owner, token, expires_at FROM leases WHERE resource=?", (resource,)
    ).fetchone()
    return None if row is None else Lease(resource, row[0], row[1], row[2])


def _save_lease(db: sqlite3.Connection, lease: Lease) -> None:
    db.execute(
        "INSERT INTO leases (resource, owner, token, expires_at) VALUES (?,?,?,?)"
        " ON CONFLICT (resource) DO UPDATE SET owner=excluded.owner, token=excluded.token,"
        " expires_at=excluded.expires_at",
        (lease.resource, lease.owner, lease.token, lease.expires_at),
    )


def _acquire_lease(db: sqlite3.Connection, resource: str, owner: str, ttl: float) -> Lease:
    def body() -> Lease:
        lease = _leases.acquired(_lease_row(db, resource), resource, owner, ttl, time.time())
        _save_lease(db, lease)
        return lease

    return _in_write_transaction(db, body)


def _renew_lease(db: sqlite3.Connection, lease: Lease, ttl: float) -> Lease:
    def body() -> Lease:
        renewed = _leases.renewed(_lease_row(db, lease.resource), lease, ttl, time.time())
        _save_lease(db, renewed)
        return renewed

    return _in_write_transaction(db, body)


def _claim_leases(
    db: sqlite3.Connection, prefix: str, owner: str, ttl: float, limit: int
) -> list[Lease]:
    def body() -> list[Lease]:
        now = time.time()
        rows = db.execute(
            "SELECT resource, owner, token, expires_at FROM leases"
            " WHERE resource >= ? AND resource < ? AND expires_at <= ?"
            " ORDER BY expires_at, resource LIMIT ?",
            (prefix, prefix + "\U0010ffff", now, max(0, limit)),
        ).fetchall()
        claimed = []
        for resource, row_owner, token, expires_at in rows:
            row = Lease(resource, row_owner, token, expires_at)
            lease = _leases.acquired(row, resource, owner, ttl, now)
            _save_lease(db, lease)
            claimed.append(lease)
        return claimed

    return _in_write_transaction(db, body)


def _write_batch(
    db: sqlite3.Connection, ops: list[BatchOp], fence: Fence | None
) -> list[int | bool | None]:
    def body() -> list[int | bool | None]:
        if fence is not None:
            _leases.check_fence(_lease_row(db, fence.resource), fence)
        return [_apply(db, op) for op in ops]

    return _in_write_transaction(db, body)


def _apply(db: sqlite3.Connection, op: BatchOp) -> int | bool:
    if isinstance(op, Put):
        row = db.execute(
            "SELECT version FROM kv WHERE namespace=? AND key=?", (op.namespace, op.key)
        ).fetchone()
        current = 0 if row is None else int(row[0])
        if op.expected_version is not None and op.expected_version != current:
            raise VersionConflict(f"{op.namespace}/{op.key}", op.expected_version, current)
        db.execute(
            "INSERT INTO kv (namespace, key, value, version) VALUES (?,?,?,?)"
            " ON CONFLICT (namespace, key) DO UPDATE SET value=excluded.value,"
            " version=excluded.version",
            (op.namespace, op.key, op.value, current + 1),
        )
        return current + 1
    if isinstance(op, Delete):
        cursor = db.execute("DELETE FROM kv WHERE namespace=? AND key=?", (op.namespace, op.key))
        return cursor.rowcount > 0
    if isinstance(op, Append):
        (seq,) = db.execute(
            "INSERT INTO log_heads (log, last_seq) VALUES (?, 1) ON CONFLICT (log)"
            " DO UPDATE SET last_seq=last_seq+1 RETURNING last_seq",
            (op.log,),
        ).fetchone()
        db.execute("INSERT INTO log (log, seq, value) VALUES (?,?,?)", (op.log, seq, op.value))
        return int(seq)
    if isinstance(op, Remove):
        cursor = db.execute("DELETE FROM log WHERE log=? AND seq=?", (op.log, op.seq))
        return cursor.rowcount > 0
    return _apply_lease(db, op)


def _apply_lease(db: sqlite3.Connection, op: OfferLease | ReleaseLease | DropLease) -> bool:
    if isinstance(op, DropLease):
        return db.execute("DELETE FROM leases WHERE resource=?", (op.resource,)).rowcount > 0
    row = _lease_row(db, op.resource)
    if isinstance(op, OfferLease):
        offered = _leases.offered(row, op.resource, op.delay, time.time())
        if offered is None:
            return False
        _save_lease(db, offered)
        return True
    _save_lease(db, _leases.released(row, op.resource, op.token, op.delay, time.time()))
    return True


def _migrate(db: sqlite3.Connection, location: str) -> None:
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise SchemaError(
            f"{location} has schema version {version}, newer than this fsmflow's "
            f"{SCHEMA_VERSION}; upgrade fsmflow to open it"
        )
    for target, statements in MIGRATIONS:
        if target <= version:
            continue
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in statements:
                db.execute(statement)
            db.execute(f"PRAGMA user_version={target}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
