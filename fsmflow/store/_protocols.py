"""What the engines persist, as small protocols.

Three shapes cover every engine's data: versioned key/value records (a reactor's cache),
append-only logs with O(1) removal of an entry (a durable queue), and checkpoints keyed by
run and step. ``write_batch`` applies several operations in one atomic commit, so an
engine can, say, drop a queue entry and save its new state together. The protocols speak
bytes; :class:`~fsmflow.store.Codec` turns typed values into bytes.

A fourth shape is ownership: a :class:`Lease` says which owner may write for a resource
(a reactor's name, a graph run, a durable run) until when, with a fencing token that grows
each time the resource changes hands. A write made under a lease passes its
:class:`Fence` to ``write_batch``; the store checks the token in the same transaction and
refuses the whole batch with :class:`~fsmflow.store.LeaseLost` when someone else has taken
the resource over since. Expiry is measured on the store's own clock
(:meth:`LeaseStore.clock`), never the caller's.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol, TypeAlias

import attrs


@attrs.frozen(slots=True)
class Versioned:
    """A stored value and its version (1 for the first write, +1 per write)."""

    value: bytes
    version: int


@attrs.frozen(slots=True)
class LogEntry:
    """One entry of an append-only log; ``seq`` increases strictly within a log and is
    never reused, even after entries are removed."""

    seq: int
    value: bytes


@attrs.frozen(slots=True)
class Checkpoint:
    """A checkpoint of one run at one step."""

    run_id: str
    step: int
    value: bytes
    #: Wall-clock time (seconds since the epoch) when it was saved.
    created_at: float


@attrs.frozen(slots=True)
class Put:
    """Batch operation: set ``namespace``/``key`` to ``value``; with ``expected_version``
    (``0`` meaning "must not exist") the whole batch fails with ``VersionConflict`` if the
    stored version differs."""

    namespace: str
    key: str
    value: bytes
    expected_version: int | None = None


@attrs.frozen(slots=True)
class Delete:
    """Batch operation: remove ``namespace``/``key`` if present."""

    namespace: str
    key: str


@attrs.frozen(slots=True)
class Append:
    """Batch operation: append ``value`` to ``log``."""

    log: str
    value: bytes


@attrs.frozen(slots=True)
class Remove:
    """Batch operation: remove entry ``seq`` of ``log`` if present."""

    log: str
    seq: int


@attrs.frozen(slots=True)
class Lease:
    """Ownership of ``resource`` by ``owner`` until ``expires_at`` (store clock, seconds).

    ``token`` is the fencing token: it grows every time the resource changes hands and is
    never reused for the resource. A lease whose ``owner`` is ``""`` is free: released, or
    offered for claiming from ``expires_at`` on (:class:`OfferLease`).
    """

    resource: str
    owner: str
    token: int
    expires_at: float

    @property
    def fence(self) -> Fence:
        """What a write made under this lease passes to ``write_batch``."""
        return Fence(self.resource, self.token)


@attrs.frozen(slots=True)
class Fence:
    """A write's claim to ownership: the batch applies only while ``resource``'s token is
    still ``token``; otherwise it fails whole with :class:`~fsmflow.store.LeaseLost`."""

    resource: str
    token: int


@attrs.frozen(slots=True)
class OfferLease:
    """Batch operation: make ``resource`` claimable ``delay`` seconds from now (store clock).

    Creates a free lease when the resource has none; moves a free lease's time earlier
    when now + ``delay`` is earlier (a signal waking a sleeping run); leaves a lease that
    an owner holds untouched. Returns whether anything changed. This is how work is handed
    to whichever worker claims it first (:meth:`LeaseStore.claim_leases`), and how a
    delayed start or a durable timer is stored.
    """

    resource: str
    delay: float = 0.0


@attrs.frozen(slots=True)
class ReleaseLease:
    """Batch operation: give up the lease on ``resource`` held with ``token`` and make the
    resource claimable ``delay`` seconds from now (``math.inf``: never, until offered
    again). Fails the whole batch with :class:`~fsmflow.store.LeaseLost` when the token is
    no longer the resource's. The token is kept, so the next owner gets a larger one."""

    resource: str
    token: int
    delay: float = 0.0


