"""``PostgresStore``: the backend for workers on many machines.

psycopg 3's asynchronous connections do not run under trio, so the store drives its
synchronous connections (a small ``psycopg_pool`` pool) from two long-lived worker
threads — one for writes, one for reads — which works the same under trio and asyncio.
Writes go through group commit like every backend (:mod:`fsmflow.store._group`): the
writes waiting while one transaction commits share the next one. A transaction, once
started, is never abandoned by a cancelled caller. Every statement is bounded by
``statement_timeout``; leases use the server's clock; fenced writes lock the lease row
``FOR SHARE`` so a takeover cannot commit in between; claims use ``FOR UPDATE SKIP
LOCKED``; notifications are LISTEN/NOTIFY.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar, cast

import anyio.to_thread
import psycopg
import psycopg_pool
from psycopg import sql

from . import _leases
from . import _postgres_sql as pg
from ._errors import BackendError, DecodeError, StoreError
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

SCHEMA_VERSION = pg.SCHEMA_VERSION


class PostgresStore(SingleOpWrites):
    """A :class:`Store` in a PostgreSQL schema; create it with
    ``await PostgresStore.open("postgresql://user@host/db")``.

    Use it as an async context manager or call :meth:`aclose`. A store belongs to the
    event loop that opened it; open one per process and share it between tasks. Every
    failure surfaces as a :class:`StoreError`: the server's errors (and a lost
    connection) as :class:`BackendError` carrying the server's message.
    """

    def __init__(
        self,
        dsn: str,
        schema: str,
        pool: psycopg_pool.ConnectionPool[psycopg.Connection[tuple[Any, ...]]],
        connect: Callable[[], pg.Connection],
    ) -> None:
        self.dsn = dsn
        self.schema = schema
        self._pool = pool
        self._connect = connect
        self._tables = pg.Tables(schema)
        self._where = f"PostgresStore {schema!r}"
        self._writer = Worker(f"fsmflow-postgres-writer {schema}")
        self._reader = Worker(f"fsmflow-postgres-reader {schema}")
        self._group = GroupCommit(self._execute)
        self._hub = NotificationHub()
        self._listener: _ListenerThread | None = None
        self._closed = False

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        schema: str = "fsmflow",
        pool_size: int = 4,
        statement_timeout: float = 30.0,
        connect_timeout: float = 10.0,
    ) -> PostgresStore:
        """Connect to ``dsn`` (a ``postgresql://`` URL or a libpq ``key=value`` string),
        create or migrate the tables in ``schema``, and return the store.

        ``statement_timeout`` bounds every statement (a lock held by a stopped process
        surfaces as a ``BackendError`` instead of a hang, and a session idle in a
        transaction for twice as long is ended by the server); ``connect_timeout`` bounds
        each connection attempt. Raises :class:`BackendError` with the server's (or
        libpq's) message when it cannot connect, and :class:`SchemaError` when the schema
        was written by a newer fsmflow.
        """
        if not schema:
            raise ValueError("schema must be a non-empty name")
        timeout_ms = max(1, int(statement_timeout * 1000))
        options = (
            f"-c statement_timeout={timeout_ms}"
            f" -c idle_in_transaction_session_timeout={2 * timeout_ms}"
        )

        def connect() -> pg.Connection:
            return psycopg.connect(
                dsn,
                autocommit=True,
                connect_timeout=max(1, round(connect_timeout)),
                options=options,
            )

        def start() -> psycopg_pool.ConnectionPool[pg.Connection]:
            with connect() as db:
                pg.migrate(db, schema)
            pool: psycopg_pool.ConnectionPool[pg.Connection] = psycopg_pool.ConnectionPool(
                dsn,
                min_size=1,
                max_size=max(1, pool_size),
                kwargs={"autocommit": True, "options": options},
                timeout=connect_timeout,
                name=f"fsmflow-{schema}",
                open=False,
            )
            pool.open(wait=True, timeout=connect_timeout)
            return pool

        opener = Worker(f"fsmflow-postgres-open {schema}")
        try:
            pool = await opener.run(start)
        except psycopg.Error as exc:
            raise pg.backend_error(f"PostgresStore {schema!r}: open", exc) from exc
        except psycopg_pool.PoolTimeout as exc:
            raise BackendError(f"PostgresStore {schema!r}: open", str(exc)) from exc
        finally:
            await opener.aclose()
        return cls(dsn, schema, pool, connect)

    async def __aenter__(self) -> PostgresStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Wait for writes in flight, stop listening, close the pool. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._group.barrier()  # after every write already submitted
        except StoreError:
            pass
        finally:
            if self._listener is not None:
                self._listener.stop()
            await self._writer.run(self._pool.close)
            await self._writer.aclose()
            await self._reader.aclose()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"{self._where} is closed")

    # -- writes -----------------------------------------------------------------------

    async def _write(
        self,
        work: Callable[[pg.Connection], T] | Callable[[pg.Connection], pg.Later[T]],
        operation: str,
        channels: tuple[str, ...] = (),
    ) -> T:
        self._check_open()
        # run_group settles a Later before it succeeds the request: callers get a T.
        settled = cast("Callable[[pg.Connection], T]", work)
        return await self._group.submit(settled, operation, channels)

    async def _execute(self, group: list[Request[Any]]) -> None:
        await self._writer.run(self._run_group, group)
        for request in group:
            if request.channels and request.error is None:
                for channel in request.channels:
                    self._hub.publish(channel)

    def _run_group(self, group: list[Request[Any]]) -> None:
        """On the writer thread."""
        try:
            with self._pool.connection() as db:
                pg.run_group(db, group, self._where)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            for request in group:
                if not request.done:
                    where = f"{self._where}: {request.operation}"
                    if isinstance(exc, psycopg.Error):
                        request.fail(pg.backend_error(where, exc))
                    else:
                        request.fail(BackendError(where, str(exc)))

    async def write_batch(
        self, ops: Sequence[BatchOp], *, fence: Fence | None = None
    ) -> list[int | bool | None]:
        ops = list(ops)
        channels = tuple(op.channel for op in ops if isinstance(op, Notify))
        work = pg.write_batch(self._tables, ops, fence)
        results: list[int | bool | None] = await self._write(work, "write_batch", channels)
        return results

    async def save_checkpoint(self, run_id: str, step: int, value: bytes) -> None:
        await self._write(pg.save_checkpoint(self._tables, run_id, step, value), "save_checkpoint")

    async def delete_run(self, run_id: str) -> int:
        return await self._write(pg.delete_run(self._tables, run_id), "delete_run")

    async def acquire_lease(self, resource: str, owner: str, ttl: float) -> Lease:
        work = pg.acquire_lease(self._tables, resource, owner, ttl)
        return await self._write(work, "acquire_lease")

    async def renew_lease(self, lease: Lease, ttl: float) -> Lease:
        return await self._write(pg.renew_lease(self._tables, lease, ttl), "renew_lease")

    async def claim_leases(
        self, prefix: str | Sequence[str], owner: str, ttl: float, *, limit: int
    ) -> list[Lease]:
        work = pg.claim_leases(self._tables, prefix, owner, ttl, limit)
        return await self._write(work, "claim_leases")

    # -- reads ------------------------------------------------------------------------

    async def _read(
        self, operation: str, query: sql.SQL | sql.Composed, params: tuple[Any, ...]
    ) -> list[tuple[Any, ...]]:
        self._check_open()

        def fetch() -> list[tuple[Any, ...]]:
            with self._pool.connection() as db:
                return db.execute(query, params).fetchall()

        try:
            return await self._reader.run(fetch)
        except psycopg.Error as exc:
            raise pg.backend_error(f"{self._where}: {operation}", exc) from exc
        except psycopg_pool.PoolTimeout as exc:
            raise BackendError(f"{self._where}: {operation}", str(exc)) from exc

    def _q(self, text: str) -> sql.Composed:
        return sql.SQL(text).format(s=sql.Identifier(self.schema))

    async def get(self, namespace: str, key: str) -> Versioned | None:
        query = self._q("SELECT value, version FROM {s}.kv WHERE namespace=%s AND key=%s")
        rows = await self._read("get", query, (namespace, key))
        return Versioned(bytes(rows[0][0]), int(rows[0][1])) if rows else None

    async def keys(self, namespace: str) -> list[str]:
        query = self._q("SELECT key FROM {s}.kv WHERE namespace=%s ORDER BY key")
        return [r[0] for r in await self._read("keys", query, (namespace,))]

    async def read(self, log: str, *, after: int = 0, limit: int | None = None) -> list[LogEntry]:
        query = self._q(
            "SELECT seq, value FROM {s}.log WHERE log=%s AND seq>%s ORDER BY seq LIMIT %s"
        )
        rows = await self._read("read", query, (log, after, limit))
        return [LogEntry(int(seq), bytes(value)) for seq, value in rows]

    async def length(self, log: str) -> int:
        query = self._q("SELECT count(*) FROM {s}.log WHERE log=%s")
        return int((await self._read("length", query, (log,)))[0][0])

    async def latest_checkpoint(self, run_id: str) -> Checkpoint | None:
        query = self._q(
            "SELECT step, value, created_at FROM {s}.checkpoints WHERE run_id=%s"
            " ORDER BY step DESC LIMIT 1"
        )
        rows = await self._read("latest_checkpoint", query, (run_id,))
        return _checkpoint(run_id, rows[0]) if rows else None

    async def checkpoints(self, run_id: str) -> list[Checkpoint]:
        query = self._q(
            "SELECT step, value, created_at FROM {s}.checkpoints WHERE run_id=%s ORDER BY step"
        )
        rows = await self._read("checkpoints", query, (run_id,))
        return [_checkpoint(run_id, row) for row in rows]

    async def runs(self) -> list[str]:
        query = self._q("SELECT DISTINCT run_id FROM {s}.checkpoints ORDER BY run_id")
        return [r[0] for r in await self._read("runs", query, ())]

    async def get_lease(self, resource: str) -> Lease | None:
        rows = await self._read("get_lease", self._tables.lease, (resource,))
        return pg._lease(resource, rows[0]) if rows else None

    async def next_claimable(self, prefix: str | Sequence[str], *, within: float) -> float | None:
        _leases.check_delay(within)
        lows = _leases.prefixes(prefix)
        highs = [low + "\U0010ffff" for low in lows]
        rows = await self._read(
            "next_claimable", self._tables.next_claimable, (lows, highs, within)
        )
        if not rows or rows[0][0] is None:
            return None
        return max(0.0, float(rows[0][0]))

    async def clock(self) -> float:
        """The server's clock: every machine's leases are measured on it."""
        rows = await self._read("clock", self._tables.now, ())
        return float(rows[0][0])

    # -- notifications ----------------------------------------------------------------

    @asynccontextmanager
    async def listen(self, channel: str) -> AsyncIterator[Listener]:
        """A listener on ``channel``, woken by every ``PostgresStore`` on the same
        database and schema (LISTEN/NOTIFY), on any machine."""
        self._check_open()
        if self._listener is None:
            self._listener = _ListenerThread(self._connect, self.schema, self._hub)
        await self._listener.started()
        async with self._hub.subscribe(channel) as subscription:
            yield subscription


def _checkpoint(run_id: str, row: tuple[Any, ...]) -> Checkpoint:
    step, value, created_at = row
    if not isinstance(value, bytes | memoryview):
        raise DecodeError(f"checkpoint {run_id}@{step}", "bytes", "not a bytea value")
    return Checkpoint(run_id, int(step), bytes(value), float(created_at))


class _ListenerThread:
    """One connection per store that LISTENs and publishes what arrives into the hub.

    After a lost connection it reconnects and wakes every listener (a notification may
    have been missed meanwhile; listeners re-check the store).
    """

    def __init__(
        self, connect: Callable[[], pg.Connection], schema: str, hub: NotificationHub
    ) -> None:
        self._connect = connect
        self._prefix = schema + pg.PAYLOAD_SEPARATOR
        self._hub = hub
        self._stopping = threading.Event()
        self._listening = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, name=f"fsmflow-postgres-listen {schema}", daemon=True
        )
        self._thread.start()

    async def started(self) -> None:
        """Wait until LISTEN is in place (or the first attempt failed), so that a
        notification sent after ``listen()`` returned is not missed."""
        if not self._listening.is_set():
            await anyio.to_thread.run_sync(self._listening.wait, 10.0, abandon_on_cancel=True)

    def stop(self) -> None:
        self._stopping.set()

    def _serve(self) -> None:
        first = True
        while not self._stopping.is_set():
            try:
                with self._connect() as db:
                    db.execute(sql.SQL("LISTEN {}").format(sql.Identifier(pg.PG_CHANNEL)))
                    self._listening.set()
                    if not first:
                        self._hub.publish_all()
                    first = False
                    while not self._stopping.is_set():
                        for note in db.notifies(timeout=0.2):
                            if note.payload.startswith(self._prefix):
                                self._hub.publish(note.payload[len(self._prefix) :])
            except psycopg.Error:
                self._listening.set()
                first = False
                self._stopping.wait(0.5)
