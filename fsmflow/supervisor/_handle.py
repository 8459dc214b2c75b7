"""Handles: start a supervisor in a nursery and talk to it while it runs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Generic, Protocol, TypeVar, cast

import anyio

from ._base import HandlerSupervised, SelfSupervised, Supervisor
from ._external import (
    ChannelBuilder,
    EventReceiver,
    EventSender,
    ExternalEventPolicy,
    HandlerSupervisedWithExternalEvents,
    SelfSupervisedWithExternalEvents,
)
from ._loop import fail_to_start
from ._records import ExitKind, RunOutcome, SupervisorError, TransitionRecord
from ._watcher import StateWatcher

S = TypeVar("S")
E = TypeVar("E")
C = TypeVar("C")
A = TypeVar("A")


class TaskSpawner(Protocol):
    """A trio nursery or an anyio task group."""

    def start_soon(
        self, func: Callable[..., Coroutine[Any, Any, Any]], /, *args: Any, name: Any = None
    ) -> object: ...


class SupervisorHandle(Generic[S, E]):
    """What you hold while a supervisor runs: send events, watch states, cancel, and
    await the outcome. Create it with :func:`start_supervisor`."""

    def __init__(
        self,
        name: str,
        sender: EventSender[E] | None,
        watcher: StateWatcher[S],
    ) -> None:
        self.name = name
        self._sender = sender
        self.watcher = watcher
        self._scope = anyio.CancelScope()
        self._done = anyio.Event()
        self._outcome: RunOutcome[S] | None = None

    def _require_sender(self) -> EventSender[E]:
        if self._sender is None:
            raise TypeError(
                f"supervisor {self.name!r} takes no external events: make its class "
                "implement ExternalEventPolicy"
            )
        return self._sender

    async def send(self, event: E) -> None:
        """Send an external event, waiting while the channel is full."""
        await self._require_sender().send(event)

    def send_nowait(self, event: E) -> None:
        """Send without waiting (``anyio.WouldBlock`` when full)."""
        self._require_sender().send_nowait(event)

    def sender(self) -> EventSender[E]:
        """A new sender for another producer; close it when done."""
        return self._require_sender().clone()

    def close_events(self) -> None:
        """Close this handle's sender: once every sender is closed, the supervisor's
        policy decides what a closed channel means."""
        if self._sender is not None:
            self._sender.close()

    @property
    def state(self) -> S:
        return self.watcher.current()

    async def wait_for(self, predicate: Callable[[S], bool]) -> S:
        """Wait until the state satisfies ``predicate`` (see :meth:`StateWatcher.wait_for`)."""
        return await self.watcher.wait_for(predicate)

    def changes(self) -> AsyncIterator[S]:
        return self.watcher.changes()

    def cancel(self) -> None:
        """Cancel the run; its completion event is still written. The outcome is
        ``CANCELLED``."""
        self._scope.cancel()

    @property
    def done(self) -> bool:
        return self._outcome is not None

    async def outcome(self) -> RunOutcome[S]:
        """Wait for the run to end and return how it ended."""
        await self._done.wait()
        assert self._outcome is not None
        return self._outcome


async def start_supervisor(
    spawner: TaskSpawner,
    supervisor: Supervisor[S, E, C, A],
    *,
    initial_state: S | None = None,
    context: C | None = None,
    capacity: int = 16,
    raise_on_failure: bool = True,
    listener: Callable[[TransitionRecord], None] | None = None,
    on_started: Callable[[], None] | None = None,
) -> SupervisorHandle[S, E]:
    """Start ``supervisor`` in ``spawner`` (a nursery or task group) and return its handle.

    A supervisor implementing :class:`ExternalEventPolicy` is wrapped with an external
    event channel of ``capacity``; otherwise the handle cannot send events. Either way the
    handle's watcher follows every state the run reaches.

    With ``raise_on_failure`` (the default) a failed run's :class:`SupervisorError`
    propagates into the nursery, so failures are never silent. Without it every failure
    of the run is contained — one that could not even start (``initial_state()``,
    ``initial_context()`` or ``build_state_machine()`` raising) included — and reported
    only through :meth:`SupervisorHandle.outcome`, whose ``error`` is the
    ``SupervisorError``. Cancellation always propagates.

    ``listener`` receives this run's transition records; it is removed when the run ends.
    ``on_started`` is called once the run has started — its machine built, its loop about
    to make its first dispatch — and never for a run that could not start.
    Once the run has ended, ``supervisor.last_outcome`` is the handle's outcome.
    """
    # Resolved now, so that the handle's watcher has a state before the task starts; a
    # failure here is the run's failure, reported by the task like any other.
    state = initial_state
    ctx = context
    start_failure: tuple[str, Exception] | None = None
    try:
        if state is None:
            state = supervisor.initial_state()
        if ctx is None:
            ctx = supervisor.initial_context()
    except Exception as exc:
        start_failure = ("initial_state()" if state is None else "initial_context()", exc)
    runner: Supervisor[S, E, C, A]
    # Closed when the task ends, also when the run never started and so never closed it.
    channel_end: EventReceiver[E] | None = None
    first = cast(S, state)
    if isinstance(supervisor, ExternalEventPolicy):
        sender, receiver, watcher = ChannelBuilder[E, S](capacity).build(
            first, name=supervisor.name
        )
        channel_end = receiver
        if isinstance(supervisor, HandlerSupervised):
            runner = HandlerSupervisedWithExternalEvents(supervisor, receiver, watcher)
        else:
            runner = SelfSupervisedWithExternalEvents(
                cast(SelfSupervised[S, E, C, A], supervisor), receiver, watcher
            )
        handle: SupervisorHandle[S, E] = SupervisorHandle(supervisor.name, sender, watcher)
    else:
        watcher = StateWatcher(first)
        runner = supervisor
        handle = SupervisorHandle(supervisor.name, None, watcher)
    if listener is not None:
        supervisor.add_transition_listener(listener)

    async def body() -> None:
        runner._last_outcome = None
        runner._on_started = on_started
        if runner is supervisor:
            supervisor._loop_watcher = watcher
        try:
            with handle._scope:
                if start_failure is not None:
                    await fail_to_start(runner, state, *start_failure)
                await runner.run(state, ctx)
        except SupervisorError:
            if raise_on_failure:
                raise
        finally:
            if listener is not None:
                supervisor.remove_transition_listener(listener)
            runner._on_started = None
            if runner is supervisor:
                supervisor._loop_watcher = None
            outcome = runner.last_outcome
            if outcome is None:  # only a BaseException other than cancellation gets here
                outcome = RunOutcome(
                    supervisor.name, ExitKind.CANCELLED, first, 0, 0, 0, completion_written=False
                )
            supervisor._last_outcome = outcome
            handle._outcome = outcome
            # The watcher closes before the channel, so a sender that finds the channel
            # closed can say in which state the run ended.
            watcher.publish(outcome.final_state)
            watcher.close()
            handle.close_events()
            if channel_end is not None:
                channel_end.close()
            handle._done.set()

    spawner.start_soon(body, name=f"supervisor:{supervisor.name}")
    return handle