@attrs.frozen(slots=True)
class DropLease:
    """Batch operation: forget ``resource``'s lease entirely (a finished run past its
    retention). Its token history goes with it, so only drop resources whose name is never
    used again. Returns whether there was one."""

    resource: str


@attrs.frozen(slots=True)
class Notify:
    """Batch operation: wake the listeners of ``channel`` once the batch has committed
    (never if it fails). Returns ``None``. See :class:`NotificationStore`."""

    channel: str


BatchOp: TypeAlias = Put | Delete | Append | Remove | OfferLease | ReleaseLease | DropLease | Notify


class KeyValueStore(Protocol):
    async def get(self, namespace: str, key: str) -> Versioned | None:
        """The value and version at ``namespace``/``key``, or ``None``."""

    async def put(
        self, namespace: str, key: str, value: bytes, *, expected_version: int | None = None
    ) -> int:
        """Store ``value`` and return its new version. With ``expected_version`` it is a
        compare-and-set (``0``: the key must not exist) raising ``VersionConflict``."""

    async def delete(self, namespace: str, key: str) -> bool:
        """Remove the key; ``True`` if it existed."""

    async def keys(self, namespace: str) -> list[str]:
        """Every key of ``namespace``, sorted."""


class LogStore(Protocol):
    async def append(self, log: str, value: bytes) -> int:
        """Append ``value`` and return its ``seq``."""

    async def read(self, log: str, *, after: int = 0, limit: int | None = None) -> list[LogEntry]:
        """Entries with ``seq > after`` in ``seq`` order, at most ``limit`` of them."""

    async def remove(self, log: str, seq: int) -> bool:
        """Remove one entry in O(1); ``True`` if it existed."""

    async def length(self, log: str) -> int:
        """How many entries ``log`` holds."""


class CheckpointStore(Protocol):
    async def save_checkpoint(self, run_id: str, step: int, value: bytes) -> None:
        """Save (or replace) the checkpoint of ``run_id`` at ``step``."""

    async def latest_checkpoint(self, run_id: str) -> Checkpoint | None:
        """The checkpoint with the highest step, or ``None``."""

    async def checkpoints(self, run_id: str) -> list[Checkpoint]:
        """Every checkpoint of the run, by step."""

    async def runs(self) -> list[str]:
        """Every run id that has checkpoints, sorted."""

    async def delete_run(self, run_id: str) -> int:
        """Remove every checkpoint of the run; returns how many there were."""


class LeaseStore(Protocol):
    async def clock(self) -> float:
        """The store's clock now, in seconds: the clock every lease expiry is measured on."""

    async def acquire_lease(self, resource: str, owner: str, ttl: float) -> Lease:
        """Take ``resource`` for ``owner`` for ``ttl`` seconds, if nobody holds it.

        Succeeds when the resource has no lease, a free one, or one that has expired; the
        new lease's token is larger than any the resource had. Raises
        :class:`~fsmflow.store.LeaseHeld` (naming the holder and when its lease expires)
        while another unexpired lease exists — also when ``owner`` itself holds it: an
        owner id names one holder, so use a fresh one per process or run.
        """

    async def renew_lease(self, lease: Lease, ttl: float) -> Lease:
        """Extend ``lease`` to ``ttl`` seconds from now; raises
        :class:`~fsmflow.store.LeaseLost` when its token is no longer the resource's.

        A lease that expired but was not taken over renews: nobody else wrote meanwhile.
        """

    async def release_lease(self, lease: Lease) -> bool:
        """Give ``lease`` up (the resource stays unclaimable until acquired or offered);
        ``False`` when it was no longer ours (nothing changed)."""

    async def get_lease(self, resource: str) -> Lease | None:
        """The resource's lease as stored (free, held or expired), or ``None``."""

    async def claim_leases(
        self, prefix: str | Sequence[str], owner: str, ttl: float, *, limit: int
    ) -> list[Lease]:
        """Take up to ``limit`` claimable leases whose resource starts with ``prefix``:
        free ones offered for now or earlier, and held ones that have expired, earliest
        ``expires_at`` first. Each gets a new, larger token. Concurrent claimers (other
        tasks, processes or machines) never take the same lease twice.

        ``prefix`` may be a sequence of prefixes in priority order: every claimable lease
        of the first comes before any of the second, and so on, all in one transaction
        (one write however many prefixes a worker serves). Its cost grows with the leases
        claimable now, not with those held or never claimable (finished work).
        """

    async def next_claimable(self, prefix: str | Sequence[str], *, within: float) -> float | None:
        """Seconds (store clock) until the first lease under ``prefix`` (one or several)
        becomes claimable, if one does within ``within`` seconds: ``0.0`` when one is
        claimable now, ``None`` when none is within the horizon.

        A read: it takes no write lock and changes nothing, so idle workers can look for
        work as often as they like without contending with the writers (on SQLite a
        claim is a write and queues behind every other process's commits). Only leases
        that become claimable within the horizon are looked at, so its cost does not grow
        with the leases held or never claimable. A ``0.0`` is a hint: another claimer may
        take the lease first, so claim and accept an empty result.
        """


