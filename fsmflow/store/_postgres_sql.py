"""The SQL of :class:`~fsmflow.store.PostgresStore`: schema, operations, group commits.

Everything here is synchronous, runs on one of the store's worker threads, and uses
psycopg 3 connections in autocommit mode with explicit transactions
(``connection.transaction()``; nested ones are savepoints). Lease rows are locked while
a transaction decides on them (``FOR UPDATE``; ``FOR SHARE`` for a fence, ``SKIP
LOCKED`` for claims), and time is the server's (``clock_timestamp()``), so every machine
agrees on when a lease expires.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeAlias, TypeVar

import psycopg
from psycopg import sql

from . import _leases
from ._errors import BackendError, SchemaError, VersionConflict
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

T = TypeVar("T")

Connection: TypeAlias = psycopg.Connection[tuple[Any, ...]]

#: The one PostgreSQL channel every fsmflow store notifies on; the payload names the
#: schema and the fsmflow channel, so stores in other schemas ignore it.
PG_CHANNEL = "fsmflow"
PAYLOAD_SEPARATOR = "\x1f"

#: Schema migrations: (version, statements with ``{schema}`` for the quoted schema).
#: Append only; never edit a released step. Text keys use the "C" collation so that
#: ordering and prefix ranges are by code point, as in the other backends.
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            'CREATE TABLE {schema}.kv (namespace text COLLATE "C" NOT NULL,'
            ' key text COLLATE "C" NOT NULL, value bytea NOT NULL, version bigint NOT NULL,'
            " PRIMARY KEY (namespace, key))",
            'CREATE TABLE {schema}.log_heads (log text COLLATE "C" PRIMARY KEY,'
            " last_seq bigint NOT NULL)",
            'CREATE TABLE {schema}.log (log text COLLATE "C" NOT NULL, seq bigint NOT NULL,'
            " value bytea NOT NULL, PRIMARY KEY (log, seq))",
            'CREATE TABLE {schema}.checkpoints (run_id text COLLATE "C" NOT NULL,'
            " step bigint NOT NULL, value bytea NOT NULL,"
            " created_at double precision NOT NULL, PRIMARY KEY (run_id, step))",
            'CREATE TABLE {schema}.leases (resource text COLLATE "C" PRIMARY KEY,'
            " owner text NOT NULL, token bigint NOT NULL,"
            " expires_at double precision NOT NULL)",
            "CREATE INDEX leases_by_expiry ON {schema}.leases (expires_at)",
        ),
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]

#: SQLSTATEs after which the whole transaction may simply be tried again.
RETRYABLE = {"40001", "40P01"}  # serialization failure, deadlock detected


def backend_error(where: str, exc: psycopg.Error) -> BackendError:
    """A psycopg error as a :class:`BackendError` carrying the server's message."""
    diag = getattr(exc, "diag", None)
    message = (diag.message_primary if diag is not None else None) or str(exc).strip()
    sqlstate = getattr(exc, "sqlstate", None)
    cause = f"{message} (SQLSTATE {sqlstate})" if sqlstate else message
    error = BackendError(where, cause or type(exc).__name__)
    error.__cause__ = exc
    return error


def convert(exc: Exception, where: str) -> Exception:
    return backend_error(where, exc) if isinstance(exc, psycopg.Error) else exc


def migrate(db: Connection, schema: str) -> None:
    """Create or upgrade the schema; concurrent openers wait on an advisory lock."""
    quoted = sql.Identifier(schema)
    with db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("fsmflow:" + schema,))
        db.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(quoted))
        db.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.schema_version (version integer NOT NULL)"
            ).format(quoted)
        )
        row = db.execute(sql.SQL("SELECT version FROM {}.schema_version").format(quoted))
        found = row.fetchone()
        version = 0 if found is None else int(found[0])
        if version > SCHEMA_VERSION:
            raise SchemaError(
                f"schema {schema!r} has version {version}, newer than this fsmflow's "
                f"{SCHEMA_VERSION}; upgrade fsmflow to use it"
            )
        for target, statements in MIGRATIONS:
            if target > version:
                for statement in statements:
                    db.execute(sql.SQL(statement).format(schema=quoted))
        if found is None:
            db.execute(
                sql.SQL("INSERT INTO {}.schema_version VALUES (%s)").format(quoted),
                (SCHEMA_VERSION,),
            )
        elif version < SCHEMA_VERSION:
            db.execute(
                sql.SQL("UPDATE {}.schema_version SET version=%s").format(quoted),
                (SCHEMA_VERSION,),
            )


