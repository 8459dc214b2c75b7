"""Accumulators: long-lived inputs that turn raw events into typed boundaries.

You describe an accumulator (:class:`PushAccumulator`, :class:`StreamAccumulator`,
:class:`PollingAccumulator`, :class:`BatchAccumulator`) around a handler whose
``process(event)`` returns a boundary or ``None`` (nothing to report); an optional
``init()`` restores the handler's own state. The reactor runs each one as an
:class:`AccumulatorSupervisor` (a :class:`HandlerSupervised` FSM whose states are its
health) under a supervision tree that restarts a failed run with backoff; every restart
runs a fresh supervisor and calls ``init`` again. What stays between runs lives on the
description: the push channel, the ``health`` watcher, a batch's buffer.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from ..fsm import FsmSpec
from ..supervisor import (
    CONTINUE,
    TERMINATE,
    ChildSpec,
    EventLoopDirective,
    EventReceiver,
    EventSender,
    ExternalChannelClosed,
    ExternalEventMode,
    ExternalEventPolicy,
    HandlerSupervised,
    HandlerSupervisedWithExternalEvents,
    RestartBackoff,
    RestartIntensity,
    RestartType,
    StateWatcher,
    SupervisionTree,
    SupervisorError,
    Trigger,
)
from ._accumulator_fsm import (
    DISCONNECTED,
    LIVE,
    PUSH_ONLY,
    STARTING,
    STOPPED,
    AccumulatorAction,
    AccumulatorEvent,
    AccumulatorFailed,
    AccumulatorHealth,
    Flush,
    Input,
    Ready,
    SourceEnded,
    accumulator_spec,
)
from ._admission import BoundaryInlet, PendingLimit
from ._fsm import BoundaryArrived, HealthChanged, ReactorEvent
from ._types import Source

R = TypeVar("R")
B = TypeVar("B")
R_contra = TypeVar("R_contra", contravariant=True)
B_co = TypeVar("B_co", covariant=True)


class AccumulatorHandler(Protocol[R_contra, B_co]):
    """Turns raw events into boundaries.

    ``process`` (sync or async) returns the boundary to send, or ``None`` when the event
    changes nothing. A handler may also define ``init()`` (sync or async): it runs at
    every (re)start, before the first event, to restore the handler's own state. An
    exception from either disconnects the accumulator, which is then restarted.
    """

    def process(self, event: R_contra) -> B_co | Awaitable[B_co | None] | None: ...


class PassThrough(Generic[B]):
    """A handler that sends every event on unchanged."""

    def process(self, event: B) -> B:
        return event


class SourceDisconnected(SupervisorError):
    """An accumulator's run ended because its source or handler failed."""

    def __init__(self, accumulator: str, reason: str) -> None:
        super().__init__(f"accumulator:{accumulator}", "DISCONNECTED", "AccumulatorFailed", reason)


