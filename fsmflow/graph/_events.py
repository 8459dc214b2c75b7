"""The event stream of a graph run, and its result.

Every event carries the run's ``trace_id`` and a ``span_id``: the run is the root span,
each node execution a child span of it, each parallel branch a child span of its node.
Span ids are unique within a trace (a counter, shown as 16 hex digits, as in W3C trace
context); the trace id is random (32 hex digits) and names one execution, while the
``thread_id`` of :class:`GraphStarted` names the conversation it belongs to. Exactly one
terminal event — :class:`GraphCompleted`, :class:`GraphFailed`, :class:`GraphCancelled`,
:class:`GraphInterrupted` or :class:`GraphLeaseLost` — ends the stream of a run that was
not abandoned by its consumer.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Generic, TypeAlias, TypeVar

import attrs

from ._errors import GraphError, ThreadLeaseLost
from ._interrupts import BarrierId, Interrupt, InterruptId
from ._results import Decision

S = TypeVar("S")


class StreamMode(enum.Enum):
    """What a stream carries besides the events a consumer needs to steer the run
    (:class:`BarrierWaiting`, :class:`InterruptWaiting` and the terminal event, which
    every stream carries)."""

    #: :class:`StateValues`: the whole state after every step.
    VALUES = "values"
    #: :class:`StepUpdates`: what every step wrote.
    UPDATES = "updates"
    #: Every lifecycle event: nodes, branches, barriers, checkpoints, retries, errors.
    DEBUG = "debug"
    #: :class:`CustomEvent`: what nodes send through their stream writer.
    CUSTOM = "custom"


@attrs.frozen(slots=True)
class ExecutionEntry:
    """One executed node in the execution log."""

    step: int
    node: str
    duration: float
    success: bool


@attrs.frozen(slots=True)
class GraphResult(Generic[S]):
    """How a run ended: its state, execution log and duration (on the event loop's
    clock, so trio's ``MockClock`` governs it in tests).

    ``interrupts`` is empty for a completed run; a run that stopped at interrupts
    (``execute`` and ``resume`` stop there) lists what it waits for, and its ``state`` is
    the state it paused with. Continue it with ``resume(..., value=...)``.
    """

    trace_id: str
    state: S
    log: tuple[ExecutionEntry, ...]
    duration: float
    steps: int
    thread_id: str = ""
    interrupts: tuple[Interrupt, ...] = ()

    @property
    def completed(self) -> bool:
        """Whether the run reached its end (rather than stopping at interrupts)."""
        return not self.interrupts


@attrs.frozen(slots=True, kw_only=True)
class _Traced:
    trace_id: str
    span_id: str
    parent_span_id: str | None = None


@attrs.frozen(slots=True, kw_only=True)
class GraphStarted(_Traced):
    """The run began; ``step`` is 0, or the step a resumed run continues from."""

    graph: str
    graph_hash: str
    step: int
    resumed: bool
    thread_id: str = ""


@attrs.frozen(slots=True, kw_only=True)
class NodeStarted(_Traced):
    node: str
    step: int


@attrs.frozen(slots=True, kw_only=True)
class NodeEnded(_Traced):
    node: str
    step: int
    duration: float
    success: bool


@attrs.frozen(slots=True, kw_only=True)
class StateChanged(_Traced):
    """A delta was merged into the state; ``branch`` names the parallel branch it came
    from, if any."""

    node: str
    delta: Mapping[str, Any]
    branch: str | None = None


@attrs.frozen(slots=True, kw_only=True)
class ParallelStarted(_Traced):
    node: str
    branches: tuple[str, ...]


@attrs.frozen(slots=True, kw_only=True)
class BranchCompleted(_Traced):
    """A branch finished; its span is a child of the parallel node's span."""

    node: str
    branch: str
    success: bool
    duration: float


@attrs.frozen(slots=True, kw_only=True)
class ParallelCompleted(_Traced):
    node: str
    success: bool
    duration: float


@attrs.frozen(slots=True, kw_only=True)
class BarrierWaiting(_Traced):
    """The run waits for a decision on ``barrier_id``."""

    barrier_id: BarrierId
    timeout: float | None


@attrs.frozen(slots=True, kw_only=True)
class BarrierResolved(_Traced):
    """A decision was applied; ``timed_out`` when it is the barrier's default."""

    barrier_id: BarrierId
    decision: Decision
    timed_out: bool


@attrs.frozen(slots=True, kw_only=True)
class InterruptWaiting(_Traced):
    """The run waits for a value for ``interrupt`` (a node's ``interrupt()`` call or a
    static interrupt before or after a node; barriers report :class:`BarrierWaiting`)."""

    interrupt: Interrupt


@attrs.frozen(slots=True, kw_only=True)
class InterruptResumed(_Traced):
    """A value for ``interrupt_id`` was taken; the paused node runs again with it."""

    interrupt_id: InterruptId
    value: Any


@attrs.frozen(slots=True, kw_only=True)
class NodeRetrying(_Traced):
    """``node`` failed with ``error`` and runs again after ``delay`` seconds (its
    retry policy allows ``attempt`` + 1)."""

    node: str
    attempt: int
    delay: float
    error: str


@attrs.frozen(slots=True, kw_only=True)
class CheckpointSaved(_Traced):
    """Exactly one checkpoint was stored: number ``checkpoint`` of the thread.
    ``next_node`` is where a resumed run continues (``None``: the run had completed);
    ``incremental`` when only deltas were written."""

    step: int
    next_node: str | None
    trigger: str
    incremental: bool
    checkpoint: int = 0


@attrs.frozen(slots=True, kw_only=True)
class StateValues(_Traced, Generic[S]):
    """``StreamMode.VALUES``: the whole state after step ``step`` (and the input, as
    step 0 or the step a resumed run starts from)."""

    step: int
    state: S


@attrs.frozen(slots=True, kw_only=True)
class StepUpdates(_Traced):
    """``StreamMode.UPDATES``: what step ``step`` wrote — ``(task, delta)`` pairs of
    ``node`` (the task is ``""`` for a plain node, a branch or fan-out input otherwise)."""

    step: int
    node: str
    updates: tuple[tuple[str, Mapping[str, Any]], ...]


@attrs.frozen(slots=True, kw_only=True)
class CustomEvent(_Traced):
    """``StreamMode.CUSTOM``: what a node sent through its :func:`stream_writer`."""

    node: str
    data: Any


@attrs.frozen(slots=True, kw_only=True)
class ErrorObserved(_Traced):
    """A non-fatal problem: a fallback taken, a node's warning, a failed checkpoint."""

    node: str | None
    message: str


@attrs.frozen(slots=True, kw_only=True)
class GraphCompleted(_Traced, Generic[S]):
    result: GraphResult[S]


@attrs.frozen(slots=True, kw_only=True)
class GraphFailed(_Traced, Generic[S]):
    """The run failed with ``error``; ``state`` is the state it had reached."""

    error: GraphError
    state: S
    step: int


@attrs.frozen(slots=True, kw_only=True)
class GraphCancelled(_Traced, Generic[S]):
    """The run was cancelled from its handle at ``where`` (a node or barrier id)."""

    where: str
    state: S
    step: int


@attrs.frozen(slots=True, kw_only=True)
class GraphInterrupted(_Traced, Generic[S]):
    """The run stopped at ``interrupts`` (checkpointed: resume it with a value, in this
    process or another); ``result`` lists them with the state it paused with."""

    result: GraphResult[S]


@attrs.frozen(slots=True, kw_only=True)
class GraphLeaseLost(_Traced):
    """The run lost its thread's lease and stopped without writing (another process
    took the thread over, see :class:`~fsmflow.graph.ThreadLeaseLost`); ``step`` is the
    last step it had reached. The thread's history is the new owner's: read it, or
    resume it once that run ends, rather than trusting this run's state."""

    error: ThreadLeaseLost
    step: int


GraphEvent: TypeAlias = (
    GraphStarted
    | NodeStarted
    | NodeEnded
    | StateChanged
    | ParallelStarted
    | BranchCompleted
    | ParallelCompleted
    | BarrierWaiting
    | BarrierResolved
    | InterruptWaiting
    | InterruptResumed
    | NodeRetrying
    | CheckpointSaved
    | ErrorObserved
    | StateValues[Any]
    | StepUpdates
    | CustomEvent
    | GraphCompleted[Any]
    | GraphFailed[Any]
    | GraphCancelled[Any]
    | GraphInterrupted[Any]
    | GraphLeaseLost
)

#: The events that end a run's stream.
TERMINAL_EVENTS = (GraphCompleted, GraphFailed, GraphCancelled, GraphInterrupted, GraphLeaseLost)