class Listener(Protocol):
    """A subscription to one notification channel (from :meth:`NotificationStore.listen`)."""

    async def wait(self) -> None:
        """Sleep until the channel is notified; bound it with a cancel scope
        (``with anyio.move_on_after(5): await listener.wait()``).

        Level-triggered: a notification sent at any time since the listener was opened
        (or since the previous ``wait`` returned) makes the next ``wait`` return at once,
        so the usual loop — look for work, then ``wait`` — never misses a wake-up that
        came in between. Several notifications may be reported as one, and a wait may
        return spuriously (after a reconnection, say): always re-check the store for work
        rather than trusting a count.
        """


class NotificationStore(Protocol):
    """Wake-ups across tasks, processes and machines, so that engines need not poll
    often: a producer notifies a channel after committing work, idle workers listen.

    How far a notification reaches depends on the backend: on ``MemoryStore`` and within
    one process on ``SqliteStore`` it arrives at once; ``SqliteStore`` listeners in other
    processes see it at their next poll (``poll_interval``); on ``PostgresStore`` it is
    PostgreSQL's LISTEN/NOTIFY and reaches every machine at once. Notifications are
    hints, never data: they are not stored, and a listener that was not open misses them.
    """

    async def notify(self, channel: str) -> None:
        """Wake ``channel``'s listeners now (the same as a batch of one :class:`Notify`)."""

    def listen(self, channel: str) -> AbstractAsyncContextManager[Listener]:
        """Open a :class:`Listener` on ``channel`` for the ``async with`` block."""


class Store(KeyValueStore, LogStore, CheckpointStore, LeaseStore, NotificationStore, Protocol):
    """A complete backend: key/value, logs, checkpoints, leases, notifications and atomic
    batches."""

    async def write_batch(
        self, ops: Sequence[BatchOp], *, fence: Fence | None = None
    ) -> list[int | bool | None]:
        """Apply ``ops`` atomically, in order; returns per operation the new version
        (``Put``), the new seq (``Append``), whether something changed (``Delete``,
        ``Remove``, ``OfferLease``, ``ReleaseLease``, ``DropLease``) or ``None``
        (``Notify``). On any error nothing is applied.

        The caller is resumed once the batch is durable (committed at the store's
        durability). Cancellation: a batch not yet handed to the backend is withdrawn and
        the cancellation raised at once; a batch the backend has begun is committed or
        rolled back whole, and the cancelled caller is resumed (with the cancellation)
        only after that, without learning which — read the store to find out.

        With ``fence``, the batch applies only if the fenced resource's token is still
        the fence's, checked in the same transaction; otherwise it raises
        :class:`~fsmflow.store.LeaseLost` and nothing is applied.
        """

    async def aclose(self) -> None:
        """Release the backend's resources; the store is unusable afterwards."""

    async def __aenter__(self) -> Store:
        """``async with store:`` closes it at the end of the block."""

    async def __aexit__(self, *exc_info: object) -> None: ...