# -- group commit ---------------------------------------------------------------------


class Later(Generic[T]):
    """A work's result still to be read: its statements were sent (in pipeline mode,
    without waiting), ``finish()`` reads their results, checks them and returns the
    result — or raises, and the transaction is rolled back."""

    __slots__ = ("finish",)

    def __init__(self, finish: Callable[[], T]) -> None:
        self.finish = finish


def settle(result: T | Later[T]) -> T:
    """A work's result, read now if it is a :class:`Later`."""
    return result.finish() if isinstance(result, Later) else result


def run_group(db: Connection, group: list[Request[Any]], where: str) -> None:
    """Apply ``group`` in one transaction and settle every request (see the SQLite twin,
    :func:`fsmflow.store._sqlite_sql.run_group`): all at once; if one fails, again with a
    savepoint around each; if the commit fails, each in its own transaction. A deadlock
    with another process's transaction is retried."""
    for attempt in range(3):
        try:
            # Pipeline mode: every request's statements go out together and their results
            # are read afterwards (a work returns a Later), so a group costs a couple of
            # round trips to the server rather than one per statement.
            with db.pipeline(), db.transaction():
                sent = [request.work(db) for request in group]
                results = [settle(result) for result in sent]
        except psycopg.Error as exc:
            if exc.sqlstate in RETRYABLE and attempt < 2:
                continue
            _after_failure(db, group, where, exc)
            return
        except Exception as exc:
            _after_failure(db, group, where, exc)
            return
        for request, result in zip(group, results, strict=True):
            request.succeed(result)
        return


def _after_failure(db: Connection, group: list[Request[Any]], where: str, exc: Exception) -> None:
    if len(group) == 1 or _connection_lost(db):
        for request in group:
            request.fail(_describe(db, exc, f"{where}: {request.operation}"))
        return
    _run_isolated(db, group, where)


def _run_isolated(db: Connection, group: list[Request[Any]], where: str) -> None:
    applied: list[tuple[Request[Any], Any]] = []
    try:
        with db.transaction():
            for request in group:
                try:
                    with db.transaction():  # a savepoint
                        result = settle(request.work(db))
                except Exception as exc:
                    if _connection_lost(db):
                        raise
                    request.fail(convert(exc, f"{where}: {request.operation}"))
                else:
                    applied.append((request, result))
    except Exception:
        if _connection_lost(db):
            for request in group:
                if not request.done:
                    request.fail(BackendError(f"{where}: {request.operation}", _LOST))
            return
        for request, _ in applied:
            _run_alone(db, request, where)
        return
    for request, result in applied:
        request.succeed(result)


def _run_alone(db: Connection, request: Request[Any], where: str) -> None:
    try:
        with db.transaction():
            result = settle(request.work(db))
    except Exception as exc:
        request.fail(_describe(db, exc, f"{where}: {request.operation}"))
    else:
        request.succeed(result)


_LOST = (
    "the connection to PostgreSQL was lost; a batch whose commit was under way may or may "
    "not have been applied"
)


def _connection_lost(db: Connection) -> bool:
    return bool(db.closed or db.broken)


def _describe(db: Connection, exc: Exception, where: str) -> Exception:
    error = convert(exc, where)
    if isinstance(error, BackendError) and _connection_lost(db):
        error = BackendError(where, f"{error.cause}; {_LOST}")
        error.__cause__ = exc
    return error


# -- operations (each runs inside an open transaction) --------------------------------


