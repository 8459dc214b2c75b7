"""``MemoryStore``: the protocols in memory, for tests and ephemeral runs."""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import anyio.lowlevel

from . import _leases
from ._errors import VersionConflict
from ._notify import NotificationHub
from ._protocols import (
    Append,
    BatchOp,
    Checkpoint,
    Delete,
    DropLease,
    Fence,
    Lease,
    Listener,
    LogEntry,
    Notify,
    OfferLease,
    Put,
    ReleaseLease,
    Versioned,
)
from ._single_ops import SingleOpWrites


class MemoryStore(SingleOpWrites):
    """Every :class:`Store` operation on plain dicts.

    Same semantics as :class:`SqliteStore` (versions, never-reused log seqs, atomic
    batches, leases and fencing), nothing survives the process. Each call is a checkpoint,
    so code tested against it meets the same cancellation points as with a real backend.
    ``clock`` is the store's clock for lease expiry (default: :func:`time.time`); tests
    may pass a fake one.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._leases: dict[str, Lease] = {}
        self._kv: dict[tuple[str, str], Versioned] = {}
        self._logs: dict[str, dict[int, bytes]] = {}
        self._log_heads: dict[str, int] = {}
        self._checkpoints: dict[str, dict[int, Checkpoint]] = {}
        self._hub = NotificationHub()

    # -- key / value ------------------------------------------------------------------

    async def get(self, namespace: str, key: str) -> Versioned | None:
        await anyio.lowlevel.checkpoint()
        return self._kv.get((namespace, key))

    async def keys(self, namespace: str) -> list[str]:
        await anyio.lowlevel.checkpoint()
        return sorted(k for ns, k in self._kv if ns == namespace)

    # -- logs -------------------------------------------------------------------------

    async def read(self, log: str, *, after: int = 0, limit: int | None = None) -> list[LogEntry]:
        await anyio.lowlevel.checkpoint()
        entries: list[LogEntry] = []
        for seq, value in self._logs.get(log, {}).items():
            if seq > after:
                if limit is not None and len(entries) >= limit:
                    break
                entries.append(LogEntry(seq, value))
        return entries

    async def length(self, log: str) -> int:
        await anyio.lowlevel.checkpoint()
        return len(self._logs.get(log, {}))

    # -- checkpoints ------------------------------------------------------------------

    async def save_checkpoint(self, run_id: str, step: int, value: bytes) -> None:
        await anyio.lowlevel.checkpoint()
        steps = self._checkpoints.setdefault(run_id, {})
        steps[step] = Checkpoint(run_id, step, value, time.time())

    async def latest_checkpoint(self, run_id: str) -> Checkpoint | None:
        await anyio.lowlevel.checkpoint()
        steps = self._checkpoints.get(run_id)
        return steps[max(steps)] if steps else None

    async def checkpoints(self, run_id: str) -> list[Checkpoint]:
        await anyio.lowlevel.checkpoint()
        steps = self._checkpoints.get(run_id, {})
        return [steps[s] for s in sorted(steps)]

    async def runs(self) -> list[str]:
        await anyio.lowlevel.checkpoint()
        return sorted(r for r, steps in self._checkpoints.items() if steps)

    async def delete_run(self, run_id: str) -> int:
        await anyio.lowlevel.checkpoint()
        return len(self._checkpoints.pop(run_id, {}))

    # -- leases -----------------------------------------------------------------------

    async def clock(self) -> float:
        await anyio.lowlevel.checkpoint()
        return self._clock()

    async def acquire_lease(self, resource: str, owner: str, ttl: float) -> Lease:
        await anyio.lowlevel.checkpoint()
        lease = _leases.acquired(self._leases.get(resource), resource, owner, ttl, self._clock())
        self._leases[resource] = lease
        return lease

    async def renew_lease(self, lease: Lease, ttl: float) -> Lease:
        await anyio.lowlevel.checkpoint()
        renewed = _leases.renewed(self._leases.get(lease.resource), lease, ttl, self._clock())
        self._leases[lease.resource] = renewed
        return renewed

    async def get_lease(self, resource: str) -> Lease | None:
        await anyio.lowlevel.checkpoint()
        return self._leases.get(resource)

    async def claim_leases(
        self, prefix: str | Sequence[str], owner: str, ttl: float, *, limit: int
    ) -> list[Lease]:
        await anyio.lowlevel.checkpoint()
        _leases.check_ttl(ttl)
        now = self._clock()
        claimed: list[Lease] = []
        for one in _leases.prefixes(prefix):
            ready = sorted(
                (
                    row
                    for name, row in self._leases.items()
                    if name.startswith(one) and _leases.claimable(row, now)
                ),
                key=lambda row: (row.expires_at, row.resource),
            )
            for row in ready[: max(0, limit - len(claimed))]:
                lease = _leases.acquired(row, row.resource, owner, ttl, now)
                self._leases[row.resource] = lease
                claimed.append(lease)
        return claimed

    async def next_claimable(self, prefix: str | Sequence[str], *, within: float) -> float | None:
        await anyio.lowlevel.checkpoint()
        _leases.check_delay(within)
        now = self._clock()
        due = [
            row.expires_at
            for name, row in self._leases.items()
            if row.expires_at <= min(now + within, sys.float_info.max)
            and any(name.startswith(one) for one in _leases.prefixes(prefix))
        ]
        return max(0.0, min(due) - now) if due else None

    # -- batches ----------------------------------------------------------------------

    async def write_batch(
        self, ops: Sequence[BatchOp], *, fence: Fence | None = None
    ) -> list[int | bool | None]:
        await anyio.lowlevel.checkpoint()
        if fence is not None:
            _leases.check_fence(self._leases.get(fence.resource), fence)
        undo: list[Callable[[], None]] = []
        results: list[int | bool | None] = []
        try:
            for op in ops:
                results.append(self._apply(op, undo))
        except BaseException:
            for step in reversed(undo):
                step()
            raise
        for op in ops:
            if isinstance(op, Notify):
                self._hub.publish(op.channel)
        return results

    @asynccontextmanager
    async def listen(self, channel: str) -> AsyncIterator[Listener]:
        """A listener on ``channel``, woken at once by this store's notifications."""
        await anyio.lowlevel.checkpoint()
        async with self._hub.subscribe(channel) as subscription:
            yield subscription

    def _apply(self, op: BatchOp, undo: list[Callable[[], None]]) -> int | bool | None:
        if isinstance(op, Put):
            key = (op.namespace, op.key)
            old = self._kv.get(key)
            current = 0 if old is None else old.version
            if op.expected_version is not None and op.expected_version != current:
                raise VersionConflict(f"{op.namespace}/{op.key}", op.expected_version, current)
            self._kv[key] = Versioned(op.value, current + 1)
            undo.append(lambda: self._restore(key, old))
            return current + 1
        if isinstance(op, Delete):
            key = (op.namespace, op.key)
            old = self._kv.pop(key, None)
            undo.append(lambda: self._restore(key, old))
            return old is not None
        if isinstance(op, Append):
            head = self._log_heads.get(op.log, 0)
            seq = head + 1
            self._log_heads[op.log] = seq
            self._logs.setdefault(op.log, {})[seq] = op.value
            undo.append(lambda: self._undo_append(op.log, seq, head))
            return seq
        if isinstance(op, OfferLease | ReleaseLease | DropLease):
            return self._apply_lease(op, undo)
        if isinstance(op, Notify):
            return None
        entries = self._logs.get(op.log, {})
        if op.seq not in entries:
            return False
        value = entries.pop(op.seq)
        undo.append(lambda: self._reinsert(op.log, op.seq, value))
        return True

    def _apply_lease(
        self, op: OfferLease | ReleaseLease | DropLease, undo: list[Callable[[], None]]
    ) -> bool:
        resource = op.resource
        old = self._leases.get(resource)
        new: Lease | None
        if isinstance(op, OfferLease):
            new = _leases.offered(old, resource, op.delay, self._clock())
            if new is None:
                return False
        elif isinstance(op, ReleaseLease):
            new = _leases.released(old, resource, op.token, op.delay, self._clock())
        else:
            if old is None:
                return False
            new = None
        if new is None:
            del self._leases[resource]
        else:
            self._leases[resource] = new
        undo.append(lambda: self._restore_lease(resource, old))
        return True

    def _restore_lease(self, resource: str, old: Lease | None) -> None:
        if old is None:
            self._leases.pop(resource, None)
        else:
            self._leases[resource] = old

    def _restore(self, key: tuple[str, str], old: Versioned | None) -> None:
        if old is None:
            self._kv.pop(key, None)
        else:
            self._kv[key] = old

    def _undo_append(self, log: str, seq: int, head: int) -> None:
        self._logs[log].pop(seq, None)
        self._log_heads[log] = head

    def _reinsert(self, log: str, seq: int, value: bytes) -> None:
        entries = self._logs[log]
        entries[seq] = value
        self._logs[log] = dict(sorted(entries.items()))

    async def __aenter__(self) -> MemoryStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await anyio.lowlevel.checkpoint()
