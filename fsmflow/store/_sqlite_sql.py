"""The SQL of :class:`~fsmflow.store.SqliteStore`: schema, operations, and group commits.

Everything here is synchronous and runs on whichever thread the store chose (the event
loop's for an in-memory-speed commit, its worker thread when a commit must wait for an
fsync or for another process's lock). Nothing here raises a raw ``sqlite3`` error to a
caller: :func:`backend_error` turns each into a :class:`~fsmflow.store.BackendError` that
carries SQLite's own message.
"""

from __future__ import annotations

import contextlib
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from . import _leases
from ._errors import BackendError, DecodeError, SchemaError, VersionConflict
from ._group import Request
from ._protocols import (
    Append,
    BatchOp,
    Delete,
    DropLease,
    Fence,
    Lease,
    Notify,
    OfferLease,
    Put,
    ReleaseLease,
    Remove,
)

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
    (
        3,
        (
            "CREATE TABLE notifications (channel TEXT PRIMARY KEY, counter INTEGER NOT NULL)"
            " WITHOUT ROWID",
        ),
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]

#: SQLite's primary result code for "another connection holds the lock".
SQLITE_BUSY = 5


def backend_error(where: str, exc: sqlite3.Error) -> BackendError:
    error = BackendError(where, str(exc) or type(exc).__name__)
    error.__cause__ = exc
    return error


