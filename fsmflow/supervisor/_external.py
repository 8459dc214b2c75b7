"""External events: a channel into a running supervisor, consulted per state.

``ExternalEventPolicy.external_event_mode(state)`` says whether the loop waits for the
next external event (``BLOCK``), takes one only if it is ready (``POLL``) or leaves the
channel alone (``IGNORE``). The ``*WithExternalEvents`` wrappers apply the policy around
an inner supervisor, which never sees the channel.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import anyio
import anyio.lowlevel
import trio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ..fsm import FsmSpec, StateMachine
from ._base import HandlerSupervised, SelfSupervised, Supervisor
from ._directives import EventLoopDirective, Trigger, trigger
from ._messages import shown
from ._watcher import StateWatcher

S = TypeVar("S")
E = TypeVar("E")
C = TypeVar("C")
A = TypeVar("A")
H = TypeVar("H")


class ExternalEventMode(enum.Enum):
    """How the loop treats the external-event channel in a state."""

    #: Wait for the next external event; ``dispatch_state`` is not called.
    BLOCK = "block"
    #: Take an event if one is ready (without calling ``dispatch_state``); otherwise
    #: dispatch as usual.
    POLL = "poll"
    #: Dispatch as usual and leave queued events where they are.
    IGNORE = "ignore"


class ExternalEventPolicy(ABC, Generic[S, E]):
    """Mix into a supervisor to say how each state treats external events."""

    @abstractmethod
    def external_event_mode(self, state: S) -> ExternalEventMode:
        """``BLOCK``, ``POLL`` or ``IGNORE`` for ``state``."""

    @abstractmethod
    def on_external_event_channel_closed(self, state: S) -> E | None:
        """The event to feed when every sender has closed, or ``None`` to carry on
        without external events. Delivered at most once per state entered."""


class ExternalChannelClosed(Exception):
    """Nothing more can be sent on this sender: the supervisor's run has ended, or this
    sender was closed.

    ``ended`` tells which; when the run has ended, ``final_state`` is the state it ended
    in and the message names it (and the supervisor, when the channel knows its name).
    """

    def __init__(self, message: str, *, ended: bool, final_state: object = None) -> None:
        super().__init__(message)
        self.ended = ended
        self.final_state = final_state


#: ``EventSender.send`` yields to the scheduler at least once every this many sends (and
#: whenever it waits for room); the supervisor loop's own default budget.
SEND_YIELD_EVERY = 64


class EventSender(Generic[E]):
    """The sending side of an external-event channel.

    The channel closes for the receiver when every sender (the original and its
    :meth:`clone` s) is closed. ``send`` waits while the channel is full: that is the
    backpressure a bounded capacity promises.
    """

    __slots__ = ("_stream", "_watcher", "_name", "_budget", "_cancel_point")

    def __init__(
        self,
        stream: MemoryObjectSendStream[E],
        watcher: StateWatcher[Any] | None = None,
        name: str | None = None,
    ) -> None:
        self._stream = stream
        #: The receiving supervisor's watcher and name, for saying how its run ended.
        self._watcher = watcher
        self._name = name
        #: Sends left before the next one yields to the scheduler.
        self._budget = SEND_YIELD_EVERY
        #: The running backend's cancellation point, looked up at the first send.
        self._cancel_point: Callable[[], Awaitable[None]] | None = None

    async def send(self, event: E) -> None:
        """Send ``event``, waiting for room. Raises :class:`ExternalChannelClosed`.

        Every send is a cancellation point: a cancelled sender never sends. Like the
        supervisor loop it yields to the scheduler on a budget rather than on every
        call — whenever it has to wait for room, and otherwise once every
        :data:`SEND_YIELD_EVERY` sends — so a burst of events reaches the supervisor in
        one scheduling round, not one round each.
        """
        stream = self._stream
        try:
            self._budget -= 1
            if self._budget > 0:
                cancel_point = self._cancel_point
                if cancel_point is None:
                    cancel_point = self._cancel_point = _cancel_point()
                await cancel_point()
                try:
                    stream.send_nowait(event)
                    return
                except anyio.WouldBlock:
                    pass
            self._budget = SEND_YIELD_EVERY
            await stream.send(event)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError) as exc:
            raise self._closed(exc) from exc

    def send_nowait(self, event: E) -> None:
        """Send without waiting; raises ``anyio.WouldBlock`` when the channel is full and
        :class:`ExternalChannelClosed` when it is closed."""
        try:
            self._stream.send_nowait(event)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError) as exc:
            raise self._closed(exc) from exc

    def _closed(self, exc: Exception) -> ExternalChannelClosed:
        who = "the supervisor" if self._name is None else f"supervisor {self._name!r}"
        watcher = self._watcher
        if watcher is not None and watcher.closed:
            final_state = watcher.current()
            return ExternalChannelClosed(
                f"{who} has ended its run in state {shown(final_state)}; it takes no "
                "more external events (start a new run to send again)",
                ended=True,
                final_state=final_state,
            )
        if isinstance(exc, anyio.ClosedResourceError):
            return ExternalChannelClosed(
                "this sender was closed; send through another (handle.sender() makes one "
                "while the run lasts)",
                ended=False,
            )
        return ExternalChannelClosed(
            f"{who} takes no more external events: the receiving side of its channel was closed",
            ended=True,
        )

    def clone(self) -> EventSender[E]:
        """Another sender on the same channel (close each one you make)."""
        return EventSender(self._stream.clone(), self._watcher, self._name)

    def close(self) -> None:
        self._stream.close()


def _cancel_point() -> Callable[[], Awaitable[None]]:
    """A checkpoint that raises if cancelled but does not yield: trio's own in a trio
    task (anyio's looks the backend up on every call), anyio's elsewhere."""
    if trio.lowlevel.in_trio_task():
        return trio.lowlevel.checkpoint_if_cancelled
    return anyio.lowlevel.checkpoint_if_cancelled


class EventReceiver(Generic[E]):
    """The receiving side; hand it to a ``*WithExternalEvents`` wrapper."""

    __slots__ = ("_stream",)

    def __init__(self, stream: MemoryObjectReceiveStream[E]) -> None:
        self._stream = stream

    def close(self) -> None:
        self._stream.close()


class ChannelBuilder(Generic[E, S]):
    """Builds the channel and watcher for one supervisor::

    sender, receiver, watcher = ChannelBuilder[Event, State](capacity=32).build(initial)
    """

    def __init__(self, capacity: int = 16) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, not {capacity}")
        self.capacity = capacity

    def build(
        self, initial_state: S, *, name: str | None = None
    ) -> tuple[EventSender[E], EventReceiver[E], StateWatcher[S]]:
        """The sender, the receiver for the wrapper, and the watcher, which starts at
        ``initial_state``. ``name`` (the supervisor's) makes the sender's
        :class:`ExternalChannelClosed` name who has ended."""
        send, receive = anyio.create_memory_object_stream[E](self.capacity)
        watcher = StateWatcher(initial_state)
        return EventSender(send, watcher, name), EventReceiver(receive), watcher


class _WithExternalEvents(Supervisor[S, E, C, A]):
    """The shared implementation of both wrappers: one mechanism, two identities."""

    inner: Supervisor[S, E, C, A]

    def __init__(
        self,
        inner: Supervisor[S, E, C, A],
        receiver: EventReceiver[E],
        watcher: StateWatcher[S],
    ) -> None:
        if not isinstance(inner, ExternalEventPolicy):
            raise TypeError(
                f"{type(inner).__name__} must implement ExternalEventPolicy "
                "(external_event_mode and on_external_event_channel_closed) to be wrapped "
                "with external events"
            )
        Supervisor.__init__(self, inner.name, journal=inner.journal)
        self.inner = inner
        self._policy: ExternalEventPolicy[S, E] = inner
        self._stream = receiver._stream
        self.watcher = watcher
        self._closed = False
        # The state the loop last dispatched in, and whether the closed-channel event was
        # delivered since the loop entered it.
        self._dispatched_in: object = _NOTHING
        self._closed_delivered = False
        self.max_consecutive_failures = inner.max_consecutive_failures
        self.yield_every = inner.yield_every
        self.completion_timeout = inner.completion_timeout
        self._listeners = inner._listeners
        # The loop publishes every state it reaches to the watcher.
        self._loop_watcher = watcher

    @classmethod
    def fsm_spec(cls) -> FsmSpec[S, E, C, A]:
        raise TypeError(
            f"{cls.__name__} wraps another supervisor; read the spec from the wrapped "
            "supervisor's class"
        )

    def build_state_machine(self, initial_state: S) -> StateMachine[S, E, C, A]:
        return self.inner.build_state_machine(initial_state)

    def initial_state(self) -> S:
        return self.inner.initial_state()

    def initial_context(self) -> C:
        return self.inner.initial_context()

    @property
    def writer_id(self) -> str:
        return self.inner.writer_id

    def event_for_action_error(self, msg: str) -> E:
        return self.inner.event_for_action_error(msg)

    async def dispatch_state(self, state: S, ctx: C) -> EventLoopDirective[E]:
        if state is not self._dispatched_in and state != self._dispatched_in:
            self._dispatched_in = state
            self._closed_delivered = False
        mode = self._policy.external_event_mode(state)
        if mode is ExternalEventMode.POLL:
            if not self._closed:
                try:
                    return trigger(self._stream.receive_nowait())
                except anyio.WouldBlock:
                    pass
                except (anyio.EndOfStream, anyio.ClosedResourceError):
                    self._closed = True
            closed_event = self._closed_event(state)
            if closed_event is not None:
                return Trigger(closed_event)
        elif mode is ExternalEventMode.BLOCK:
            if not self._closed:
                try:
                    return trigger(await self._stream.receive())
                except (anyio.EndOfStream, anyio.ClosedResourceError):
                    self._closed = True
            closed_event = self._closed_event(state)
            if closed_event is not None:
                return Trigger(closed_event)
        return await self.inner.dispatch_state(state, ctx)

    def _closed_event(self, state: S) -> E | None:
        """The mapped closed-channel event, at most once per state entered (a state is
        entered when the loop dispatches in a state that differs from the previous one by
        value), so a state that keeps the channel closed never spins on it."""
        if not self._closed or self._closed_delivered:
            return None
        event = self._policy.on_external_event_channel_closed(state)
        if event is not None:
            self._closed_delivered = True
        return event

    def _after_transition_hook(self) -> Callable[[S, C], Awaitable[None]] | None:
        # The loop calls the inner supervisor's after_transition directly.
        return self.inner._after_transition_hook()

    async def write_completion_event(self) -> None:
        self.inner._exit = self._exit
        try:
            await self.inner.write_completion_event()
        finally:
            if self._exit is not None:
                self.watcher.publish(self._exit[1])  # type: ignore[arg-type]
            self.watcher.close()
            self._stream.close()


_NOTHING: Any = object()


class SelfSupervisedWithExternalEvents(_WithExternalEvents[S, E, C, A], SelfSupervised[S, E, C, A]):
    """A :class:`SelfSupervised` with an external-event channel and a state watcher."""

    def __init__(
        self,
        inner: SelfSupervised[S, E, C, A],
        receiver: EventReceiver[E],
        watcher: StateWatcher[S],
    ) -> None:
        super().__init__(inner, receiver, watcher)


class HandlerSupervisedWithExternalEvents(
    _WithExternalEvents[S, E, C, A], HandlerSupervised[S, E, C, A, H]
):
    """A :class:`HandlerSupervised` with an external-event channel and a state watcher;
    ``handler`` and ``stage_id`` are the inner supervisor's."""

    def __init__(
        self,
        inner: HandlerSupervised[S, E, C, A, H],
        receiver: EventReceiver[E],
        watcher: StateWatcher[S],
    ) -> None:
        _WithExternalEvents.__init__(self, inner, receiver, watcher)
        self.handler = inner.handler
        self.stage_id = inner.stage_id
