"""``SqliteStore``: the embedded default backend, for one machine and many processes.

One SQLite file in WAL mode, shared safely by every process that opens it: each write is
a ``BEGIN IMMEDIATE`` transaction, a busy connection waits up to ``busy_timeout`` for
another process's lock, and readers never block writers.

Writes go through group commit (:mod:`fsmflow.store._group`): writes that arrive
together share one transaction, each caller's batch atomic on its own. At
``Durability.NORMAL`` and ``OFF`` a commit writes to the WAL without an fsync, so the
group is applied on the event loop's thread — no thread hop — unless another process
holds the lock, in which case the group waits for it on the store's worker thread. At
``FULL`` every commit fsyncs, so the whole group runs on the worker thread. Reads use
their own connection on a reader thread. WAL checkpoints (which fsync) run on the worker
thread, never on the event loop.
"""

from __future__ import annotations

import enum
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from . import _leases
from . import _sqlite_sql as sql
from ._errors import BackendError, SchemaError, StoreError
from ._group import GroupCommit, Request
from ._notify import NotificationHub
from ._protocols import (
    BatchOp,
    Checkpoint,
    Fence,
    Lease,
    Listener,
    LogEntry,
    Notify,
    Versioned,
)
from ._single_ops import SingleOpWrites
from ._threads import Worker

T = TypeVar("T")

SCHEMA_VERSION = sql.SCHEMA_VERSION

#: Check the WAL's size after this many commits, and checkpoint it past this many bytes.
_CHECKPOINT_EVERY = 128
_CHECKPOINT_WAL_BYTES = 4 << 20


class Durability(enum.Enum):
    """SQLite's ``synchronous`` setting: what a commit survives.

    ``FULL`` (the default) survives power loss; ``NORMAL`` survives a crash or kill of the
    process but may lose the last commits on power loss (WAL mode); ``OFF`` leaves
    syncing to the OS and is for tests and throwaway data.
    """

    OFF = "OFF"
    NORMAL = "NORMAL"
    FULL = "FULL"


