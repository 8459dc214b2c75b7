"""What users hold while a reactor runs: :class:`ReactorHandle` and its
:class:`ReactorSnapshot`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

import anyio
import attrs

from ..supervisor import (
    ExternalChannelClosed,
    RunOutcome,
    StateWatcher,
    SupervisionTree,
    SupervisorHandle,
)
from ._accumulator_fsm import AccumulatorHealth
from ._admission import Receipt
from ._cache import InputCache, check_boundary
from ._context import ReactorContext
from ._fsm import (
    BoundaryArrived,
    FireWith,
    ForceFire,
    Pause,
    Paused,
    ReactorEvent,
    ReactorHealth,
    ReactorState,
    ReplayDeadLetters,
    Resume,
    Shutdown,
)
from ._types import DeadLetter, Source

if TYPE_CHECKING:
    from ._supervisor import Reactor

Out = TypeVar("Out")
T = TypeVar("T")


@attrs.frozen
class ReactorSnapshot(Generic[Out]):
    """Everything a reactor knows, at one moment (see :meth:`ReactorHandle.get_state`)."""

    state: ReactorState
    #: The state, with ``Paused`` replaced by the health it resumes to.
    health: ReactorHealth
    paused: bool
    #: The newest boundaries (``SEQUENTIAL``: as of the last committed firing).
    cache: InputCache
    #: ``LATEST`` sources with a boundary no firing has used yet.
    dirty: frozenset[str]
    #: ``SEQUENTIAL`` boundaries accepted and not yet fired.
    pending: int
    #: ``SEQUENTIAL`` boundaries taken from the channel and not yet accepted (their
    #: append has not committed: the store may be refusing writes).
    staged: int
    dead_letters: tuple[DeadLetter, ...]
    accumulators: Mapping[str, AccumulatorHealth]
    #: Completed firings of this run.
    firings: int
    #: Failed firings of this run (retries included).
    failed_firings: int
    last_error: str | None
    #: The outputs of the last completed firing.
    last_outputs: Out | None


def health_of(state: ReactorState) -> ReactorHealth:
    """A reactor's health: its state, or for ``Paused`` the health it resumes to."""
    return state.resume_to if isinstance(state, Paused) else state


