"""Where boundaries enter a reactor: the pending bound, and receipts of acceptance.

A ``SEQUENTIAL`` reactor holds at most ``max_pending`` boundaries that were sent and not
yet settled (fired and committed, or dead-lettered): on its channel, staged for the
store, or queued. :class:`PendingLimit` enforces that bound *before* a boundary enters
the channel, whatever the reactor is doing (``Live``, ``Paused``, ``Warming``, or waiting
for a store that refuses writes), so producers wait while the channel stays free for
commands. :class:`Receipt` tells a producer when its boundary has been accepted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, final

import anyio

from ..supervisor import ExternalChannelClosed

if TYPE_CHECKING:
    from ._fsm import BoundaryArrived, ReactorEvent


class NotAccepted(Exception):
    """The reactor stopped before it accepted a boundary sent with a :class:`Receipt`.

    Such a boundary will not fire: send it again to a new run of the reactor. (A run that
    is *cancelled* while an append is being committed cannot tell whether the append
    made it; after a cancellation, treat this error as "unknown".)
    """


@final
class Receipt:
    """Tells whoever sent a boundary when the reactor has accepted it.

    Pass a fresh receipt to :meth:`ReactorHandle.send_boundary` (one receipt per
    boundary), then ``await receipt.wait()``; :meth:`ReactorHandle.deliver` does both.
    *Accepted* means: for a ``SEQUENTIAL`` reactor with a store, the boundary's append to
    the persisted queue has committed, so it fires even if the process dies now; without
    a store, it has joined the queue; for ``LATEST``, it has been taken into the cache.
    Receipts are resolved in the order the boundaries were sent on one channel, so
    awaiting the receipt of the last boundary sent is enough to know that every earlier
    one was accepted too.
    """

    __slots__ = ("_done", "_refusal", "_event", "_used")

    def __init__(self) -> None:
        self._done = False
        self._refusal: str | None = None
        self._event: anyio.Event | None = None
        self._used = False

    @property
    def accepted(self) -> bool:
        """Whether the reactor has accepted the boundary."""
        return self._done and self._refusal is None

    async def wait(self) -> None:
        """Return once the boundary is accepted; raise :class:`NotAccepted` if the
        reactor stopped before accepting it."""
        if not self._done:
            if self._event is None:
                self._event = anyio.Event()
            await self._event.wait()
        else:
            await anyio.lowlevel.checkpoint()
        if self._refusal is not None:
            raise NotAccepted(self._refusal)

    def use(self) -> None:
        """Mark the receipt as sent with a boundary (a receipt serves one boundary)."""
        if self._used:
            raise ValueError("this Receipt was already sent with a boundary: use a fresh one")
        self._used = True

    def accept(self) -> None:
        self._resolve(None)

    def refuse(self, reason: str) -> None:
        self._resolve(reason)

    def _resolve(self, refusal: str | None) -> None:
        if self._done:
            return
        self._done = True
        self._refusal = refusal
        if self._event is not None:
            self._event.set()


class PendingLimit:
    """At most ``limit`` boundaries sent and not yet settled (``None``: no bound).

    :meth:`admit` (and :meth:`try_admit`) take a place for a boundary about to be sent;
    the reactor :meth:`settle` s it when the boundary leaves its queue, and :meth:`add` s
    the places of boundaries it holds without their having been sent (restored from the
    store, replayed dead letters), so those count too. Once closed (the run is over),
    admitting raises :class:`ExternalChannelClosed`.

    Once ``limit`` is reached, producers wait until ``batch`` places are free again, not
    just one: they then send a batch that the reactor accepts in one store write, where
    one place at a time would cost a write per boundary in the steady state of a full
    queue.
    """

    __slots__ = ("limit", "low", "pending", "_full", "_room", "_closed")

    def __init__(self, limit: int | None, batch: int = 1) -> None:
        self.limit = limit
        #: Once full, admitting resumes at this many pending.
        self.low = None if limit is None else max(limit - max(batch, 1), 0)
        self.pending = 0
        self._full = False
        self._room: anyio.Event | None = None
        self._closed = False

    def try_admit(self) -> bool:
        """Take a place if there is one, without waiting."""
        if self._closed:
            raise ExternalChannelClosed(
                "the reactor's run has ended: it accepts no more boundaries", ended=True
            )
        if self.limit is None:
            return True
        if self._full or self.pending >= self.limit:
            self._full = True
            return False
        self.pending += 1
        return True

    async def admit(self) -> None:
        """Take a place, waiting while ``limit`` boundaries are pending (cancellable: a
        cancelled wait takes no place)."""
        while not self.try_admit():
            if self._room is None:
                self._room = anyio.Event()
            await self._room.wait()

    def add(self, count: int) -> None:
        """Count ``count`` boundaries the reactor took without a place."""
        if self.limit is not None:
            self.pending += count

    def settle(self, count: int = 1) -> None:
        """``count`` boundaries left: their places are free again."""
        if self.limit is None:
            return
        self.pending -= count
        if self._full and self.low is not None and self.pending <= self.low:
            self._full = False
            if self._room is not None:
                self._room.set()
                self._room = None

    def close(self) -> None:
        """The run is over: waiting and later admissions raise."""
        self._closed = True
        if self._room is not None:
            self._room.set()
            self._room = None


class _Sender(Protocol):
    async def send(self, event: ReactorEvent, /) -> None: ...

    def send_nowait(self, event: ReactorEvent, /) -> None: ...


class BoundaryInlet:
    """Sends boundaries into a reactor: a place under its :class:`PendingLimit` first,
    then the reactor's channel (given back if the send fails or is cancelled)."""

    __slots__ = ("_sender", "_limit")

    def __init__(self, sender: _Sender, limit: PendingLimit) -> None:
        self._sender = sender
        self._limit = limit

    async def send(self, event: BoundaryArrived) -> None:
        """Send ``event``, waiting for a place and then for room on the channel."""
        if not self._limit.try_admit():
            await self._limit.admit()
        try:
            await self._sender.send(event)
        except BaseException:
            self._limit.settle()
            raise

    def send_nowait(self, event: BoundaryArrived) -> None:
        """Send ``event`` without waiting; raises ``anyio.WouldBlock`` when no place is
        free or the channel is full."""
        limit = self._limit
        if limit.limit is None and not limit._closed:  # LATEST: nothing to count
            self._sender.send_nowait(event)
            return
        if not limit.try_admit():
            raise anyio.WouldBlock
        try:
            self._sender.send_nowait(event)
        except BaseException:
            self._limit.settle()
            raise
