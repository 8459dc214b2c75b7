"""The graph execution's own FSM: the one source of truth for a run's lifecycle.

``STARTING -> RUNNING -> COMPLETED | FAILED | CANCELLED | INTERRUPTED``, through
``AWAITING_DECISION`` while interrupts (barriers among them) wait for values, and
``LEASE_LOST`` from anywhere when the run loses its thread's lease.
``dispatch_state`` does the work of a state (runs the current step, notices that every
waiting interrupt has its value) and reports it as an event; the actions commit it:
merge the state, move to the next node, save checkpoints and emit the event stream. A run
with a handle waits at its interrupts; a run without one (``execute``, ``resume``, a
subgraph inside its parent) stops there, ``INTERRUPTED``, checkpointed. Only transitions
into a terminal state emit a terminal event, and terminal states have no way out, so a
run emits at most one. The one way out of a terminal state is the loss of the lease
while its final checkpoint is written (the store refused it): the run then ends
``LEASE_LOST`` instead, and since a terminal event is sent after the final checkpoint,
the run still emits only one (``GraphLeaseLost``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any, TypeAlias

import attrs

from ..fsm import FsmBuilder, FsmSpec, Transition, goto, stay
from ._errors import ExecutorFault, GraphError, InterruptNeedsStore
from ._interrupts import BarrierId, Interrupt, InterruptId
from ._results import Decision, FanOut

if TYPE_CHECKING:
    from ..store import StoreError

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
    INTERRUPTED = "interrupted"
    LEASE_LOST = "lease_lost"


TERMINAL_STATES = frozenset(
    {
        ExecState.COMPLETED,
        ExecState.FAILED,
        ExecState.CANCELLED,
        ExecState.INTERRUPTED,
        ExecState.LEASE_LOST,
    }
)

# -- events ------------------------------------------------------------------------------


@attrs.frozen(slots=True)
class Begin:
    """Start the run."""


@attrs.frozen(slots=True)
class NodeDone:
    """The current step finished: ``deltas`` (``(task, delta)`` pairs) turned the state
    into ``state``; the run goes on with ``next`` (``None``: it is complete)."""

    node: str
    span: str
    started: float
    duration: float
    deltas: tuple[tuple[str, Mapping[str, Any]], ...]
    state: Any
    next: str | FanOut | None
    cost: float = 0.0
    side_effects: bool = False
    warnings: tuple[str, ...] = ()
    barrier: bool = False


@attrs.frozen(slots=True)
class NothingLeft:
    """A resumed run had already completed."""


@attrs.frozen(slots=True)
class Paused:
    """The step cannot go on until ``interrupts`` have values."""

    interrupts: tuple[Interrupt, ...]


@attrs.frozen(slots=True)
class Stopped:
    """The pause is checkpointed: the run ends there."""


@attrs.frozen(slots=True)
class ResumeReady:
    """Every interrupt the run waited on has its value."""


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
class Resume:
    """External: a value for an interrupt (``None``: the only one waiting)."""

    target: InterruptId | BarrierId | str | None
    value: Any


@attrs.frozen(slots=True)
class InterruptTimedOut:
    """External (from a barrier's timer): ``interrupt_id`` waited too long."""

    interrupt_id: InterruptId


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


@attrs.frozen(slots=True)
class OwnershipLost:
    """The run lost its thread's lease (a renewal or a fenced write found it taken over,
    or renewals kept failing): stop without writing."""

    error: StoreError


#: Shared instances of the events that carry nothing.
BEGIN = Begin()
CANCEL = CancelRequested()
RESUME_READY = ResumeReady()
STOPPED = Stopped()

ExecEvent: TypeAlias = (
    Begin
    | NodeDone
    | NothingLeft
    | Paused
    | Stopped
    | ResumeReady
    | StepFailed
    | Decide
    | Resume
    | InterruptTimedOut
    | CancelRequested
    | CheckpointRequested
    | ExecutorFailed
    | OwnershipLost
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
    #: The run had completed before (a resumed completed run): nothing to save.
    already: bool = False

    async def execute(self, ctx: Ctx) -> None:
        await ctx.complete(self.already)


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
class OpenWait:
    """Checkpoint the pause, report it, start the barriers' timers."""

    paused: Paused

    async def execute(self, ctx: Ctx) -> None:
        await ctx.open_wait(self.paused)


@attrs.frozen(slots=True)
class SavePause:
    """Checkpoint the pause of a run that stops there (a failed save fails the run)."""

    paused: Paused

    async def execute(self, ctx: Ctx) -> None:
        await ctx.save_pause(self.paused)


@attrs.frozen(slots=True)
class Stop:
    """End the run at its checkpointed pause."""

    async def execute(self, ctx: Ctx) -> None:
        await ctx.stop()


@attrs.frozen(slots=True)
class Accept:
    """Take a value (or a decision) for waiting interrupts, or keep it for later."""

    event: Decide | Resume | InterruptTimedOut

    async def execute(self, ctx: Ctx) -> None:
        await ctx.accept(self.event)


@attrs.frozen(slots=True)
class Release:
    """Every interrupt has its value: checkpoint them and run the step again."""

    async def execute(self, ctx: Ctx) -> None:
        await ctx.release_wait()


@attrs.frozen(slots=True)
class Stash:
    """Keep a decision or value that arrived before its interrupt."""

    event: Decide | Resume

    async def execute(self, ctx: Ctx) -> None:
        await ctx.stash(self.event)


@attrs.frozen(slots=True)
class SaveRequested:
    async def execute(self, ctx: Ctx) -> None:
        await ctx.save_requested()


@attrs.frozen(slots=True)
class Abandon:
    """End the run without writing: its thread belongs to someone else now."""

    async def execute(self, ctx: Ctx) -> None:
        await ctx.abandon()


ExecAction: TypeAlias = (
    Announce
    | Commit
    | Complete
    | Fail
    | Cancel
    | OpenWait
    | SavePause
    | Stop
    | Accept
    | Release
    | Stash
    | SaveRequested
    | Abandon
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
    return goto(ExecState.COMPLETED, Complete(already=True))


def _paused(state: ExecState, event: Paused, ctx: Ctx) -> _T:
    if ctx.waits:
        return goto(ExecState.AWAITING_DECISION, OpenWait(event))
    if not ctx.can_stop:
        first = event.interrupts[0]
        where = f"node {first.id.node!r}" if first.id.node else "the run"
        return goto(ExecState.FAILED, Fail(StepFailed(InterruptNeedsStore(where))))
    return stay(SavePause(event))


def _stopped(state: ExecState, event: Stopped, ctx: Ctx) -> _T:
    return goto(ExecState.INTERRUPTED, Stop())


def _step_failed(state: ExecState, event: StepFailed, ctx: Ctx) -> _T:
    return goto(ExecState.FAILED, Fail(event))


def _cancel(state: ExecState, event: CancelRequested, ctx: Ctx) -> _T:
    return goto(ExecState.CANCELLED, Cancel())


def _checkpoint(state: ExecState, event: CheckpointRequested, ctx: Ctx) -> _T:
    return stay(SaveRequested())


def _stash(state: ExecState, event: Decide | Resume, ctx: Ctx) -> _T:
    return stay(Stash(event))


def _stale_timer(state: ExecState, event: InterruptTimedOut, ctx: Ctx) -> _T:
    return stay()


def _accept(state: ExecState, event: Decide | Resume | InterruptTimedOut, ctx: Ctx) -> _T:
    return stay(Accept(event))


def _resume_ready(state: ExecState, event: ResumeReady, ctx: Ctx) -> _T:
    return goto(ExecState.RUNNING, Release())


def _fault(state: ExecState, event: ExecutorFailed, ctx: Ctx) -> _T:
    return goto(ExecState.FAILED, Fail(StepFailed(ExecutorFault(event.message))))


def _fault_after_end(state: ExecState, event: ExecutorFailed, ctx: Ctx) -> _T:
    return stay()


def _lost(state: ExecState, event: OwnershipLost, ctx: Ctx) -> _T:
    return goto(ExecState.LEASE_LOST, Abandon())


def _lost_after_end(state: ExecState, event: OwnershipLost, ctx: Ctx) -> _T:
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
    running.on(
        Paused,
        _paused,
        to=[ExecState.AWAITING_DECISION, ExecState.FAILED],
    )
    running.on(Stopped, _stopped, to=[ExecState.INTERRUPTED])
    running.on(Decide, _stash, to=())
    running.on(Resume, _stash, to=())
    running.on(InterruptTimedOut, _stale_timer, to=())
    waiting = b.when(ExecState.AWAITING_DECISION)
    waiting.on(Decide, _accept, to=())
    waiting.on(Resume, _accept, to=())
    waiting.on(InterruptTimedOut, _accept, to=())
    waiting.on(ResumeReady, _resume_ready, to=[ExecState.RUNNING])
    for active in (ExecState.STARTING, ExecState.RUNNING, ExecState.AWAITING_DECISION):
        scope = b.when(active)
        scope.on(StepFailed, _step_failed, to=[ExecState.FAILED])
        scope.on(CancelRequested, _cancel, to=[ExecState.CANCELLED])
        scope.on(CheckpointRequested, _checkpoint, to=())
        scope.on(ExecutorFailed, _fault, to=[ExecState.FAILED])
    # The final checkpoint of these states' actions may be refused for a lost lease.
    for active in (
        ExecState.STARTING,
        ExecState.RUNNING,
        ExecState.AWAITING_DECISION,
        ExecState.COMPLETED,
        ExecState.FAILED,
        ExecState.CANCELLED,
    ):
        b.when(active).on(OwnershipLost, _lost, to=[ExecState.LEASE_LOST])
    for ended in (ExecState.INTERRUPTED, ExecState.LEASE_LOST):
        b.when(ended).on(OwnershipLost, _lost_after_end, to=())
    for terminal in TERMINAL_STATES:
        b.when(terminal).on(ExecutorFailed, _fault_after_end, to=())
    return b.build()