class ReactorHandle(Generic[Out]):
    """Control a running reactor: manual commands, its state, its dead letters.

    Commands (:meth:`force_fire`, :meth:`fire_with`, :meth:`pause`, :meth:`resume`,
    :meth:`replay`, :meth:`shutdown`) are events on the reactor's channel: they return
    once queued (waiting while the channel is full) and take effect in order with the
    boundaries around them. Reads (:meth:`get_state`, :meth:`dead_letters`, :attr:`state`)
    never wait. Do not await commands from inside the graph: the reactor runs the graph
    in its loop, so it cannot take the command until the graph returns.
    """

    def __init__(
        self,
        reactor: Reactor[Out],
        supervisor: SupervisorHandle[ReactorState, ReactorEvent],
        context: ReactorContext,
        done: anyio.Event,
    ) -> None:
        self.reactor = reactor
        self._supervisor = supervisor
        self._ctx = context
        self._inlet = context.inlet(supervisor)
        #: Set by the reactor's run once it and everything it started have ended.
        self._done = done

    @property
    def name(self) -> str:
        return self.reactor.name

    @property
    def watcher(self) -> StateWatcher[ReactorState]:
        return self._supervisor.watcher

    @property
    def state(self) -> ReactorState:
        return self._supervisor.state

    @property
    def health(self) -> ReactorHealth:
        return health_of(self.state)

    @property
    def paused(self) -> bool:
        return isinstance(self.state, Paused)

    async def wait_for(self, predicate: Callable[[ReactorState], bool]) -> ReactorState:
        """Wait until the state satisfies ``predicate``; raises :class:`WatcherClosed` if
        the reactor stops first."""
        return await self._supervisor.wait_for(predicate)

    def changes(self) -> AsyncIterator[ReactorState]:
        """The current state, then the newest one after each change (latest value)."""
        return self._supervisor.changes()

    @property
    def tree(self) -> SupervisionTree | None:
        """The supervision tree running the accumulators (its restart ``history``, its
        ``children_status()``), once they have started; ``None`` without accumulators."""
        return self._ctx.tree

    # -- reads ----------------------------------------------------------------------------

    def get_state(self) -> ReactorSnapshot[Out]:
        ctx = self._ctx
        state = self.state
        return ReactorSnapshot(
            state=state,
            health=health_of(state),
            paused=isinstance(state, Paused),
            cache=InputCache(dict(ctx.cache), ctx.sources, ctx.dirty.dirty),
            dirty=ctx.dirty.dirty,
            pending=len(ctx.queue),
            staged=len(ctx.staged),
            dead_letters=tuple(ctx.dead.values()),
            accumulators=dict(ctx.health.healths),
            firings=ctx.firings,
            failed_firings=ctx.failed_firings,
            last_error=ctx.last_error,
            last_outputs=cast("Out | None", ctx.last_outputs),
        )

    def dead_letters(self) -> tuple[DeadLetter, ...]:
        """The dead letters, oldest first."""
        return tuple(self._ctx.dead.values())

    # -- commands -------------------------------------------------------------------------

    def _boundary(
        self, source: Source[T], boundary: T, receipt: Receipt | None = None
    ) -> BoundaryArrived:
        if self.reactor.sources.get(source.name) != source:
            raise KeyError(f"{source!r} is not a source of reactor {self.name!r}")
        return BoundaryArrived(source.name, check_boundary(source, boundary), receipt)

    async def send_boundary(
        self, source: Source[T], boundary: T, *, receipt: Receipt | None = None
    ) -> None:
        """Hand the reactor a boundary directly, as its accumulator would.

        Returns once the boundary is on the reactor's channel, waiting while the channel
        is full and, for ``SEQUENTIAL``, while ``max_pending`` boundaries are pending (not
        yet fired and committed): that is the backpressure of a slow graph, a paused or
        warming reactor, or a store that refuses writes. It is *accepted* later; pass a
        fresh :class:`Receipt` to learn when (or use :meth:`deliver`).

        Raises :class:`KeyError` for a source the reactor does not have,
        :class:`TypeError` for a boundary not of its type, and
        :class:`ExternalChannelClosed` once the reactor has stopped.
        """
        event = self._boundary(source, boundary, receipt)
        if receipt is None:
            await self._inlet.send(event)
            return
        self._ctx.register(receipt)
        try:
            await self._inlet.send(event)
        except BaseException:
            self._ctx.unregister(receipt, "it was never sent: the send failed or was cancelled")
            raise

    def send_boundary_nowait(
        self, source: Source[T], boundary: T, *, receipt: Receipt | None = None
    ) -> None:
        """:meth:`send_boundary` without waiting: raises ``anyio.WouldBlock`` when the
        reactor's channel is full or ``max_pending`` boundaries are pending."""
        event = self._boundary(source, boundary, receipt)
        if receipt is None:
            self._inlet.send_nowait(event)
            return
        self._ctx.register(receipt)
        try:
            self._inlet.send_nowait(event)
        except BaseException:
            self._ctx.unregister(receipt, "it was never sent: the reactor could not take it")
            raise

    async def deliver(self, source: Source[T], boundary: T) -> None:
        """Send a boundary and return once the reactor has accepted it: with a store and
        ``SEQUENTIAL``, once its append has committed, so that it fires even if the
        process dies right after (see :class:`Receipt`).

        Raises :class:`NotAccepted` if the reactor stops first, and the errors of
        :meth:`send_boundary`.
        """
        receipt = Receipt()
        await self.send_boundary(source, boundary, receipt=receipt)
        await receipt.wait()

    async def force_fire(self) -> None:
        """Fire with the current cache, whatever the criteria (once the reactor fires:
        not while it is warming or paused)."""
        await self._supervisor.send(ForceFire())

    async def fire_with(self, boundaries: Mapping[Source[Any], object]) -> None:
        """Replace the whole cache with ``boundaries`` and fire.

        Raises :class:`KeyError` for a source the reactor does not have and
        :class:`TypeError` for a boundary not of its source's type, before anything is
        sent.
        """
        checked = (self._boundary(source, value) for source, value in boundaries.items())
        await self._supervisor.send(FireWith({b.source: b.value for b in checked}))

    async def pause(self) -> None:
        """Stop firing; boundaries are still accepted (and, ``SEQUENTIAL``, queued)."""
        await self._supervisor.send(Pause())

    async def resume(self) -> None:
        await self._supervisor.send(Resume())

    async def replay(self, ids: tuple[int, ...] | None = None) -> None:
        """Queue the dead letters with ``ids`` (all of them by default) again, at the end
        of the queue. Raises :class:`KeyError` for an id that is not a dead letter."""
        if ids is not None:
            missing = sorted(set(ids) - set(self._ctx.dead))
            if missing:
                raise KeyError(f"no dead letter with id(s) {missing}")
        await self._supervisor.send(ReplayDeadLetters(ids))

    async def shutdown(self) -> RunOutcome[ReactorState]:
        """Stop the reactor in order (its accumulators, then a last save of the cache)
        and wait until everything it started has ended."""
        with contextlib.suppress(ExternalChannelClosed):  # already stopping
            await self._supervisor.send(Shutdown())
        return await self.outcome()

    def cancel(self) -> None:
        """Cancel the run now: no last save; what the store holds is what it had."""
        self._supervisor.cancel()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    async def outcome(self) -> RunOutcome[ReactorState]:
        """Wait until the reactor and everything it started have ended."""
        await self._done.wait()
        return await self._supervisor.outcome()
