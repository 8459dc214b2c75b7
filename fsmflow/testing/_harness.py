"""``supervisor_harness``: run a supervisor under test and record everything it does."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Generic, TypeVar, cast, overload

import anyio
from anyio.abc import TaskGroup

from ..supervisor import (
    CompletionEvent,
    EventSender,
    ExitKind,
    Journal,
    RunOutcome,
    Supervisor,
    SupervisorHandle,
    TransitionRecord,
    WatcherClosed,
    start_supervisor,
)
from ._source import EventScript

S = TypeVar("S")
E = TypeVar("E")
C = TypeVar("C")
A = TypeVar("A")
V = TypeVar("V")


class _CapturingJournal:
    """Appends to the supervisor's own journal, if it has one, then keeps a copy."""

    def __init__(self, inner: Journal | None, into: list[CompletionEvent]) -> None:
        self._inner = inner
        self._into = into

    async def append(self, event: CompletionEvent) -> None:
        if self._inner is not None:
            await self._inner.append(event)
        self._into.append(event)


def _moved(record: TransitionRecord) -> bool:
    """True when the record's target differs from its source by value (as the loop
    judges progress): ``stay()`` and re-entering an equal state do not move."""
    return record.to_state is not record.from_state and record.to_state != record.from_state


class SupervisorHarness(Generic[S, E]):
    """A supervisor running under :func:`supervisor_harness`.

    Everything recorded is complete and in order, because it is captured inside the
    supervisor's loop rather than sampled from outside:

    * ``records``: every :class:`TransitionRecord` of the run (failure events included);
    * ``completions``: every :class:`CompletionEvent` the supervisor appended to its
      journal (the default ``write_completion_event`` does; an override that bypasses the
      journal shows nothing here);
    * :attr:`states`: the states visited, derived from ``records``.
    """

    def __init__(
        self,
        handle: SupervisorHandle[S, E],
        initial_state: S,
        completions: list[CompletionEvent],
        task_group: TaskGroup,
    ) -> None:
        #: The underlying handle, for anything the harness does not wrap.
        self.handle = handle
        #: The state the run started in.
        self.initial_state = initial_state
        self.records: list[TransitionRecord] = []
        self.completions = completions
        self._task_group = task_group
        self._changed: anyio.Event | None = None
        self._outcome_seen = False

    # -- what happened ---------------------------------------------------------------------

    @property
    def state(self) -> S:
        """The FSM's current state: the target of the latest record, or the initial one."""
        if self.records:
            return cast(S, self.records[-1].to_state)
        return self.initial_state

    @property
    def states(self) -> list[S]:
        """The initial state, then every state the FSM moved to, in order. A transition
        that keeps the state's value (``stay()``, or ``goto`` an equal state) adds
        nothing; moving away and back adds the state again."""
        visited = [self.initial_state]
        visited.extend(cast(S, r.to_state) for r in self.records if _moved(r))
        return visited

    @property
    def done(self) -> bool:
        """True once the run has ended (its completion event has been written)."""
        return self.handle.done

    # -- talking to it ---------------------------------------------------------------------

    async def send(self, event: E) -> None:
        """Send an external event, waiting while the channel is full (see
        :meth:`SupervisorHandle.send`)."""
        await self.handle.send(event)

    def send_nowait(self, event: E) -> None:
        """Send without waiting; ``anyio.WouldBlock`` when the channel is full."""
        self.handle.send_nowait(event)

    def sender(self) -> EventSender[E]:
        """Another sender on the channel; close it when done."""
        return self.handle.sender()

    def close_events(self) -> None:
        """Close the harness's sender: once every other sender is closed too, the
        supervisor's policy decides what the closed channel means."""
        self.handle.close_events()

    def play(self, script: EventScript[E]) -> None:
        """Play ``script`` in the background on its own sender, closed when it ends.

        The channel stays open through the harness's own sender; call
        :meth:`close_events` as well to have it close once the script has finished.
        """
        self._task_group.start_soon(script.play, self.handle.sender())

    def cancel(self) -> None:
        """Cancel the run: it ends ``CANCELLED`` and still writes its completion event."""
        self.handle.cancel()

    # -- waiting ---------------------------------------------------------------------------

    async def wait_for(self, predicate: Callable[[S], bool]) -> S:
        """Wait until the FSM is in, or passes through, a state satisfying ``predicate``.

        The current state counts, then every state entered after the call, however
        briefly: unlike :meth:`StateWatcher.wait_for`, a state the loop leaves at once is
        not missed. Returns that state. Raises :class:`WatcherClosed` (with the run's
        error as ``__cause__`` for a failed run) if the run ends first. Wrap it in
        ``anyio.fail_after`` to bound the wait.
        """
        current = self.state
        if predicate(current):
            return current
        seen = len(self.records)
        while True:
            for record in self.records[seen:]:
                reached = cast(S, record.to_state)
                if predicate(reached):
                    return reached
            seen = len(self.records)
            if self.handle.done:
                outcome = await self.handle.outcome()
                raise WatcherClosed(outcome.final_state) from outcome.error
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()

    @overload
    async def wait_for_state(self, variant: type[V]) -> V: ...
    @overload
    async def wait_for_state(self, variant: S) -> S: ...
    async def wait_for_state(self, variant: object) -> object:
        """:meth:`wait_for` a state of ``variant``: an instance of a state class, or a state
        equal to ``variant`` (an enum member, say)."""
        if isinstance(variant, type):
            cls = variant
            return await self.wait_for(lambda s: isinstance(s, cls))
        return await self.wait_for(lambda s: s == variant)

    async def outcome(self) -> RunOutcome[S]:
        """Wait for the run to end and return its outcome.

        Calling it also marks a failed run as looked at: a ``FAILED`` run whose outcome
        was never asked for makes the harness raise its :class:`SupervisorError` on exit.
        """
        outcome = await self.handle.outcome()
        self._outcome_seen = True
        return outcome

    # -- internals -------------------------------------------------------------------------

    def _on_record(self, record: TransitionRecord) -> None:
        self.records.append(record)
        self._wake()

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def _wake_at_end(self) -> None:
        await self.handle.outcome()
        self._wake()

    def _unseen_failure(self) -> Exception | None:
        """The error of a run that ended ``FAILED`` without anyone asking for its outcome
        (every failed run carries its error, a run that could not start included)."""
        outcome = self.handle._outcome
        if outcome is None or outcome.exit is not ExitKind.FAILED or self._outcome_seen:
            return None
        assert isinstance(outcome.error, Exception)
        return outcome.error


