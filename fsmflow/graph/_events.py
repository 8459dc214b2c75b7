"""The event stream of a graph run, and its result.

Every event carries the run's ``trace_id`` and a ``span_id``: the run is the root span,
each node execution a child span of it, each parallel branch a child span of its node.
Span ids are unique within a trace (a counter, shown as 16 hex digits, as in W3C trace
context); the trace id is random (32 hex digits). Exactly one terminal event —
:class:`GraphCompleted`, :class:`GraphFailed` or :class:`GraphCancelled` — ends the
stream of a run that was not abandoned by its consumer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, TypeAlias, TypeVar

import attrs

from ._errors import GraphError
from ._graph import Decision

S = TypeVar("S")


@attrs.frozen(slots=True, order=True)
class BarrierId:
    """One occurrence of a barrier node: ``node#occurrence``, counting from 1."""

    node: str
    occurrence: int

    def __str__(self) -> str:
        return f"{self.node}#{self.occurrence}"


@attrs.frozen(slots=True)
class ExecutionEntry:
    """One executed node in the execution log."""

    step: int
    node: str
    duration: float
    success: bool


@attrs.frozen(slots=True)
class GraphResult(Generic[S]):
    """How a completed run ended: its final state, execution log and duration (on the
    event loop's clock, so trio's ``MockClock`` governs it in tests)."""

    trace_id: str
    state: S
    log: tuple[ExecutionEntry, ...]
    duration: float
    steps: int


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
class CheckpointSaved(_Traced):
    """A checkpoint was stored; ``next_node`` is where a resumed run continues
    (``None``: the run had completed). ``incremental`` when only deltas were written."""

    step: int
    next_node: str | None
    trigger: str
    incremental: bool


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
    | CheckpointSaved
    | ErrorObserved
    | GraphCompleted[Any]
    | GraphFailed[Any]
    | GraphCancelled[Any]
)

#: The events that end a run's stream.
TERMINAL_EVENTS = (GraphCompleted, GraphFailed, GraphCancelled)