class Tables:
    """The schema-qualified statements of one store, composed once."""

    def __init__(self, schema: str) -> None:
        def q(text: str) -> sql.Composed:
            return sql.SQL(text).format(s=sql.Identifier(schema))

        self.now = sql.SQL("SELECT extract(epoch FROM clock_timestamp())::float8")
        self.lease_for_update = q(
            "SELECT owner, token, expires_at FROM {s}.leases WHERE resource=%s FOR UPDATE"
        )
        self.lease_for_share = q(
            "SELECT owner, token, expires_at FROM {s}.leases WHERE resource=%s FOR SHARE"
        )
        self.lease = q("SELECT owner, token, expires_at FROM {s}.leases WHERE resource=%s")
        self.lease_placeholder = q(
            "INSERT INTO {s}.leases VALUES (%s, '', 0, '-Infinity') ON CONFLICT DO NOTHING"
        )
        self.save_lease = q(
            "UPDATE {s}.leases SET owner=%s, token=%s, expires_at=%s WHERE resource=%s"
        )
        self.claimable = q(
            "SELECT resource, owner, token, expires_at FROM {s}.leases"
            " WHERE resource >= %s AND resource < %s AND expires_at <= %s"
            " ORDER BY expires_at, resource LIMIT %s FOR UPDATE SKIP LOCKED"
        )
        # Parameters: the prefixes' lower and upper bounds (two arrays), then the horizon.
        self.next_claimable = q(
            "WITH now AS (SELECT extract(epoch FROM clock_timestamp())::float8 AS t)"
            " SELECT min(l.expires_at) - min(now.t)"
            " FROM now, unnest(%s::text[], %s::text[]) AS p(lo, hi), {s}.leases AS l"
            " WHERE l.expires_at > '-Infinity'"
            " AND l.expires_at <= least(now.t + %s, 1.7976931348623157e308)"
            " AND l.resource >= p.lo AND l.resource < p.hi"
        )
        # One statement per lease operation of a batch (no read, decide, write round
        # trips): the rules of _leases, written in SQL; tests hold the two to each other.
        self.offer_lease = q(
            "INSERT INTO {s}.leases AS l (resource, owner, token, expires_at)"
            " VALUES (%s, '', 0, extract(epoch FROM clock_timestamp()) + %s)"
            " ON CONFLICT (resource) DO UPDATE SET expires_at = excluded.expires_at"
            " WHERE l.owner = '' AND l.expires_at > excluded.expires_at RETURNING 1"
        )
        self.release_lease = q(
            "UPDATE {s}.leases SET owner = '',"
            " expires_at = extract(epoch FROM clock_timestamp()) + %s"
            " WHERE resource = %s AND token = %s AND owner <> '' RETURNING 1"
        )
        self.insert_new = q(
            "INSERT INTO {s}.kv (namespace, key, value, version) VALUES (%s,%s,%s,1)"
            " ON CONFLICT (namespace, key) DO NOTHING RETURNING version"
        )
        self.update_version = q(
            "UPDATE {s}.kv SET value=%s, version=version+1"
            " WHERE namespace=%s AND key=%s AND version=%s RETURNING version"
        )
        self.drop_lease = q("DELETE FROM {s}.leases WHERE resource=%s RETURNING 1")
        self.put = q(
            "INSERT INTO {s}.kv AS kv (namespace, key, value, version) VALUES (%s,%s,%s,1)"
            " ON CONFLICT (namespace, key) DO UPDATE SET value=excluded.value,"
            " version=kv.version+1 RETURNING version"
        )
        self.version_for_update = q(
            "SELECT version FROM {s}.kv WHERE namespace=%s AND key=%s FOR UPDATE"
        )
        # Deletes say whether they found a row by returning it: in pipeline mode a
        # cursor's rowcount is not known until its result is read.
        self.delete = q("DELETE FROM {s}.kv WHERE namespace=%s AND key=%s RETURNING 1")
        self.append = q(
            "WITH head AS (INSERT INTO {s}.log_heads AS h (log, last_seq) VALUES (%s, 1)"
            " ON CONFLICT (log) DO UPDATE SET last_seq=h.last_seq+1 RETURNING last_seq)"
            " INSERT INTO {s}.log (log, seq, value) SELECT %s, last_seq, %s FROM head"
            " RETURNING seq"
        )
        self.remove = q("DELETE FROM {s}.log WHERE log=%s AND seq=%s RETURNING 1")
        self.save_checkpoint = q(
            "INSERT INTO {s}.checkpoints (run_id, step, value, created_at)"
            " VALUES (%s,%s,%s,extract(epoch FROM clock_timestamp()))"
            " ON CONFLICT (run_id, step) DO UPDATE SET value=excluded.value,"
            " created_at=excluded.created_at"
        )
        self.delete_run = q(
            "WITH gone AS (DELETE FROM {s}.checkpoints WHERE run_id=%s RETURNING 1)"
            " SELECT count(*) FROM gone"
        )
        self.notify = sql.SQL("SELECT pg_notify(%s, %s)")
        self.schema = schema