class Accumulator(Generic[R, B]):
    """What every kind of accumulator shares: a source, a handler, a health watcher.

    ``health`` is replaced each time a reactor starts the accumulator (an accumulator
    feeds one running reactor at a time); it shows ``STOPPED`` once that reactor stops.
    """

    #: ``PUSH_ONLY`` rather than ``LIVE`` once started.
    push_only: ClassVar[bool] = False

    def __init__(
        self, source: Source[Any], handler: AccumulatorHandler[R, B], capacity: int
    ) -> None:
        self.source = source
        self.handler = handler
        self.capacity = capacity
        self.health: StateWatcher[AccumulatorHealth] = StateWatcher(STOPPED)
        self._reactor: EventSender[ReactorEvent] | None = None
        self._inlet: BoundaryInlet | None = None
        self._inputs: EventSender[AccumulatorEvent] | None = None
        self._receive: MemoryObjectReceiveStream[AccumulatorEvent] | None = None

    @property
    def name(self) -> str:
        return self.source.name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.health.current().name}>"

    # -- lifetime, driven by the reactor ------------------------------------------------

    def attach(self, reactor: EventSender[ReactorEvent], limit: PendingLimit) -> None:
        """Start feeding ``reactor`` (taking ownership of that sender) under its pending
        ``limit``: a fresh input channel and health watcher."""
        if self._reactor is not None:
            reactor.close()
            raise RuntimeError(f"accumulator {self.name!r} already feeds a running reactor")
        send, receive = anyio.create_memory_object_stream[AccumulatorEvent](self.capacity)
        self._reactor = reactor
        self._inlet = BoundaryInlet(reactor, limit)
        self._inputs = EventSender(send)
        self._receive = receive
        self.health = StateWatcher(STARTING)

    def detach(self) -> None:
        """The reactor stopped: close the channels; the health watcher shows ``STOPPED``."""
        for closable in (self._reactor, self._inputs, self._receive):
            if closable is not None:
                closable.close()
        self._reactor = self._inputs = self._receive = self._inlet = None
        self.health.publish(STOPPED)
        self.health.close()

    def new_run(
        self,
    ) -> HandlerSupervisedWithExternalEvents[
        AccumulatorHealth, AccumulatorEvent, AccumulatorRun, AccumulatorAction, Any
    ]:
        """A fresh supervisor for one run, reading the accumulator's own input channel
        (so that pushes reach whichever run is current)."""
        assert self._receive is not None, "attach() first"
        supervisor = AccumulatorSupervisor(self)
        watcher = StateWatcher(STARTING)
        return HandlerSupervisedWithExternalEvents(
            supervisor, EventReceiver(self._receive.clone()), watcher
        )

    def _input_channel(self) -> EventSender[AccumulatorEvent]:
        if self._inputs is None:
            raise RuntimeError(f"accumulator {self.name!r} is not running: start its reactor")
        return self._inputs

    # -- what the runs do -----------------------------------------------------------------

    async def connect(self, run: AccumulatorRun) -> None:
        """Run the handler's ``init`` (if it has one), then connect the source."""
        init = getattr(self.handler, "init", None)
        if callable(init):
            result = init()
            if inspect.isawaitable(result):
                await result

    def mode(self, run: AccumulatorRun) -> ExternalEventMode:
        """How a healthy run treats the input channel: wait for pushes, but take those
        already queued without yielding to the scheduler for each (the loop still yields
        every ``yield_every`` events)."""
        assert self._receive is not None
        if self._receive.statistics().current_buffer_used:
            return ExternalEventMode.POLL
        return ExternalEventMode.BLOCK

    async def next_input(self, run: AccumulatorRun) -> EventLoopDirective[AccumulatorEvent]:
        """The next event from the source, for kinds whose :meth:`mode` does not block.

        Push accumulators only take events from their channel, and a closed channel
        stops them, so they never get here.
        """
        raise AssertionError(f"{type(self).__name__} takes its events from its channel")

    async def emit(self, boundary: object) -> None:
        """Send a boundary to the reactor, waiting only while its channel is full or
        (``SEQUENTIAL``) ``max_pending`` boundaries are pending."""
        assert self._inlet is not None
        event = BoundaryArrived(self.name, boundary)
        try:
            self._inlet.send_nowait(event)
        except anyio.WouldBlock:
            await self._inlet.send(event)

    async def flush(self) -> None:
        """Send what a batch buffered (nothing to do for other kinds)."""


class PushAccumulator(Accumulator[R, B]):
    """Fed by :meth:`push`; ``PUSH_ONLY`` once started. Closing it (:meth:`close`) ends
    its input: it goes ``STOPPED`` after the queued events."""

    push_only = True

    def __init__(
        self, source: Source[B], handler: AccumulatorHandler[R, B], *, capacity: int = 64
    ) -> None:
        super().__init__(source, handler, capacity)

    async def push(self, event: R) -> None:
        """Queue ``event`` for the handler, waiting while the input channel is full.

        Raises :class:`RuntimeError` before the reactor started it and
        :class:`ExternalChannelClosed` once it was closed or its reactor stopped.
        """
        await self._input_channel().send(Input(event))

    def push_nowait(self, event: R) -> None:
        """Queue ``event`` without waiting; raises ``anyio.WouldBlock`` when the input
        channel is full (and the errors of :meth:`push`)."""
        self._input_channel().send_nowait(Input(event))

    def close(self) -> None:
        """No more pushes: the accumulator stops once it processed what was queued."""
        if self._inputs is not None:
            self._inputs.close()


