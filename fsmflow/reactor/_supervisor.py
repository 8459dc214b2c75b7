"""``Reactor``: a :class:`SelfSupervised` FSM that fires a graph when its inputs say so.

What each state does when the loop asks (``dispatch_state``), and how each state treats
the external channel (``external_event_mode``):

* ``Starting``: restore from the store and attach the accumulators (``IGNORE``: nothing
  is taken from the channel yet); either failing stops the reactor before it started.
* ``Warming``, ``Paused``: take events (``BLOCK``): boundaries, health changes, commands.
* ``Live``, ``Degraded``: ``BLOCK`` while nothing is due; once a firing is due, take the
  events that are ready first (``POLL``) so that ``LATEST`` boundaries coalesce, but no
  more than ``max_burst`` of them (``IGNORE``); then run the graph, in the loop. A graph
  that takes long therefore stops the reactor from reading its channel, and the bounded
  channel makes the accumulators wait: backpressure instead of growing memory.
* In all four, ``SEQUENTIAL`` boundaries taken from the channel (with a store) are staged
  while more are ready, then accepted together (``AcceptStaged``: one batch of appends)
  before anything else: before a firing, and before the reactor blocks again. They stay
  staged until that append commits. After a failure of the reactor's own (a store that
  refuses a write), all four ``BLOCK`` until the backoff has passed: commands still come
  in, nothing is written or fired.
* ``Stopped``: end the run.

``max_pending`` bounds the ``SEQUENTIAL`` boundaries sent and not yet settled in every
state; it is applied where boundaries enter (``send_boundary``, the accumulators), so
that the channel stays free for commands.

:func:`start_reactor` (and ``Reactor.run``) serve one run: the reactor in a task group of
its own, with its accumulators, and a :class:`ReactorHandle` to control it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Generic, Protocol, TypeVar

import anyio

from ..fsm import FsmSpec
from ..store import Codec, Store
from ..supervisor import (
    TERMINATE,
    EventLoopDirective,
    ExternalEventMode,
    ExternalEventPolicy,
    Journal,
    RestartBackoff,
    RestartIntensity,
    RunOutcome,
    SelfSupervised,
    SupervisorHandle,
    Trigger,
    WatcherClosed,
    start_supervisor,
)
from ._accumulators import Accumulator
from ._cache import BoundaryCodec
from ._context import ReactorContext
from ._fsm import (
    AcceptStaged,
    Degraded,
    Firing,
    FiringFinished,
    Live,
    ReactorAction,
    ReactorEvent,
    ReactorFailure,
    ReactorState,
    Shutdown,
    Starting,
    Stopped,
    StoreRestored,
    reactor_spec,
)
from ._handle import ReactorHandle
from ._persistence import ReactorStore
from ._types import Completed, Criteria, Graph, GraphError, InputStrategy, RetryPolicy, Source

Out = TypeVar("Out")
T_contra = TypeVar("T_contra", contravariant=True)

#: Restart limits for accumulators: generous, because a source that is down for a while
#: should keep the reactor degraded rather than bring it down.
DEFAULT_INTENSITY = RestartIntensity(max_restarts=60, period=60.0)
DEFAULT_BACKOFF = RestartBackoff(initial=0.1, maximum=5.0)
DEFAULT_RETRY = RetryPolicy()


class Reactor(
    SelfSupervised[ReactorState, ReactorEvent, ReactorContext, ReactorAction],
    ExternalEventPolicy[ReactorState, ReactorEvent],
    Generic[Out],
):
    """Fire ``graph`` with a snapshot of the inputs its accumulators deliver.

    * ``criteria`` and ``strategy`` decide when and with what it fires (see
      :class:`Criteria`, :class:`InputStrategy`); the expected sources are those of the
      ``accumulators``.
    * ``store`` makes it durable: the cache and ``LATEST`` dirty flags after each
      completed firing, each ``SEQUENTIAL`` boundary from acceptance to completion, and
      the dead letters, all restored on start. Without one nothing outlives the run.
      ``codec`` encodes the boundaries (the sources' types are registered with it).
    * A failed ``SEQUENTIAL`` firing is retried by ``retry``, then dead-lettered; a graph
      error never stops the reactor. Nor does a store that refuses a write: what the
      write held stays where it was and is written again after ``retry``'s delays
      (capped at ``max_delay``), for as long as the store keeps refusing.
    * ``capacity`` bounds the reactor's channel (accumulators wait when it is full),
      ``max_pending`` the ``SEQUENTIAL`` boundaries sent and not yet fired (producers
      wait beyond it, in every state), ``max_burst`` the boundaries
      taken between two firings.
    * Accumulators that fail are restarted with ``restart_backoff``; more restarts than
      ``restart_intensity`` allows make the reactor fail.

    Start it with :func:`start_reactor` (which gives you a :class:`ReactorHandle`), or run
    it with ``await reactor.run()`` until it is cancelled. A reactor serves one run at a
    time.
    """

    def __init__(
        self,
        name: str,
        graph: Graph[Out],
        *,
        accumulators: Sequence[Accumulator[Any, Any]] = (),
        criteria: Criteria = Criteria.WHEN_ANY,
        strategy: InputStrategy = InputStrategy.LATEST,
        store: Store | None = None,
        codec: Codec | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        capacity: int = 64,
        max_pending: int = 1024,
        max_burst: int = 64,
        restart_intensity: RestartIntensity = DEFAULT_INTENSITY,
        restart_backoff: RestartBackoff = DEFAULT_BACKOFF,
        journal: Journal | None = None,
    ) -> None:
        super().__init__(name, journal=journal)
        sources: dict[str, Source[Any]] = {}
        for accumulator in accumulators:
            if accumulator.name in sources:
                raise ValueError(f"reactor {name!r}: two accumulators feed {accumulator.name!r}")
            sources[accumulator.name] = accumulator.source
        limits = {"capacity": capacity, "max_pending": max_pending, "max_burst": max_burst}
        for what, value in limits.items():
            if value < 1:
                raise ValueError(f"{what} must be >= 1, not {value}")
        self.graph = graph
        self.accumulators = tuple(accumulators)
        self.sources = sources
        self.criteria = criteria
        self.strategy = strategy
        self.retry = retry
        self.capacity = capacity
        self.max_pending = max_pending
        self.max_burst = max_burst
        self.restart_intensity = restart_intensity
        self.restart_backoff = restart_backoff
        boundaries = BoundaryCodec(codec or Codec(), sources)
        self._store = None if store is None else ReactorStore(store, name, boundaries)
        self._ctx: ReactorContext | None = None

    @classmethod
    def fsm_spec(cls) -> FsmSpec[ReactorState, ReactorEvent, ReactorContext, ReactorAction]:
        return reactor_spec()

    def initial_context(self) -> ReactorContext:
        """A fresh context for one run (the one the reactor's policy reads from then on);
        raises :class:`RuntimeError` while another run is going on."""
        if self._ctx is not None and not self._ctx.closed:
            raise RuntimeError(f"reactor {self.name!r} is already running")
        self._ctx = ReactorContext(
            name=self.name,
            sources=self.sources,
            accumulators=self.accumulators,
            criteria=self.criteria,
            strategy=self.strategy,
            store=self._store,
            retry=self.retry,
            max_pending=self.max_pending,
            max_burst=self.max_burst,
            intensity=self.restart_intensity,
            backoff=self.restart_backoff,
        )
        return self._ctx

    def event_for_action_error(self, msg: str) -> ReactorEvent:
        return ReactorFailure(msg)

    # -- the external channel -------------------------------------------------------------

    def external_event_mode(self, state: ReactorState) -> ExternalEventMode:
        kind = type(state)
        if kind is Starting or kind is Stopped:
            return ExternalEventMode.IGNORE
        assert self._ctx is not None
        return self._ctx.mode(fires=kind is Live or kind is Degraded)

    def on_external_event_channel_closed(self, state: ReactorState) -> ReactorEvent | None:
        """Nobody can send anything any more (every sender is closed): stop."""
        return None if isinstance(state, Starting | Stopped) else Shutdown()

    # -- dispatch -----------------------------------------------------------------------

    async def dispatch_state(
        self, state: ReactorState, ctx: ReactorContext
    ) -> EventLoopDirective[ReactorEvent]:
        kind = type(state)
        if kind is Stopped:
            # Staged boundaries a failed last save could not accept are not retried: the
            # run ends, and their receipts are refused.
            return TERMINATE
        if kind is Starting:
            try:
                restored = await ctx.restore()
                ctx.attach_accumulators()
            except Exception as exc:
                ctx.startup_error = exc
                raise
            return Trigger(StoreRestored(restored))
        # The accepting states get here only with work to do (see external_event_mode)
        # and no event ready: staged boundaries first, then (if it fires) a firing.
        if ctx.staged:
            return Trigger(AcceptStaged())
        assert kind is Live or kind is Degraded, f"{state} had nothing to do"
        return Trigger(await self._fire(await ctx.next_firing(), ctx))

    async def _fire(self, firing: Firing, ctx: ReactorContext) -> FiringFinished:
        """Run the graph (unless the firing only fills the cache) and report how it went;
        whatever the graph does, the reactor carries on."""
        ctx.burst = 0
        if not firing.runs_graph:
            return FiringFinished(firing)
        try:
            result = await self.graph(firing.cache)
        except Exception as exc:
            return FiringFinished(firing, error=f"{type(exc).__name__}: {exc}")
        if isinstance(result, Completed):
            return FiringFinished(firing, outputs=result.outputs)
        if isinstance(result, GraphError):
            return FiringFinished(firing, error=result.message)
        return FiringFinished(
            firing, error=f"the graph returned {result!r}, not Completed(...) or GraphError(...)"
        )

    async def run(
        self, initial_state: ReactorState | None = None, context: ReactorContext | None = None
    ) -> RunOutcome[ReactorState]:
        """Run the reactor until it stops (a shutdown) or is cancelled, with its
        accumulators in a task group of its own.

        A reactor always starts in ``Starting`` with a fresh context (its state lives in
        the store, not in arguments), so both arguments must be left out.
        """
        if initial_state is not None or context is not None:
            raise ValueError("a reactor starts from its store: run() takes no state or context")
        return await _serve(self, None)


class TaskStarter(Protocol):
    """A trio nursery or an anyio task group: something with ``start``."""

    async def start(
        self, func: Callable[..., Coroutine[Any, Any, Any]], /, *args: object, name: object = None
    ) -> Any: ...


class _TaskStatus(Protocol[T_contra]):
    def started(self, value: T_contra) -> None: ...


def _started(state: ReactorState) -> bool:
    return not isinstance(state, Starting)


async def _serve(
    reactor: Reactor[Out], task_status: _TaskStatus[ReactorHandle[Out]] | None
) -> RunOutcome[ReactorState]:
    """Run ``reactor`` in a task group of its own; report its handle through
    ``task_status`` once it has restored its state and started its accumulators.

    A start that failed (a store that cannot be read, say) raises its error here, before
    ``task_status`` is told anything, so ``start_reactor`` raises it to its caller.
    """
    ctx = reactor.initial_context()
    done = anyio.Event()
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
            handle = ReactorHandle(reactor, supervisor, ctx, done)
            with contextlib.suppress(WatcherClosed):  # the run ended while starting
                await supervisor.wait_for(_started)
            if ctx.startup_error is None and task_status is not None:
                task_status.started(handle)
            outcome = await supervisor.outcome()
            task_group.cancel_scope.cancel()
    finally:
        ctx.close()
        done.set()
    if ctx.startup_error is not None:
        raise ctx.startup_error
    return outcome


async def _serve_started(
    reactor: Reactor[Out], *, task_status: _TaskStatus[ReactorHandle[Out]]
) -> None:
    await _serve(reactor, task_status)


async def start_reactor(starter: TaskStarter, reactor: Reactor[Out]) -> ReactorHandle[Out]:
    """Start ``reactor`` in ``starter`` (a nursery or task group) and return its handle
    once it has restored its state from the store and started its accumulators.

    Errors restoring the store (a :class:`~fsmflow.store.DecodeError` naming the bad key,
    say) are raised here. Later failures of the reactor propagate into ``starter``; a
    graph error is never one of them.
    """
    handle: ReactorHandle[Out] = await starter.start(_serve_started, reactor)
    return handle