def _now(db: Connection, tables: Tables) -> float:
    (now,) = db.execute(tables.now).fetchone() or (0.0,)
    return float(now)


def _lease(resource: str, row: tuple[Any, ...] | None) -> Lease | None:
    if row is None or (row[1] == 0 and row[2] == -math.inf):  # absent, or our placeholder
        return None
    return Lease(resource, row[0], int(row[1]), float(row[2]))


def _locked_lease(db: Connection, tables: Tables, resource: str, create: bool) -> Lease | None:
    if create:
        db.execute(tables.lease_placeholder, (resource,))
    return _lease(resource, db.execute(tables.lease_for_update, (resource,)).fetchone())


def _save_lease(db: Connection, tables: Tables, lease: Lease) -> None:
    db.execute(tables.save_lease, (lease.owner, lease.token, lease.expires_at, lease.resource))


def get_lease(db: Connection, tables: Tables, resource: str) -> Lease | None:
    return _lease(resource, db.execute(tables.lease, (resource,)).fetchone())


def acquire_lease(
    tables: Tables, resource: str, owner: str, ttl: float
) -> Callable[[Connection], Lease]:
    _leases.check_ttl(ttl)

    def work(db: Connection) -> Lease:
        row = _locked_lease(db, tables, resource, create=True)
        lease = _leases.acquired(row, resource, owner, ttl, _now(db, tables))
        _save_lease(db, tables, lease)
        return lease

    return work


def renew_lease(tables: Tables, lease: Lease, ttl: float) -> Callable[[Connection], Lease]:
    def work(db: Connection) -> Lease:
        row = _locked_lease(db, tables, lease.resource, create=False)
        renewed = _leases.renewed(row, lease, ttl, _now(db, tables))
        _save_lease(db, tables, renewed)
        return renewed

    return work


def claim_leases(
    tables: Tables, prefix: str | Sequence[str], owner: str, ttl: float, limit: int
) -> Callable[[Connection], list[Lease]]:
    _leases.check_ttl(ttl)
    ordered = _leases.prefixes(prefix)

    def work(db: Connection) -> list[Lease]:
        now = _now(db, tables)
        claimed: list[Lease] = []
        for one in ordered:
            if len(claimed) >= limit:
                break
            rows = db.execute(
                tables.claimable, (one, one + "\U0010ffff", now, max(0, limit - len(claimed)))
            ).fetchall()
            for resource, row_owner, token, expires_at in rows:
                row = Lease(resource, row_owner, int(token), float(expires_at))
                if row.token == 0 and row.expires_at == -math.inf:
                    continue  # another transaction's placeholder, never committed
                lease = _leases.acquired(row, resource, owner, ttl, now)
                _save_lease(db, tables, lease)
                claimed.append(lease)
        return claimed

    return work