class StreamAccumulator(Accumulator[R, B]):
    """Reads an async iterator; ``stream`` is called at every (re)start to (re)connect.

    The end of the iteration stops the accumulator; an exception disconnects it.
    """

    def __init__(
        self,
        source: Source[B],
        handler: AccumulatorHandler[R, B],
        stream: Callable[[], AsyncIterable[R]],
        *,
        capacity: int = 64,
    ) -> None:
        super().__init__(source, handler, capacity)
        self.stream = stream

    async def connect(self, run: AccumulatorRun) -> None:
        await super().connect(run)
        run.iterator = aiter(self.stream())

    def mode(self, run: AccumulatorRun) -> ExternalEventMode:
        return ExternalEventMode.IGNORE

    async def next_input(self, run: AccumulatorRun) -> EventLoopDirective[AccumulatorEvent]:
        assert run.iterator is not None
        try:
            return Trigger(Input(await anext(run.iterator)))
        except StopAsyncIteration:
            return Trigger(SourceEnded())


class PollingAccumulator(Accumulator[R, B]):
    """Calls ``poll()`` at once and then every ``interval`` seconds (on the loop's
    clock); a poll returning ``None`` means "no change". A poll that raises disconnects
    the accumulator."""

    def __init__(
        self,
        source: Source[B],
        handler: AccumulatorHandler[R, B],
        poll: Callable[[], Awaitable[R | None]],
        *,
        interval: float,
        capacity: int = 64,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be > 0, not {interval!r}")
        super().__init__(source, handler, capacity)
        self.poll = poll
        self.interval = interval

    def mode(self, run: AccumulatorRun) -> ExternalEventMode:
        return ExternalEventMode.IGNORE

    async def next_input(self, run: AccumulatorRun) -> EventLoopDirective[AccumulatorEvent]:
        now = anyio.current_time()
        if run.next_poll is not None and now < run.next_poll:
            await anyio.sleep(run.next_poll - now)
        run.next_poll = anyio.current_time() + self.interval
        value = await self.poll()
        return CONTINUE if value is None else Trigger(Input(value))


class BatchAccumulator(PushAccumulator[R, B]):
    """Fed by :meth:`push` like a :class:`PushAccumulator`, but sends its boundaries in
    batches.

    The first boundary goes out at once as a batch of one; the ones that arrive while
    the reactor has not yet fired with it are buffered, and sent together as the next
    batch once a completed firing has used the previous one. So the reactor sees one
    batch per firing and nothing is overwritten before it was fired. At most
    ``max_size`` boundaries are buffered; then the accumulator stops reading its input
    and pushes wait.
    """

    def __init__(
        self,
        source: Source[tuple[B, ...]],
        handler: AccumulatorHandler[R, B],
        *,
        max_size: int = 1024,
        capacity: int = 64,
    ) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be >= 1, not {max_size}")
        Accumulator.__init__(self, source, handler, capacity)
        self.max_size = max_size
        self._buffer: list[object] = []
        self._credit = True
        self._released: anyio.Event | None = None

    @property
    def buffered(self) -> int:
        """Boundaries waiting for the next batch."""
        return len(self._buffer)

    def attach(self, reactor: EventSender[ReactorEvent], limit: PendingLimit) -> None:
        super().attach(reactor, limit)
        self._credit = True

    def release(self) -> None:
        """A completed firing used the last batch: the next one may go (called by the
        reactor; never waits)."""
        self._credit = True
        if self._released is not None:
            self._released.set()
            self._released = None
        if self._inputs is not None and self._buffer:
            # A full channel wakes the run anyway, and mode() then sees the credit.
            with contextlib.suppress(anyio.WouldBlock, ExternalChannelClosed):
                self._inputs.send_nowait(Flush())

    def mode(self, run: AccumulatorRun) -> ExternalEventMode:
        if self._buffer and (self._credit or len(self._buffer) >= self.max_size):
            return ExternalEventMode.IGNORE
        return super().mode(run)

    async def next_input(self, run: AccumulatorRun) -> EventLoopDirective[AccumulatorEvent]:
        if not self._credit:
            self._released = anyio.Event()
            await self._released.wait()
        return Trigger(Flush())

    async def emit(self, boundary: object) -> None:
        self._buffer.append(boundary)
        await self.flush()

    async def flush(self) -> None:
        if self._credit and self._buffer:
            batch = tuple(self._buffer)
            self._buffer.clear()
            self._credit = False
            await super().emit(batch)


class AccumulatorRun:
    """The context of one accumulator run: what the run opened and how it failed."""

    def __init__(self, accumulator: Accumulator[Any, Any]) -> None:
        self.accumulator = accumulator
        self.iterator: AsyncIterator[Any] | None = None
        self.next_poll: float | None = None
        self.failure: str | None = None

    async def process(self, event: object) -> None:
        result = self.accumulator.handler.process(event)
        if inspect.isawaitable(result):
            result = await result
        if result is not None:
            await self.accumulator.emit(result)

    async def close(self) -> None:
        """Close the stream this run opened, if it can be closed."""
        aclose = getattr(self.iterator, "aclose", None)
        self.iterator = None
        if aclose is not None:
            await aclose()


class AccumulatorSupervisor(
    HandlerSupervised[AccumulatorHealth, AccumulatorEvent, AccumulatorRun, AccumulatorAction, Any],
    ExternalEventPolicy[AccumulatorHealth, AccumulatorEvent],
):
    """One run of an accumulator: a :class:`HandlerSupervised` whose states are its health.

    It publishes every state to the accumulator's ``health`` watcher, and entering
    ``DISCONNECTED`` ends the run as failed (with :class:`SourceDisconnected`), which is
    what makes the supervision tree restart it.
    """

    def __init__(self, accumulator: Accumulator[Any, Any]) -> None:
        super().__init__(f"accumulator:{accumulator.name}", accumulator.handler, accumulator.name)
        self.accumulator = accumulator
        self._run: AccumulatorRun | None = None

    @classmethod
    def fsm_spec(
        cls,
    ) -> FsmSpec[AccumulatorHealth, AccumulatorEvent, AccumulatorRun, AccumulatorAction]:
        return accumulator_spec()

    def initial_context(self) -> AccumulatorRun:
        self._run = AccumulatorRun(self.accumulator)
        return self._run

    def event_for_action_error(self, msg: str) -> AccumulatorEvent:
        return AccumulatorFailed(msg)

    def external_event_mode(self, state: AccumulatorHealth) -> ExternalEventMode:
        if state is LIVE or state is PUSH_ONLY:
            assert self._run is not None
            return self.accumulator.mode(self._run)
        return ExternalEventMode.IGNORE

    def on_external_event_channel_closed(self, state: AccumulatorHealth) -> AccumulatorEvent:
        return SourceEnded()

    async def dispatch_state(
        self, state: AccumulatorHealth, ctx: AccumulatorRun
    ) -> EventLoopDirective[AccumulatorEvent]:
        if state is STARTING:
            self.accumulator.health.publish(STARTING)
            await self.accumulator.connect(ctx)
            return Trigger(Ready())
        if state is LIVE or state is PUSH_ONLY:
            return await self.accumulator.next_input(ctx)
        return TERMINATE

    async def after_transition(self, state: AccumulatorHealth, ctx: AccumulatorRun) -> None:
        self.accumulator.health.publish(state)
        if state is DISCONNECTED:
            raise SourceDisconnected(self.accumulator.name, ctx.failure or "disconnected")

    async def write_completion_event(self) -> None:
        if self._run is not None:
            await self._run.close()
        await super().write_completion_event()


def accumulator_tree(
    reactor: str,
    accumulators: Sequence[Accumulator[Any, Any]],
    intensity: RestartIntensity,
    backoff: RestartBackoff,
) -> SupervisionTree:
    """The tree that runs a reactor's accumulators, restarting each failed one alone."""
    children = [
        ChildSpec(acc.name, acc.new_run, restart=RestartType.TRANSIENT) for acc in accumulators
    ]
    return SupervisionTree(
        f"{reactor}:accumulators", children, intensity=intensity, backoff=backoff
    )


async def forward_health(
    accumulator: Accumulator[Any, Any], reactor: EventSender[ReactorEvent]
) -> None:
    """Tell the reactor about every health change of ``accumulator`` (latest value
    first), until either side is done; closes ``reactor`` when it returns."""
    try:
        async for health in accumulator.health.changes():
            await reactor.send(HealthChanged(accumulator.name, health))
    except ExternalChannelClosed:
        pass
    finally:
        reactor.close()
