"""What users hold while a reactor runs: :func:`start_reactor` and :class:`ReactorHandle`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from typing import Any, Generic, Protocol, TypeVar, cast

import anyio
import attrs

from ..supervisor import (
    ExternalChannelClosed,
    RunOutcome,
    StateWatcher,
    SupervisionTree,
    SupervisorHandle,
    WatcherClosed,
    start_supervisor,
)
from ._accumulator_fsm import AccumulatorHealth
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
    Starting,
)
from ._supervisor import Reactor
from ._types import DeadLetter, Source

Out = TypeVar("Out")
T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)


class TaskStarter(Protocol):
    """A trio nursery or an anyio task group: something with ``start``."""

    async def start(
        self, func: Callable[..., Coroutine[Any, Any, Any]], /, *args: object, name: object = None
    ) -> Any: ...


class _TaskStatus(Protocol[T_contra]):
    def started(self, value: T_contra) -> None: ...


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
    ) -> None:
        self.reactor = reactor
        self._supervisor = supervisor
        self._ctx = context
        self._done = anyio.Event()

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
            dead_letters=tuple(ctx.dead.values()),
            accumulators=dict(ctx.healths),
            firings=ctx.firings,
            failed_firings=ctx.failed_firings,
            last_error=ctx.last_error,
            last_outputs=cast("Out | None", ctx.last_outputs),
        )

    def dead_letters(self) -> tuple[DeadLetter, ...]:
        """The dead letters, oldest first."""
        return tuple(self._ctx.dead.values())

    # -- commands -------------------------------------------------------------------------

    def _boundary(self, source: Source[T], boundary: T) -> BoundaryArrived:
        if self.reactor.sources.get(source.name) != source:
            raise KeyError(f"{source!r} is not a source of reactor {self.name!r}")
        return BoundaryArrived(source.name, check_boundary(source, boundary))

    async def send_boundary(self, source: Source[T], boundary: T) -> None:
        """Hand the reactor a boundary directly, as its accumulator would (waiting while
        the channel is full). Raises :class:`KeyError` for a source the reactor does not
        have and :class:`TypeError` for a boundary not of its type."""
        await self._supervisor.send(self._boundary(source, boundary))

    def send_boundary_nowait(self, source: Source[T], boundary: T) -> None:
        """:meth:`send_boundary` without waiting: raises ``anyio.WouldBlock`` when the
        reactor's channel is full."""
        self._supervisor.send_nowait(self._boundary(source, boundary))

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


def _started(state: ReactorState) -> bool:
    return not isinstance(state, Starting)


async def serve(
    reactor: Reactor[Out], task_status: _TaskStatus[ReactorHandle[Out]] | None
) -> RunOutcome[ReactorState]:
    """Run ``reactor`` in a task group of its own; report its handle through
    ``task_status`` once it has restored its state and started its accumulators.

    A start that failed (a store that cannot be read, say) raises its error here, before
    ``task_status`` is told anything, so ``start_reactor`` raises it to its caller.
    """
    ctx = reactor.initial_context()
    handle: ReactorHandle[Out] | None = None
    try:
        async with anyio.create_task_group() as task_group:
            supervisor: SupervisorHandle[ReactorState, ReactorEvent] = await start_supervisor(
                task_group,
                reactor,
                initial_state=Starting(),
                context=ctx,
                capacity=reactor.capacity,
            )
            ctx.bind(task_group, supervisor.sender())
            handle = ReactorHandle(reactor, supervisor, ctx)
            with contextlib.suppress(WatcherClosed):  # the run ended while starting
                await supervisor.wait_for(_started)
            if ctx.startup_error is None and task_status is not None:
                task_status.started(handle)
            outcome = await supervisor.outcome()
            task_group.cancel_scope.cancel()
    finally:
        ctx.close()
        if handle is not None:
            handle._done.set()
    if ctx.startup_error is not None:
        raise ctx.startup_error
    return outcome


async def _serve_started(
    reactor: Reactor[Out], *, task_status: _TaskStatus[ReactorHandle[Out]]
) -> None:
    await serve(reactor, task_status)


async def start_reactor(starter: TaskStarter, reactor: Reactor[Out]) -> ReactorHandle[Out]:
    """Start ``reactor`` in ``starter`` (a nursery or task group) and return its handle
    once it has restored its state from the store and started its accumulators.

    Errors restoring the store (a :class:`~fsmflow.store.DecodeError` naming the bad key,
    say) are raised here. Later failures of the reactor propagate into ``starter``; a
    graph error is never one of them.
    """
    handle: ReactorHandle[Out] = await starter.start(_serve_started, reactor)
    return handle