def write_batch(
    tables: Tables, ops: Sequence[BatchOp], fence: Fence | None
) -> Callable[[Connection], Later[list[int | bool | None]]]:
    for op in ops:
        if isinstance(op, OfferLease | ReleaseLease):
            _leases.check_delay(op.delay)

    def work(db: Connection) -> Later[list[int | bool | None]]:
        # Every statement is sent first; the results are read and checked in finish().
        # The fence's row is locked FOR SHARE before anything else runs: a takeover (an
        # UPDATE of this row) waits until we commit, and one that committed first has
        # changed the token we compare. Were the fence stale, finish() raises and the
        # whole transaction, the batch's statements with it, is rolled back.
        fenced = None
        if fence is not None:
            fenced = db.execute(tables.lease_for_share, (fence.resource,))
        pending = [_send(db, tables, op) for op in ops]

        def finish() -> list[int | bool | None]:
            if fence is not None and fenced is not None:
                _leases.check_fence(_lease(fence.resource, fenced.fetchone()), fence)
            return [read() for read in pending]

        return Later(finish)

    return work


def _nothing() -> None:
    return None


def _send(db: Connection, tables: Tables, op: BatchOp) -> Callable[[], int | bool | None]:
    """Send ``op``'s one statement; returns what reads its result."""
    if isinstance(op, Put):
        if op.expected_version is None:
            put = db.execute(tables.put, (op.namespace, op.key, op.value))
            return lambda: int((put.fetchone() or (0,))[0])
        # A compare-and-set in one statement; only a conflict reads the version it met.
        if op.expected_version == 0:
            cas = db.execute(tables.insert_new, (op.namespace, op.key, op.value))
        else:
            values = (op.value, op.namespace, op.key, op.expected_version)
            cas = db.execute(tables.update_version, values)

        def written() -> int:
            row = cas.fetchone()
            if row is not None:
                return int(row[0])
            found = db.execute(tables.version_for_update, (op.namespace, op.key)).fetchone()
            current = 0 if found is None else int(found[0])
            raise VersionConflict(f"{op.namespace}/{op.key}", op.expected_version, current)

        return written
    if isinstance(op, Append):
        append = db.execute(tables.append, (op.log, op.log, op.value))
        return lambda: int((append.fetchone() or (0,))[0])
    if isinstance(op, Notify):
        payload = f"{tables.schema}{PAYLOAD_SEPARATOR}{op.channel}"
        db.execute(tables.notify, (PG_CHANNEL, payload))
        return _nothing
    if isinstance(op, Delete):
        deleted = db.execute(tables.delete, (op.namespace, op.key))
    elif isinstance(op, Remove):
        deleted = db.execute(tables.remove, (op.log, op.seq))
    elif isinstance(op, DropLease):
        deleted = db.execute(tables.drop_lease, (op.resource,))
    elif isinstance(op, OfferLease):
        # _leases.offered: a new free lease, or a free one moved earlier; else nothing.
        offered = db.execute(tables.offer_lease, (op.resource, op.delay))
        return lambda: offered.fetchone() is not None
    else:
        return _send_release(db, tables, op)
    return lambda: deleted.fetchone() is not None


def _send_release(db: Connection, tables: Tables, op: ReleaseLease) -> Callable[[], bool]:
    # _leases.released: only the holder of the token frees it.
    released = db.execute(tables.release_lease, (op.delay, op.resource, op.token))

    def read() -> bool:
        if released.fetchone() is None:
            row = _locked_lease(db, tables, op.resource, create=False)
            _leases.check_fence(row, Fence(op.resource, op.token))
            raise AssertionError(f"release of {op.resource} refused by a lease it fits: {row}")
        return True

    return read


def save_checkpoint(
    tables: Tables, run_id: str, step: int, value: bytes
) -> Callable[[Connection], None]:
    def work(db: Connection) -> None:
        db.execute(tables.save_checkpoint, (run_id, step, value))

    return work


def delete_run(tables: Tables, run_id: str) -> Callable[[Connection], int]:
    def work(db: Connection) -> int:
        return int((db.execute(tables.delete_run, (run_id,)).fetchone() or (0,))[0])

    return work