def is_busy(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == SQLITE_BUSY


def rollback_quietly(db: sqlite3.Connection) -> None:
    """Roll back whatever is open. When SQLite already rolled back by itself (disk full,
    I/O error) there is nothing to do, and the first error is the one that matters, so a
    failing ROLLBACK never replaces it."""
    if db.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")


def migrate(db: sqlite3.Connection, location: str) -> None:
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
            # Another process may have migrated while we waited for the lock.
            (current,) = db.execute("PRAGMA user_version").fetchone()
            if current < target:
                for statement in statements:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version={target}")
            db.execute("COMMIT")
        except BaseException:
            rollback_quietly(db)
            raise


# -- group commit ---------------------------------------------------------------------


def convert(exc: Exception, where: str) -> Exception:
    """The error a caller sees: SQLite's errors become BackendError, ours pass through."""
    return backend_error(where, exc) if isinstance(exc, sqlite3.Error) else exc


def run_group(db: sqlite3.Connection, group: list[Request[Any]], where: str, wait: bool) -> bool:
    """Apply ``group`` in one ``BEGIN IMMEDIATE`` transaction; settle every request.

    Returns ``False`` without doing anything when ``wait`` is false and another connection
    holds the write lock (the caller retries on a thread that may wait for it).

    The first attempt runs every request's work back to back. If one fails, the
    transaction is rolled back and the group runs again with a savepoint around each
    request, so only the failing one is undone. If SQLite itself rolled the whole
    transaction back (disk full, I/O error) or the commit fails, the requests that had
    not failed are retried each in its own transaction: one oversized batch never sinks
    the others.
    """
    try:
        db.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        if not wait and is_busy(exc):
            return False
        for request in group:
            request.fail(convert(exc, f"{where}: {request.operation}"))
        return True
    results = []
    try:
        for request in group:
            results.append(request.work(db))
    except Exception as exc:
        rollback_quietly(db)
        if len(group) == 1:
            group[0].fail(convert(exc, f"{where}: {group[0].operation}"))
        else:
            _run_isolated(db, group, where)
        return True
    try:
        db.execute("COMMIT")
    except sqlite3.Error as exc:
        rollback_quietly(db)
        if len(group) == 1:
            group[0].fail(backend_error(f"{where}: {group[0].operation}", exc))
        else:
            for request in group:
                _run_alone(db, request, where)
        return True
    for request, result in zip(group, results, strict=True):
        request.succeed(result)
    return True


def _run_isolated(db: sqlite3.Connection, group: list[Request[Any]], where: str) -> None:
    try:
        db.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        for request in group:
            request.fail(convert(exc, f"{where}: {request.operation}"))
        return
    applied: list[tuple[Request[Any], Any]] = []
    for index, request in enumerate(group):
        db.execute("SAVEPOINT batch")
        try:
            result = request.work(db)
        except Exception as exc:
            request.fail(convert(exc, f"{where}: {request.operation}"))
            if not db.in_transaction:
                # SQLite rolled back everything: retry the others one by one.
                for other, _ in applied:
                    _run_alone(db, other, where)
                for other in group[index + 1 :]:
                    _run_alone(db, other, where)
                return
            db.execute("ROLLBACK TO batch")
            db.execute("RELEASE batch")
        else:
            db.execute("RELEASE batch")
            applied.append((request, result))
    try:
        db.execute("COMMIT")
    except sqlite3.Error:
        rollback_quietly(db)
        for request, _ in applied:
            _run_alone(db, request, where)
        return
    for request, result in applied:
        request.succeed(result)


def _run_alone(db: sqlite3.Connection, request: Request[Any], where: str) -> None:
    try:
        db.execute("BEGIN IMMEDIATE")
        result = request.work(db)
        db.execute("COMMIT")
    except Exception as exc:
        rollback_quietly(db)
        request.fail(convert(exc, f"{where}: {request.operation}"))
    else:
        request.succeed(result)


# -- cells read back from the file ----------------------------------------------------


def blob(cell: object, key: str) -> bytes:
    """A BLOB cell as bytes; any other storage class is damage, reported as DecodeError."""
    if isinstance(cell, bytes):
        return cell
    raise DecodeError(key, "bytes", f"the stored cell is {_storage_class(cell)}, not a BLOB")


def integer(cell: object, key: str) -> int:
    if type(cell) is int:
        return cell
    raise DecodeError(key, "int", f"the stored cell is {_storage_class(cell)}, not an INTEGER")


def real(cell: object, key: str) -> float:
    if type(cell) is float or type(cell) is int:
        return float(cell)
    raise DecodeError(key, "float", f"the stored cell is {_storage_class(cell)}, not a REAL")


def text(cell: object, key: str) -> str:
    if type(cell) is str:
        return cell
    raise DecodeError(key, "str", f"the stored cell is {_storage_class(cell)}, not TEXT")


def _storage_class(cell: object) -> str:
    return {bytes: "a BLOB", str: "TEXT", int: "an INTEGER", float: "a REAL"}.get(
        type(cell), "NULL"
    )


# -- operations (each runs inside an open transaction) --------------------------------


def lease_row(db: sqlite3.Connection, resource: str) -> Lease | None:
    row = db.execute(
        "SELECT owner, token, expires_at FROM leases WHERE resource=?", (resource,)
    ).fetchone()
    if row is None:
        return None
    key = f"lease {resource}"
    return Lease(resource, text(row[0], key), integer(row[1], key), real(row[2], key))


def save_lease(db: sqlite3.Connection, lease: Lease) -> None:
    db.execute(
        "INSERT INTO leases (resource, owner, token, expires_at) VALUES (?,?,?,?)"
        " ON CONFLICT (resource) DO UPDATE SET owner=excluded.owner, token=excluded.token,"
        " expires_at=excluded.expires_at",
        (lease.resource, lease.owner, lease.token, lease.expires_at),
    )


def acquire_lease(resource: str, owner: str, ttl: float) -> Callable[[sqlite3.Connection], Lease]:
    def work(db: sqlite3.Connection) -> Lease:
        lease = _leases.acquired(lease_row(db, resource), resource, owner, ttl, time.time())
        save_lease(db, lease)
        return lease

    return work


def renew_lease(lease: Lease, ttl: float) -> Callable[[sqlite3.Connection], Lease]:
    def work(db: sqlite3.Connection) -> Lease:
        renewed = _leases.renewed(lease_row(db, lease.resource), lease, ttl, time.time())
        save_lease(db, renewed)
        return renewed

    return work


#: Claimable leases by expiry. The expiry index is forced: it reaches only the leases
#: claimable now, whereas the primary key's range would walk every lease under the
#: prefix — finished runs' included, which only grow.
_CLAIMABLE = (
    "SELECT resource, owner, token, expires_at FROM leases INDEXED BY leases_by_expiry"
    " WHERE expires_at <= ? AND resource >= ? AND resource < ?"
    " ORDER BY expires_at, resource LIMIT ?"
)
_NEXT_CLAIMABLE = (
    "SELECT min(expires_at) FROM leases INDEXED BY leases_by_expiry"
    " WHERE expires_at <= ? AND resource >= ? AND resource < ?"
)


def claim_leases(
    prefix: str | Sequence[str], owner: str, ttl: float, limit: int
) -> Callable[[sqlite3.Connection], list[Lease]]:
    _leases.check_ttl(ttl)
    ordered = _leases.prefixes(prefix)

    def work(db: sqlite3.Connection) -> list[Lease]:
        now = time.time()
        claimed: list[Lease] = []
        for one in ordered:
            if len(claimed) >= limit:
                break
            rows = db.execute(
                _CLAIMABLE, (now, one, one + "\U0010ffff", max(0, limit - len(claimed)))
            ).fetchall()
            for resource, row_owner, token, expires_at in rows:
                key = f"lease {resource}"
                row = Lease(
                    resource, text(row_owner, key), integer(token, key), real(expires_at, key)
                )
                lease = _leases.acquired(row, resource, owner, ttl, now)
                save_lease(db, lease)
                claimed.append(lease)
        return claimed

    return work


def next_claimable(db: sqlite3.Connection, prefixes: list[str], within: float) -> float | None:
    """On the reader thread: see :meth:`~fsmflow.store.LeaseStore.next_claimable`."""
    now = time.time()
    first: float | None = None
    for one in prefixes:
        horizon = min(now + within, sys.float_info.max)  # never a lease released for good
        (due,) = db.execute(_NEXT_CLAIMABLE, (horizon, one, one + "\U0010ffff")).fetchone()
        if due is not None:
            at = real(due, f"leases under {one}")
            first = at if first is None else min(first, at)
    return None if first is None else max(0.0, first - now)


def write_batch(
    ops: Sequence[BatchOp], fence: Fence | None
) -> Callable[[sqlite3.Connection], list[int | bool | None]]:
    def work(db: sqlite3.Connection) -> list[int | bool | None]:
        if fence is not None:
            _leases.check_fence(lease_row(db, fence.resource), fence)
        return [_apply(db, op) for op in ops]

    return work


def _apply(db: sqlite3.Connection, op: BatchOp) -> int | bool | None:
    # (No RETURNING: Python's sqlite3 runs a separate SELECT faster than RETURNING.)
    if isinstance(op, Put):
        if op.expected_version is None:
            db.execute(
                "INSERT INTO kv (namespace, key, value, version) VALUES (?,?,?,1)"
                " ON CONFLICT (namespace, key) DO UPDATE SET value=excluded.value,"
                " version=version+1",
                (op.namespace, op.key, op.value),
            )
            (version,) = db.execute(
                "SELECT version FROM kv WHERE namespace=? AND key=?", (op.namespace, op.key)
            ).fetchone()
            return integer(version, f"{op.namespace}/{op.key}")
        row = db.execute(
            "SELECT version FROM kv WHERE namespace=? AND key=?", (op.namespace, op.key)
        ).fetchone()
        current = 0 if row is None else integer(row[0], f"{op.namespace}/{op.key}")
        if op.expected_version != current:
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
        db.execute(
            "INSERT INTO log_heads (log, last_seq) VALUES (?, 1) ON CONFLICT (log)"
            " DO UPDATE SET last_seq=last_seq+1",
            (op.log,),
        )
        (seq,) = db.execute("SELECT last_seq FROM log_heads WHERE log=?", (op.log,)).fetchone()
        db.execute("INSERT INTO log (log, seq, value) VALUES (?,?,?)", (op.log, seq, op.value))
        return integer(seq, f"log head {op.log}")
    if isinstance(op, Remove):
        cursor = db.execute("DELETE FROM log WHERE log=? AND seq=?", (op.log, op.seq))
        return cursor.rowcount > 0
    if isinstance(op, Notify):
        db.execute(
            "INSERT INTO notifications (channel, counter) VALUES (?, 1) ON CONFLICT (channel)"
            " DO UPDATE SET counter=counter+1",
            (op.channel,),
        )
        return None
    return _apply_lease(db, op)


def _apply_lease(db: sqlite3.Connection, op: OfferLease | ReleaseLease | DropLease) -> bool:
    if isinstance(op, DropLease):
        return db.execute("DELETE FROM leases WHERE resource=?", (op.resource,)).rowcount > 0
    row = lease_row(db, op.resource)
    if isinstance(op, OfferLease):
        offered = _leases.offered(row, op.resource, op.delay, time.time())
        if offered is None:
            return False
        save_lease(db, offered)
        return True
    save_lease(db, _leases.released(row, op.resource, op.token, op.delay, time.time()))
    return True


def save_checkpoint(run_id: str, step: int, value: bytes) -> Callable[[sqlite3.Connection], None]:
    def work(db: sqlite3.Connection) -> None:
        db.execute(
            "INSERT OR REPLACE INTO checkpoints (run_id, step, value, created_at) VALUES (?,?,?,?)",
            (run_id, step, value, time.time()),
        )

    return work


def delete_run(run_id: str) -> Callable[[sqlite3.Connection], int]:
    def work(db: sqlite3.Connection) -> int:
        return db.execute("DELETE FROM checkpoints WHERE run_id=?", (run_id,)).rowcount

    return work
