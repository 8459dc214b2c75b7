"""One process per thread: the lease a graph run holds on its thread.

A run that checkpoints to a store holds the lease on ``fsmflow.graph/<thread>`` (see
:func:`~fsmflow.store.hold_lease`) from before it reads the thread until it ends —
completed, failed, stopped at an interrupt or cancelled — renewing it in the background
every ``lease_ttl / 3`` seconds. Every write to the thread (its checkpoints, a
``replace``, :func:`~fsmflow.graph.update_state`, an answer recorded by ``fsmflow runs``)
carries the lease's fence, so the store refuses it whole once someone else has taken the
thread over. Edits made outside a run take the lease just for the write.

Acquiring while a live process holds the lease raises :class:`ThreadHeld`, naming the
holder and when its lease expires; a *standby* waits instead and takes over when the
holder releases the lease or dies (its lease expires). A run that loses its lease is
told at once (:meth:`ThreadLease.lose` reaches its context): it stops without writing.
"""

from __future__ import annotations

import math
import os
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any

from ..store import (
    BatchOp,
    Fence,
    HeldLease,
    LeaseHeld,
    LeaseLost,
    Notify,
    ReleaseLease,
    Store,
    StoreError,
    hold_lease,
    lease_channel,
)
from ._errors import ThreadHeld

if TYPE_CHECKING:
    from ._context import RunContext

#: How long a run's lease lasts without renewal (seconds, on the store's clock): a
#: process that dies leaves its thread to a standby after at most this long.
DEFAULT_LEASE_TTL = 30.0


def thread_resource(thread_id: str) -> str:
    """The lease resource of a thread (the same name as its key/value namespace)."""
    return f"fsmflow.graph/{thread_id}"


def new_owner() -> str:
    """A fresh owner id: host, process id and a random part (one per acquisition)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


async def running(store: Store, thread_id: str) -> tuple[str, float] | None:
    """Who runs ``thread_id`` now and in how many seconds its lease expires unless
    renewed, or ``None`` when nobody holds it (a read: it takes nothing)."""
    lease = await store.get_lease(thread_resource(thread_id))
    if lease is None or not lease.owner:
        return None
    expires_in = lease.expires_at - await store.clock()
    return None if expires_in <= 0 else (lease.owner, expires_in)


class ThreadLease:
    """A hold on one thread: the fence its writes carry, and where a loss is reported."""

    def __init__(self, thread_id: str) -> None:
        self.thread_id = thread_id
        self.held: HeldLease | None = None
        #: Why the lease was lost (``None`` while held).
        self.lost: StoreError | None = None
        self._ctx: RunContext[Any] | None = None

    @property
    def fence(self) -> Fence:
        assert self.held is not None
        return self.held.fence

    def watch(self, ctx: RunContext[Any]) -> None:
        """Report a loss to ``ctx`` (the run working under this lease)."""
        self._ctx = ctx
        ctx.lease = self
        if self.lost is not None:
            ctx.lose(self.lost)

    def lose(self, error: StoreError) -> None:
        """The lease is gone: tell the run, which stops without writing."""
        if self.lost is None:
            self.lost = error
        if self._ctx is not None:
            self._ctx.lose(error)

    @property
    def released(self) -> bool:
        """Whether the run gave the lease up (its last write released it)."""
        return self.held is not None and self.held.given_up

    def release_ops(self) -> list[BatchOp]:
        """What a run's last write adds to its batch to give the lease up (and wake the
        standbys) in the same transaction."""
        resource = thread_resource(self.thread_id)
        return [ReleaseLease(resource, self.fence.token, math.inf), Notify(lease_channel(resource))]

    def gave_up(self) -> None:
        """The batch with :meth:`release_ops` committed: nothing is written any more."""
        assert self.held is not None
        self.held.give_up()

    async def release(self, store: Store) -> None:
        """Give the lease up now (a run that ended without a last checkpoint). A store
        error leaves it to the end of :func:`hold_thread`, which tries again."""
        if self.released or self.lost is not None:
            return
        try:
            await store.write_batch(self.release_ops(), fence=self.fence)
        except LeaseLost:
            pass  # someone else has it already: nothing to give up
        except StoreError:
            return
        self.gave_up()


@asynccontextmanager
async def hold_thread(
    store: Store, thread_id: str, ttl: float, *, standby: bool = False, run: bool = False
) -> AsyncIterator[ThreadLease]:
    """Hold ``thread_id``'s lease for the ``async with`` block.

    Raises :class:`ThreadHeld` while a live process holds it (``standby``: waits for
    it). For a ``run``, a lost lease is reported to the run's context
    (:meth:`ThreadLease.watch`), which stops by itself; otherwise the block is cancelled
    and the store's :class:`~fsmflow.store.LeaseLost` raised (a brief edit).
    """
    lease = ThreadLease(thread_id)
    holding = hold_lease(
        store,
        thread_resource(thread_id),
        new_owner(),
        ttl,
        standby=standby,
        on_lost=lease.lose if run else None,
    )
    async with AsyncExitStack() as stack:
        try:
            lease.held = await stack.enter_async_context(holding)
        except LeaseHeld as exc:  # only the acquisition's, never the block's own
            raise ThreadHeld(thread_id, exc.holder, exc.expires_in) from exc
        yield lease
