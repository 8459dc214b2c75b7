"""The graph execution's own FSM: the one source of truth for a run's lifecycle.

``STARTING -> RUNNING -> COMPLETED | FAILED | CANCELLED``, through
``AWAITING_DECISION`` while a barrier waits. ``dispatch_state`` does the work of a state
(runs the current node, looks for a ready decision) and reports it as an event; the
actions commit it: merge the state, move to the next node, save checkpoints and emit
the event stream. Only transitions into a terminal state emit a terminal event, and
terminal states have no way out, so a run emits at most one.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any, TypeAlias

import attrs

from ..fsm import FsmBuilder, FsmSpec, Transition, goto, stay
from ._errors import ExecutorFault, GraphError
from ._events import BarrierId
from ._graph import Decision

if TYPE_CHECKING:
    from ._context import RunContext

    Ctx: TypeAlias = RunContext[Any]
else:
    Ctx = object


class ExecState(enum.Enum):
    STARTING = "starting"
    RUNNING = "running"
    AWAITING_DECISION = "awaiting_decision"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATES = frozenset({ExecState.COMPLETED, ExecState.FAILED, ExecState.CANCELLED})

# -- events ------------------------------------------------------------------------------


@attrs.frozen(slots=True)
class Begin:
    """Start the run."""


@attrs.frozen(slots=True)
class NodeDone:
    """The current node finished: ``deltas`` (``(branch, delta)`` pairs) turned the
    state into ``state``; the run goes on with ``next`` (``None``: it is complete)."""

    node: str
    span: str
    started: float
    duration: float
    deltas: tuple[tuple[str | None, Mapping[str, Any]], ...]
    state: Any
    next: str | None
    cost: float = 0.0
    side_effects: bool = False
    warnings: tuple[str, ...] = ()
    barrier: bool = False


@attrs.frozen(slots=True)
class NothingLeft:
    """A resumed run had already completed."""


@attrs.frozen(slots=True)
class BarrierReached:
    """The current node is a barrier: wait for a decision on ``barrier_id``."""

    barrier_id: BarrierId
    span: str
    started: float


@attrs.frozen(slots=True)
class DecisionReady:
    """A decision for the waiting barrier was already at hand (sent early)."""

    decision: Decision


@attrs.frozen(slots=True)
class StepFailed:
    """The run cannot go on; ``node``/``span`` name the node that failed, if any."""

    error: GraphError
    node: str | None = None
    span: str | None = None
    started: float = 0.0


@attrs.frozen(slots=True)
class Decide:
    """External: a decision for a barrier id, or for every occurrence of a node."""

    target: BarrierId | str
    decision: Decision


@attrs.frozen(slots=True)
class BarrierTimedOut:
    """External (from the barrier's timer): ``barrier_id`` waited too long."""

    barrier_id: BarrierId


@attrs.frozen(slots=True)
class CancelRequested:
    """External: stop the run."""


@attrs.frozen(slots=True)
class CheckpointRequested:
    """External: save a checkpoint now."""


@attrs.frozen(slots=True)
class ExecutorFailed:
    """``dispatch_state`` or an action failed unexpectedly."""

    message: str


#: Shared instances of the events that carry nothing.
BEGIN = Begin()
CANCEL = CancelRequested()

ExecEvent: TypeAlias = (
    Begin
    | NodeDone
    | NothingLeft
    | BarrierReached
    | DecisionReady
    | StepFailed
    | Decide
    | BarrierTimedOut
    | CancelRequested
    | CheckpointRequested
    | ExecutorFailed
)

# -- actions -----------------------------------------------------------------------------


@attrs.frozen(slots=True)
class Announce:
    async def execute(self, ctx: Ctx) -> None:
        await ctx.announce()


@attrs.frozen(slots=True)
class Commit:
    done: NodeDone

    async def execute(self, ctx: Ctx) -> None:
        await ctx.commit(self.done)


@attrs.frozen(slots=True)
class Complete:
    async def execute(self, ctx: Ctx) -> None:
        await ctx.complete()


@attrs.frozen(slots=True)
class Fail:
    failure: StepFailed

    async def execute(self, ctx: Ctx) -> None:
        await ctx.fail(self.failure)


@attrs.frozen(slots=True)
class Cancel:
    async def execute(self, ctx: Ctx) -> None:
        await ctx.cancelled()


@attrs.frozen(slots=True)
class OpenBarrier:
    reached: BarrierReached

    async def execute(self, ctx: Ctx) -> None:
        await ctx.open_barrier(self.reached)


@attrs.frozen(slots=True)
class CloseBarrier:
    decision: Decision
    timed_out: bool

    async def execute(self, ctx: Ctx) -> None:
        await ctx.close_barrier(self.decision, self.timed_out)


@attrs.frozen(slots=True)
class Stash:
    """Keep a decision that arrived before its barrier."""

    target: BarrierId | str
    decision: Decision

    async def execute(self, ctx: Ctx) -> None:
        ctx.decisions.put(self.target, self.decision)


@attrs.frozen(slots=True)
class SaveRequested:
    async def execute(self, ctx: Ctx) -> None:
        await ctx.save_requested()


ExecAction: TypeAlias = (
    Announce
    | Commit
    | Complete
    | Fail
    | Cancel
    | OpenBarrier
    | CloseBarrier
    | Stash
    | SaveRequested
)
_T: TypeAlias = Transition[ExecState, ExecAction]

# -- handlers ----------------------------------------------------------------------------


def _begin(state: ExecState, event: Begin, ctx: Ctx) -> _T:
    return goto(ExecState.RUNNING, Announce())


def _node_done(state: ExecState, event: NodeDone, ctx: Ctx) -> _T:
    if event.next is None:
        return goto(ExecState.COMPLETED, Commit(event), Complete())
    return stay(Commit(event))


def _nothing_left(state: ExecState, event: NothingLeft, ctx: Ctx) -> _T:
    return goto(ExecState.COMPLETED, Complete())


def _barrier_reached(state: ExecState, event: BarrierReached, ctx: Ctx) -> _T:
    return goto(ExecState.AWAITING_DECISION, OpenBarrier(event))


def _step_failed(state: ExecState, event: StepFailed, ctx: Ctx) -> _T:
    return goto(ExecState.FAILED, Fail(event))


def _cancel(state: ExecState, event: CancelRequested, ctx: Ctx) -> _T:
    return goto(ExecState.CANCELLED, Cancel())


def _checkpoint(state: ExecState, event: CheckpointRequested, ctx: Ctx) -> _T:
    return stay(SaveRequested())


def _stash(state: ExecState, event: Decide, ctx: Ctx) -> _T:
    return stay(Stash(event.target, event.decision))


def _stale_timer(state: ExecState, event: BarrierTimedOut, ctx: Ctx) -> _T:
    return stay()


def _decide_waiting(state: ExecState, event: Decide, ctx: Ctx) -> _T:
    waiting = ctx.waiting
    assert waiting is not None
    if event.target == waiting.barrier_id:
        return goto(ExecState.RUNNING, CloseBarrier(event.decision, False))
    if event.target == waiting.barrier_id.node:  # a wildcard also serves later occurrences
        return goto(
            ExecState.RUNNING,
            Stash(event.target, event.decision),
            CloseBarrier(event.decision, False),
        )
    return stay(Stash(event.target, event.decision))


def _decision_ready(state: ExecState, event: DecisionReady, ctx: Ctx) -> _T:
    return goto(ExecState.RUNNING, CloseBarrier(event.decision, False))


def _timed_out(state: ExecState, event: BarrierTimedOut, ctx: Ctx) -> _T:
    waiting = ctx.waiting
    if waiting is None or event.barrier_id != waiting.barrier_id:
        return stay()
    return goto(ExecState.RUNNING, CloseBarrier(ctx.default_decision(), True))


def _fault(state: ExecState, event: ExecutorFailed, ctx: Ctx) -> _T:
    return goto(ExecState.FAILED, Fail(StepFailed(ExecutorFault(event.message))))


def _fault_after_end(state: ExecState, event: ExecutorFailed, ctx: Ctx) -> _T:
    return stay()


@cache
def execution_spec() -> FsmSpec[ExecState, ExecEvent, Ctx, ExecAction]:
    """The executor's FSM (drawn in the docs)."""
    b = FsmBuilder[ExecState, ExecEvent, Ctx, ExecAction](
        states=ExecState, events=ExecEvent, initial=ExecState.STARTING, name="graph execution"
    )
    b.when(ExecState.STARTING).on(Begin, _begin, to=[ExecState.RUNNING])
    running = b.when(ExecState.RUNNING)
    running.on(NodeDone, _node_done, to=[ExecState.COMPLETED])
    running.on(NothingLeft, _nothing_left, to=[ExecState.COMPLETED])
    running.on(BarrierReached, _barrier_reached, to=[ExecState.AWAITING_DECISION])
    running.on(Decide, _stash, to=())
    running.on(BarrierTimedOut, _stale_timer, to=())
    waiting = b.when(ExecState.AWAITING_DECISION)
    waiting.on(Decide, _decide_waiting, to=[ExecState.RUNNING])
    waiting.on(DecisionReady, _decision_ready, to=[ExecState.RUNNING])
    waiting.on(BarrierTimedOut, _timed_out, to=[ExecState.RUNNING])
    for active in (ExecState.STARTING, ExecState.RUNNING, ExecState.AWAITING_DECISION):
        scope = b.when(active)
        scope.on(StepFailed, _step_failed, to=[ExecState.FAILED])
        scope.on(CancelRequested, _cancel, to=[ExecState.CANCELLED])
        scope.on(CheckpointRequested, _checkpoint, to=())
        scope.on(ExecutorFailed, _fault, to=[ExecState.FAILED])
    for terminal in TERMINAL_STATES:
        b.when(terminal).on(ExecutorFailed, _fault_after_end, to=())
    return b.build()