class SqliteStore(SingleOpWrites):
    """A :class:`Store` in one SQLite file; create it with ``await SqliteStore.open(path)``.

    Use it as an async context manager or call :meth:`aclose`. A store belongs to the
    event loop that opened it. Every failure surfaces as a :class:`StoreError`:
    SQLite's own errors as :class:`BackendError` carrying SQLite's message and the file's
    path, damaged cells as :class:`DecodeError`.
    """

    def __init__(
        self,
        path: str,
        writer: sqlite3.Connection,
        reader: sqlite3.Connection,
        durability: Durability,
        busy_timeout: float,
        poll_interval: float,
    ) -> None:
        self.path = path
        self.durability = durability
        self._writer = writer
        self._reader = reader
        self._busy_ms = int(busy_timeout * 1000)
        self._inline = durability is not Durability.FULL
        self._poll_interval = poll_interval
        self._where = f"SqliteStore {path!r}"
        self._worker = Worker(f"fsmflow-sqlite-writer {path}")
        self._reads = Worker(f"fsmflow-sqlite-reader {path}")
        self._group = GroupCommit(self._execute, self._execute_now)
        self._hub = NotificationHub()
        self._commits = 0
        self._checkpointing = False
        self._closed = False

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        durability: Durability = Durability.FULL,
        busy_timeout: float = 5.0,
        poll_interval: float = 0.5,
    ) -> SqliteStore:
        """Open (creating if needed) the database at ``path`` and migrate its schema.

        ``busy_timeout`` is how long a write waits for another process's lock before
        failing with ``BackendError("... database is locked")``; ``poll_interval`` is how
        often a :meth:`listen`-er looks for notifications sent by other processes.
        Raises :class:`SchemaError` when the file was written by a newer schema and
        :class:`BackendError` naming the file when it cannot be used (not a database,
        corrupt, unreadable, on a file system where WAL mode does not work).
        """
        location = os.fspath(path)
        if location == ":memory:" or location.startswith("file:"):
            raise ValueError(
                f"SqliteStore needs a file path, not {location!r}; use MemoryStore for "
                "a store in memory"
            )
        if not (busy_timeout >= 0 and poll_interval > 0):
            raise ValueError("busy_timeout must be >= 0 and poll_interval > 0 seconds")
        busy_ms = int(busy_timeout * 1000)
        inline = durability is not Durability.FULL

        def connect() -> tuple[sqlite3.Connection, sqlite3.Connection]:
            writer = _connect(location, busy_ms)
            try:
                mode = writer.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise BackendError(
                        f"SqliteStore {location!r}: open",
                        f"SQLite could not switch the file to WAL mode (it stayed in "
                        f"{mode!r} mode); a network file system cannot share a SQLite "
                        "database between processes safely: use a local disk or "
                        "PostgresStore",
                    )
                writer.execute(f"PRAGMA synchronous={durability.value}")
                # WAL checkpoints fsync: the worker thread runs them (_maybe_checkpoint),
                # and a reset WAL is cut back to 1 MiB.
                writer.execute("PRAGMA wal_autocheckpoint=0")
                writer.execute("PRAGMA journal_size_limit=1048576")
                sql.migrate(writer, location)
                if inline:
                    # The event loop never waits for a lock: it hands a busy group over.
                    writer.execute("PRAGMA busy_timeout=0")
                reader = _connect(location, busy_ms)
            except BaseException:
                writer.close()
                raise
            return writer, reader

        opener = Worker(f"fsmflow-sqlite-open {location}")
        try:
            writer, reader = await opener.run(connect)
        except sqlite3.Error as exc:
            raise sql.backend_error(f"SqliteStore {location!r}: open", exc) from exc
        finally:
            await opener.aclose()
        return cls(location, writer, reader, durability, busy_timeout, poll_interval)

    async def __aenter__(self) -> SqliteStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Wait for writes in flight, then close the file. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._group.barrier()  # after every write already submitted
        finally:
            await self._worker.run(self._close_connections)
        await self._worker.aclose()
        await self._reads.aclose()

    def _close_connections(self) -> None:
        self._writer.close()
        self._reader.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"{self._where} is closed")

    # -- writes -----------------------------------------------------------------------

    async def _write(
        self, work: Callable[[sqlite3.Connection], T], operation: str, channels: tuple[str, ...]
    ) -> T:
        self._check_open()
        return await self._group.submit(work, operation, channels)

    def _execute_now(self, group: list[Request[Any]]) -> bool:
        """On the event loop: the group at once when no fsync is needed and no other
        process holds the lock (``busy_timeout`` is 0 on this path)."""
        if self._inline and sql.run_group(self._writer, group, self._where, wait=False):
            self._committed(group)
            return True
        return False

    async def _execute(self, group: list[Request[Any]]) -> None:
        await self._worker.run(self._run_group_waiting, group)
        self._committed(group)

    def _committed(self, group: list[Request[Any]]) -> None:
        for request in group:
            if request.channels and request.error is None:
                for channel in request.channels:
                    self._hub.publish(channel)
        self._commits += 1
        if self._commits % _CHECKPOINT_EVERY == 0 and not self._checkpointing:
            self._maybe_checkpoint()

    def _run_group_waiting(self, group: list[Request[Any]]) -> None:
        """On the worker thread: the group, waiting up to busy_timeout for the lock."""
        if self._inline:
            self._writer.execute(f"PRAGMA busy_timeout={self._busy_ms}")
        try:
            sql.run_group(self._writer, group, self._where, wait=True)
        finally:
            if self._inline:
                self._writer.execute("PRAGMA busy_timeout=0")

    def _maybe_checkpoint(self) -> None:
        try:
            size = os.stat(self.path + "-wal").st_size
        except OSError:
            return
        if size > _CHECKPOINT_WAL_BYTES:
            self._checkpointing = True
            self._worker.submit(self._checkpoint)

    def _checkpoint(self) -> None:
        """On the worker thread: copy the WAL into the database (PASSIVE: it never waits
        for, nor blocks, readers and writers) with a connection of its own."""
        try:
            db = _connect(self.path, self._busy_ms)
            try:
                db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            finally:
                db.close()
        finally:
            self._checkpointing = False

    async def write_batch(
        self, ops: Sequence[BatchOp], *, fence: Fence | None = None
    ) -> list[int | bool | None]:
        ops = list(ops)
        channels = tuple(op.channel for op in ops if isinstance(op, Notify))
        return await self._write(sql.write_batch(ops, fence), "write_batch", channels)

    async def save_checkpoint(self, run_id: str, step: int, value: bytes) -> None:
        await self._write(sql.save_checkpoint(run_id, step, value), "save_checkpoint", ())

    async def delete_run(self, run_id: str) -> int:
        return await self._write(sql.delete_run(run_id), "delete_run", ())

    async def acquire_lease(self, resource: str, owner: str, ttl: float) -> Lease:
        return await self._write(sql.acquire_lease(resource, owner, ttl), "acquire_lease", ())

    async def renew_lease(self, lease: Lease, ttl: float) -> Lease:
        return await self._write(sql.renew_lease(lease, ttl), "renew_lease", ())

    async def claim_leases(
        self, prefix: str | Sequence[str], owner: str, ttl: float, *, limit: int
    ) -> list[Lease]:
        work = sql.claim_leases(prefix, owner, ttl, limit)
        return await self._write(work, "claim_leases", ())

    async def next_claimable(self, prefix: str | Sequence[str], *, within: float) -> float | None:
        _leases.check_delay(within)
        return await self._read(
            "next_claimable", sql.next_claimable, _leases.prefixes(prefix), within
        )

    # -- reads ------------------------------------------------------------------------

    async def _read(self, operation: str, fn: Callable[..., T], *args: Any) -> T:
        self._check_open()
        try:
            return await self._reads.run(fn, self._reader, *args)
        except sqlite3.Error as exc:
            raise sql.backend_error(f"{self._where}: {operation}", exc) from exc

    async def get(self, namespace: str, key: str) -> Versioned | None:
        return await self._read("get", _get, namespace, key)

    async def keys(self, namespace: str) -> list[str]:
        return await self._read("keys", _keys, namespace)

    async def read(self, log: str, *, after: int = 0, limit: int | None = None) -> list[LogEntry]:
        return await self._read("read", _read_log, log, after, limit)

    async def length(self, log: str) -> int:
        return await self._read("length", _length, log)

    async def latest_checkpoint(self, run_id: str) -> Checkpoint | None:
        found = await self._read("latest_checkpoint", _checkpoints, run_id, True)
        return found[0] if found else None

    async def checkpoints(self, run_id: str) -> list[Checkpoint]:
        return await self._read("checkpoints", _checkpoints, run_id, False)

    async def runs(self) -> list[str]:
        return await self._read("runs", _runs)

    async def get_lease(self, resource: str) -> Lease | None:
        return await self._read("get_lease", sql.lease_row, resource)

    async def clock(self) -> float:
        """The machine's wall clock, which every process on this file shares."""
        self._check_open()
        return time.time()

    # -- notifications ----------------------------------------------------------------

    @asynccontextmanager
    async def listen(self, channel: str) -> AsyncIterator[Listener]:
        """A listener on ``channel``: woken at once by this store's notifications, and
        every ``poll_interval`` seconds it looks for other processes' (a counter per
        channel in the file)."""
        seen = await self._read("listen", _notification_counter, channel)

        async def poll() -> bool:
            nonlocal seen
            counter = await self._read("listen", _notification_counter, channel)
            changed = counter != seen
            seen = counter
            return changed

        async with self._hub.subscribe(
            channel, poll=poll, poll_interval=self._poll_interval
        ) as subscription:
            yield subscription


