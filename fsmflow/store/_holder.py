"""``hold_lease`` and ``keep_lease``: own a resource for as long as a block of code runs.

The one mechanism engines use to run under a lease (a reactor by name, a graph run, every
durable run a worker claims): ``hold_lease`` acquires (or, as a standby, waits to
acquire) and ``keep_lease`` takes a lease already claimed; both renew it in the
background at a fraction of the TTL, and the moment the lease is lost they cancel the
block and raise :class:`~fsmflow.store.LeaseLost` — so an engine never goes on working
for a resource someone else now owns. On a clean exit the lease is released and the
resource's channel notified, so a standby takes over at once instead of waiting for the
TTL.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress

import anyio

from ._errors import LeaseHeld, LeaseLost, StoreError
from ._protocols import Fence, Lease, Notify, ReleaseLease, Store


def lease_channel(resource: str) -> str:
    """The notification channel on which a resource's release is announced."""
    return f"fsmflow.lease:{resource}"


class HeldLease:
    """What the block holding a lease sees: the current lease and whether it was lost."""

    def __init__(self, lease: Lease) -> None:
        #: The lease as last acquired or renewed (its token never changes while held).
        self.lease = lease
        #: Set when the lease was lost (the block is being cancelled).
        self.lost = anyio.Event()
        #: Why it was lost: the store's LeaseLost, or the error that kept renewal from
        #: succeeding until the lease expired.
        self.error: StoreError | None = None
        self._given_up = False

    @property
    def fence(self) -> Fence:
        """Pass this to ``write_batch`` for every write made under the lease."""
        return self.lease.fence

    @property
    def given_up(self) -> bool:
        """Whether the block said it released the lease itself (:meth:`give_up`)."""
        return self._given_up

    def give_up(self) -> None:
        """Say that the block released the lease itself, in a fenced batch of its own
        (typically together with its last write): renewal stops, a renewal refused from
        now on is no loss, and the lease is not released again on exit. Call it after
        that batch committed."""
        self._given_up = True


@asynccontextmanager
async def hold_lease(
    store: Store,
    resource: str,
    owner: str,
    ttl: float,
    *,
    standby: bool = False,
    renew_every: float | None = None,
    on_lost: Callable[[StoreError], None] | None = None,
) -> AsyncIterator[HeldLease]:
    """Hold ``resource`` for ``owner`` while the ``async with`` block runs.

    Acquires the lease (raising :class:`LeaseHeld`, naming the holder, while someone else
    holds it — or, with ``standby=True``, waiting until the holder releases it or its
    lease expires), then keeps it as :func:`keep_lease` does (``on_lost`` included).
    """
    interval = _interval(ttl, renew_every)
    lease = await _acquire(store, resource, owner, ttl, standby)
    async with keep_lease(store, lease, ttl, renew_every=interval, on_lost=on_lost) as held:
        yield held


@asynccontextmanager
async def keep_lease(
    store: Store,
    lease: Lease,
    ttl: float,
    *,
    renew_every: float | None = None,
    release_after: float = math.inf,
    on_lost: Callable[[StoreError], None] | None = None,
) -> AsyncIterator[HeldLease]:
    """Keep ``lease`` (already acquired or claimed) while the ``async with`` block runs.

    A background task renews it every ``renew_every`` seconds (default ``ttl / 3``). If a
    renewal finds the lease taken over, or renewals keep failing until the lease must
    have expired, the block is cancelled, :attr:`HeldLease.lost` is set and the ``async
    with`` raises that error (:class:`LeaseLost` or the store's :class:`BackendError`);
    fenced writes the block makes meanwhile are refused by the store anyway. When the
    block ends, the lease is released — claimable again ``release_after`` seconds later
    (default: never, until offered again) — and its channel (:func:`lease_channel`)
    notified, unless it was lost or the block released it itself
    (:meth:`HeldLease.give_up`).

    With ``on_lost``, the block stops by itself instead: a lost lease sets
    :attr:`HeldLease.lost` and calls ``on_lost(error)`` (from the renewal task; it must
    not block), the block is not cancelled, and the ``async with`` does not raise the
    error. An engine whose own state machine must see the loss as an event uses this.
    """
    interval = _interval(ttl, renew_every)
    held = HeldLease(lease)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_renew, store, held, ttl, interval, tg.cancel_scope, on_lost)
            try:
                yield held
            finally:
                tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The block's own exception, not wrapped in the renewal task group's.
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from group.exceptions[0].__cause__
        raise
    finally:
        if held.error is None and not held.given_up:
            await _release(store, held.lease, release_after)
    if held.error is not None and on_lost is None:
        raise held.error


def _interval(ttl: float, renew_every: float | None) -> float:
    interval = ttl / 3 if renew_every is None else renew_every
    if not (0 < interval < ttl):
        raise ValueError(f"renew_every must be between 0 and the ttl ({ttl}), not {interval}")
    return interval


async def _release(store: Store, lease: Lease, delay: float) -> None:
    """Give the lease up and wake the standbys, even while being cancelled."""
    release = ReleaseLease(lease.resource, lease.token, delay)
    with anyio.CancelScope(shield=True), suppress(LeaseLost):
        await store.write_batch([release, Notify(lease_channel(lease.resource))])


async def _acquire(store: Store, resource: str, owner: str, ttl: float, standby: bool) -> Lease:
    if not standby:
        return await store.acquire_lease(resource, owner, ttl)
    async with store.listen(lease_channel(resource)) as released:
        while True:
            try:
                return await store.acquire_lease(resource, owner, ttl)
            except LeaseHeld as held:
                # Until the holder releases (a notification) or its lease expires.
                with anyio.move_on_after(min(held.expires_in, ttl) + 0.01):
                    await released.wait()


async def _renew(
    store: Store,
    held: HeldLease,
    ttl: float,
    interval: float,
    scope: anyio.CancelScope,
    on_lost: Callable[[StoreError], None] | None,
) -> None:
    renewed_at = anyio.current_time()
    while True:
        await anyio.sleep(interval)
        if held.given_up:
            return
        attempt = anyio.current_time()
        try:
            renewed = await store.renew_lease(held.lease, ttl)
        except LeaseLost as exc:
            if held.given_up:
                return  # released by the block meanwhile: nothing was lost
            held.error = exc
        except StoreError as exc:
            if anyio.current_time() < renewed_at + ttl - interval:
                continue  # a transient failure: try again while the lease surely holds
            held.error = exc
        else:
            held.lease = renewed
            renewed_at = attempt
            continue
        held.lost.set()
        if on_lost is None:
            scope.cancel()
        else:
            on_lost(held.error)
        return
