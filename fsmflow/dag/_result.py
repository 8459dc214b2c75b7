"""What a DAG run reports: per-processor outcomes, events, the result."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Generic, TypeAlias, TypeVar

import attrs

P = TypeVar("P")


class NodeState(enum.Enum):
    """The life of one processor in one run."""

    WAITING = "waiting"
    READY = "ready"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


TERMINAL_NODE_STATES = frozenset(
    {NodeState.DONE, NodeState.FAILED, NodeState.SKIPPED, NodeState.CANCELLED}
)


class FailureStrategy(enum.Enum):
    """What a failed processor means for the rest of the run."""

    #: Cancel every running processor at once and start no more.
    FAIL_FAST = "fail_fast"
    #: Skip the failed processor's dependents; independent branches go on.
    CONTINUE_ON_ERROR = "continue_on_error"
    #: Run dependents anyway; the failure is visible in their ``dependencies``.
    BEST_EFFORT = "best_effort"


class ProcessorFailed(Exception):
    """A processor's last attempt failed; the cause is ``__cause__``."""

    def __init__(self, processor_id: str, attempts: int, cause: BaseException) -> None:
        self.processor_id = processor_id
        self.attempts = attempts
        super().__init__(
            f"processor {processor_id!r} failed after {attempts} attempt(s): "
            f"{type(cause).__name__}: {cause}"
        )


@attrs.frozen(slots=True)
class ProcessorOutcome:
    """How one processor ended."""

    id: str
    state: NodeState
    #: What it returned (for transforms, also the new payload unless ``None``).
    result: Any = None
    error: ProcessorFailed | None = attrs.field(default=None, eq=False)
    #: Seconds on the loop's clock from its first attempt to its end.
    duration: float = 0.0
    attempts: int = 0

    @property
    def ok(self) -> bool:
        return self.state is NodeState.DONE


@attrs.frozen(slots=True)
class DagResult(Generic[P]):
    """The whole run: every processor's outcome, the final payload, the verdict."""

    outcomes: Mapping[str, ProcessorOutcome]
    payload: P
    #: True when every processor is ``DONE`` and the execution itself did not fail.
    succeeded: bool
    #: True when the run was cancelled from outside.
    cancelled: bool
    duration: float
    #: The execution's own failure, if it had one: an error in the executor or in the
    #: ``on_event`` sink, which ends the run (running processors are cancelled, and
    #: those that never settled have no outcome). Processors' own failures are in
    #: ``outcomes``, never here.
    error: str | None = None

    def failures(self) -> list[ProcessorOutcome]:
        return [o for o in self.outcomes.values() if o.state is NodeState.FAILED]


@attrs.frozen(slots=True)
class DagStarted:
    processors: int


@attrs.frozen(slots=True)
class NodeStateChanged:
    id: str
    from_state: NodeState
    to_state: NodeState


@attrs.frozen(slots=True)
class NodeFinished:
    outcome: ProcessorOutcome


@attrs.frozen(slots=True)
class DagFinished:
    succeeded: bool
    cancelled: bool
    duration: float


#: Everything the event stream carries.
DagEvent: TypeAlias = DagStarted | NodeStateChanged | NodeFinished | DagFinished