def _sole_error(group: BaseExceptionGroup[BaseException]) -> Exception | None:
    """The group's only exception when it is an ordinary error, else ``None``."""
    if len(group.exceptions) == 1 and isinstance(group.exceptions[0], Exception):
        return group.exceptions[0]
    return None


@asynccontextmanager
async def supervisor_harness(
    supervisor: Supervisor[S, E, C, A],
    *,
    initial_state: S | None = None,
    context: C | None = None,
    capacity: int = 16,
) -> AsyncIterator[SupervisorHarness[S, E]]:
    """Run ``supervisor`` in a task group for the duration of the ``async with`` block::

        async with supervisor_harness(sup, context=ctx) as h:
            await h.send(Start())
            await h.wait_for_state(Done)
            assert (await h.outcome()).exit is ExitKind.TERMINATED
        assert len(h.completions) == 1

    It is started with :func:`start_supervisor` (so a supervisor implementing
    ``ExternalEventPolicy`` gets an external-event channel of ``capacity``) from
    ``initial_state`` and ``context``, defaulting to the supervisor's own.

    On exit, a run still going is cancelled (it ends ``CANCELLED`` and writes its
    completion event), background scripts are stopped, and the block returns only once
    every task the harness started has finished: nothing outlives it. An error raised in
    the block comes out as itself, not wrapped in an exception group. A run that
    ``FAILED`` (one that could not start included) while nobody awaited
    :meth:`SupervisorHarness.outcome` raises its :class:`SupervisorError` on exit — in an
    exception group with the block's own error if the block raised too — so a failure is
    never silently ignored.

    For the duration, the supervisor's ``journal`` is replaced by one that forwards to
    the original and records into ``completions``; it is restored on exit.
    """
    state = supervisor.initial_state() if initial_state is None else initial_state
    ctx = supervisor.initial_context() if context is None else context
    original_journal = supervisor.journal
    completions: list[CompletionEvent] = []
    supervisor.journal = _CapturingJournal(original_journal, completions)
    harness: SupervisorHarness[S, E] | None = None
    sole: Exception | None = None
    try:
        async with anyio.create_task_group() as task_group:
            handle: SupervisorHandle[S, E] = await start_supervisor(
                task_group,
                supervisor,
                initial_state=state,
                context=ctx,
                capacity=capacity,
                raise_on_failure=False,
                # The run starts only once this function yields, after ``harness`` is set.
                listener=lambda record: cast(SupervisorHarness[S, E], harness)._on_record(record),
            )
            harness = SupervisorHarness(handle, state, completions, task_group)
            task_group.start_soon(harness._wake_at_end)
            try:
                yield harness
            finally:
                task_group.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        sole = _sole_error(group)
        if sole is None:
            raise
    finally:
        supervisor.journal = original_journal
    failure = None if harness is None else harness._unseen_failure()
    if sole is not None and failure is not None:
        raise ExceptionGroup("the block raised and the run failed", [sole, failure])
    if sole is not None:
        raise sole
    if failure is not None:
        raise failure
