"""Values a supervisor run produces: transition records, completion events, outcomes."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Generic, Protocol, TypeVar

import attrs

S = TypeVar("S")
S_co = TypeVar("S_co", covariant=True)


class ExitKind(enum.Enum):
    """How a supervisor's run ended."""

    #: ``dispatch_state`` returned ``Terminate``.
    TERMINATED = "terminated"
    #: The run ended with a :class:`SupervisorError`.
    FAILED = "failed"
    #: The run was cancelled from outside.
    CANCELLED = "cancelled"


@attrs.frozen(slots=True)
class TransitionRecord:
    """One handled event, as listeners and the ``fsmflow.supervisor`` logger see it."""

    supervisor: str
    from_state: object
    event: object
    to_state: object
    actions: tuple[object, ...]
    #: The loop's clock (``anyio.current_time()``) when the event was handled.
    at: float
    #: True when the event came from ``event_for_action_error`` (a dispatch or action error).
    failure: bool


@attrs.frozen(slots=True)
class CompletionEvent:
    """Written to a supervisor's journal exactly once when its run ends."""

    writer_id: str
    supervisor: str
    exit: ExitKind
    final_state: object
    #: The error message for ``FAILED`` runs.
    error: str | None = None


@attrs.frozen(slots=True)
class RunOutcome(Generic[S_co]):
    """What a finished run reports."""

    supervisor: str
    exit: ExitKind
    #: The state the run ended in. For a run that could not start, the state it was to
    #: start in — or ``None`` when even that is unknown (``initial_state()`` raised).
    final_state: S_co
    #: Events the FSM handled (failure events included).
    transitions: int
    #: Times ``dispatch_state`` was called.
    dispatches: int
    #: Failure events (dispatch and action errors) the FSM handled.
    failures: int
    #: For ``FAILED`` runs, the error that ended them.
    error: BaseException | None = attrs.field(default=None, eq=False)
    #: True when ``write_completion_event`` finished without error.
    completion_written: bool = True


class Journal(Protocol):
    """Where a supervisor's default ``write_completion_event`` appends its completion."""

    async def append(self, event: CompletionEvent) -> None: ...


@attrs.define
class MemoryJournal:
    """An in-memory journal; handy in tests and examples."""

    events: list[CompletionEvent] = attrs.Factory(list)

    async def append(self, event: CompletionEvent) -> None:
        self.events.append(event)


class SupervisorError(Exception):
    """A supervisor's run failed: it could not start, an FSM error, a chain of failure
    events that made no progress, or an error in the loop's own calls.

    ``supervisor``, ``state`` and ``event`` name where it happened; ``chain`` holds the
    failure messages of the chain (empty for FSM errors); the original error, if any, is
    ``__cause__`` and the end of its cause chain is :attr:`root_cause`. The first line
    of the message (:attr:`summary`) names that root cause. ``outcome`` is the run's
    :class:`RunOutcome`, set before the completion event is written and updated once it
    has been.
    """

    def __init__(
        self,
        supervisor: str,
        state: str,
        event: str,
        message: str,
        chain: Sequence[str] = (),
    ) -> None:
        self.supervisor = supervisor
        self.state = state
        self.event = event
        self.chain = tuple(chain)
        self.outcome: RunOutcome[object] | None = None
        text = f"supervisor {supervisor!r} failed in state {state} on {event}: {message}"
        #: The first line of the message: where the run failed and its root cause.
        self.summary = text
        if self.chain:
            text += "\nfailure chain:\n" + "\n".join(
                f"  {i + 1}. {m}" for i, m in enumerate(self.chain)
            )
        super().__init__(text)

    @property
    def root_cause(self) -> BaseException | None:
        """The last exception of the ``__cause__`` chain: for a handler that raised, the
        handler's own exception rather than the ``HandlerError`` wrapping it."""
        cause = self.__cause__
        seen = {id(self)}
        while cause is not None and cause.__cause__ is not None and id(cause) not in seen:
            seen.add(id(cause))
            cause = cause.__cause__
        return cause