def _connect(location: str, busy_ms: int) -> sqlite3.Connection:
    db = sqlite3.connect(
        location, isolation_level=None, check_same_thread=False, timeout=busy_ms / 1000
    )
    try:
        # Reading the schema makes a file that is not a database fail here, at open.
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except BaseException:
        db.close()
        raise
    return db


# The functions below run on the reader thread.


def _get(db: sqlite3.Connection, namespace: str, key: str) -> Versioned | None:
    row = db.execute(
        "SELECT value, version FROM kv WHERE namespace=? AND key=?", (namespace, key)
    ).fetchone()
    if row is None:
        return None
    where = f"{namespace}/{key}"
    return Versioned(sql.blob(row[0], where), sql.integer(row[1], where))


def _keys(db: sqlite3.Connection, namespace: str) -> list[str]:
    rows = db.execute("SELECT key FROM kv WHERE namespace=? ORDER BY key", (namespace,))
    return [sql.text(r[0], f"{namespace}/?") for r in rows]


def _read_log(db: sqlite3.Connection, log: str, after: int, limit: int | None) -> list[LogEntry]:
    rows = db.execute(
        "SELECT seq, value FROM log WHERE log=? AND seq>? ORDER BY seq LIMIT ?",
        (log, after, -1 if limit is None else limit),
    )
    entries = []
    for seq, value in rows:
        number = sql.integer(seq, f"{log}#?")
        entries.append(LogEntry(number, sql.blob(value, f"{log}#{number}")))
    return entries


def _length(db: sqlite3.Connection, log: str) -> int:
    (count,) = db.execute("SELECT COUNT(*) FROM log WHERE log=?", (log,)).fetchone()
    return int(count)


def _checkpoints(db: sqlite3.Connection, run_id: str, latest: bool) -> list[Checkpoint]:
    query = "SELECT step, value, created_at FROM checkpoints WHERE run_id=?"
    query += " ORDER BY step DESC LIMIT 1" if latest else " ORDER BY step"
    found = []
    for step, value, created_at in db.execute(query, (run_id,)):
        number = sql.integer(step, f"checkpoint {run_id}@?")
        where = f"checkpoint {run_id}@{number}"
        found.append(
            Checkpoint(run_id, number, sql.blob(value, where), sql.real(created_at, where))
        )
    return found


def _runs(db: sqlite3.Connection) -> list[str]:
    rows = db.execute("SELECT DISTINCT run_id FROM checkpoints ORDER BY run_id")
    return [sql.text(r[0], "checkpoint run id") for r in rows]


def _notification_counter(db: sqlite3.Connection, channel: str) -> int:
    row = db.execute("SELECT counter FROM notifications WHERE channel=?", (channel,)).fetchone()
    return 0 if row is None else sql.integer(row[0], f"notification counter {channel}")


__all__ = ["SCHEMA_VERSION", "Durability", "SchemaError", "SqliteStore"]
