"""A workflow compiled to its FSM: the one source of truth for a run's states and events.

The state type is an enum made per workflow: ``PENDING``, one ``RUN_<step>`` per step,
one ``UNDO_<step>`` per step that has an undo, ``SLEEPING`` and ``WAITING`` (the run is
parked on a durable timer or for a signal; no worker holds it), and the final states.
Every handler declares its exact targets, so the diagram shows the real paths: a failure
in ``RUN_ship`` goes to ``UNDO_charge`` (the latest completed step with an undo), the
undos run down to ``COMPENSATED``.

The FSM's context is the run's :class:`RunProgress`, a small registered value: a workflow
run is a supervisor whose state and context the codec knows, run durably by the same
mechanism as any other (:mod:`._durable`). Handlers only move the state and the
progress; what a step produced travels in the supervisor's outbox and is committed with
the new state (see :mod:`._supervisor`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

import attrs

from ..fsm import FsmBuilder, FsmSpec, Transition, goto, stay
from ._records import RunStatus

if TYPE_CHECKING:
    from ._workflow import Workflow


@attrs.define
class RunProgress:
    """The run's FSM context as stored: where it is and what it still owes."""

    #: The step that runs (or whose undo runs) now.
    position: int = 0
    #: Attempt of that step or undo, from 1; counted durably.
    attempt: int = 1
    #: When the next attempt may start (store clock), after a failed one.
    retry_at: float | None = None
    #: Control-log entries up to this seq were consumed (signals) or acted upon (cancel).
    signal_cursor: int = 0
    #: True while undos run.
    compensating: bool = False
    cancel_requested: bool = False
    #: The failure that started compensation (or ended the run).
    error: str | None = None
    undone: int = 0
    undo_failed: int = 0


Ctx: TypeAlias = RunProgress


# -- events -----------------------------------------------------------------------------


@attrs.frozen(slots=True)
class Start:
    """A worker took the run for the first time."""


@attrs.frozen(slots=True)
class StepDone:
    """The current step returned; its output is in the outbox."""

    #: The control-log seq up to which the step consumed signals.
    signal_cursor: int


@attrs.frozen(slots=True)
class Retry:
    """An attempt of the current step or undo failed and will be tried again."""

    error: str
    at: float


@attrs.frozen(slots=True)
class StepFailed:
    """The current step failed for good."""

    error: str


@attrs.frozen(slots=True)
class Sleep:
    """The run parks on a durable timer (a ``ctx.sleep`` or a long retry backoff)."""

    until: float


@attrs.frozen(slots=True)
class Wait:
    """The run parks until a signal arrives or its timeout is due."""

    until: float


@attrs.frozen(slots=True)
class Resume:
    """A worker took a parked run back."""


@attrs.frozen(slots=True)
class CancelRequested:
    """Someone asked the run to stop; completed steps are undone."""


@attrs.frozen(slots=True)
class UndoDone:
    """The current undo ran."""


@attrs.frozen(slots=True)
class UndoFailed:
    """The current undo failed for good; compensation goes on with the earlier ones."""

    error: str


@attrs.frozen(slots=True)
class GiveUp:
    """The run was taken over too often (its workers keep dying): dead-letter it."""

    reason: str


@attrs.frozen(slots=True)
class RunError:
    """Doing the run's own work failed (the store was unreachable, say); the run stays
    where it is and the supervisor's failure bound decides when to give the run back."""

    message: str


RunEvent: TypeAlias = (
    Start
    | StepDone
    | Retry
    | StepFailed
    | Sleep
    | Wait
    | Resume
    | CancelRequested
    | UndoDone
    | UndoFailed
    | GiveUp
    | RunError
)

_FINAL_NAMES = (
    "COMPLETED",
    "FAILED",
    "COMPENSATED",
    "COMPENSATION_FAILED",
    "CANCELLED",
    "DEAD_LETTERED",
)


#: The functional enum API, called through a plain callable: the members are only known
#: at run time.
_new_enum: Callable[..., Any] = enum.Enum


@attrs.frozen
class CompiledWorkflow:
    """A workflow's FSM and how its states map to steps and statuses."""

    spec: FsmSpec[Any, RunEvent, Ctx, Any]
    states: type[enum.Enum]
    run_states: tuple[enum.Enum, ...]
    #: Per step index: its undo state, or ``None``.
    undo_states: tuple[enum.Enum | None, ...]
    statuses: dict[enum.Enum, RunStatus]

    def state(self, name: str) -> enum.Enum:
        return self.states[name]

    def status_of(self, state: enum.Enum) -> RunStatus:
        return self.statuses[state]


def compile_workflow(workflow: Workflow[Any, Any]) -> CompiledWorkflow:
    steps = workflow.steps
    names = ["PENDING"]
    names += [f"RUN_{s.name}" for s in steps]
    names += [f"UNDO_{s.name}" for s in steps if s.has_undo]
    has_undo = any(s.has_undo for s in steps)
    finals = [n for n in _FINAL_NAMES if has_undo or not n.startswith("COMPENSAT")]
    names += ["SLEEPING", "WAITING", *finals]
    State: Any = _new_enum(f"{workflow.name}_state", [(n, n) for n in names], module=__name__)
    run_states = tuple(State[f"RUN_{s.name}"] for s in steps)
    undo_states = tuple(State[f"UNDO_{s.name}"] if s.has_undo else None for s in steps)
    undo_index = {state: i for i, state in enumerate(undo_states) if state is not None}
    statuses: dict[Any, RunStatus] = {State.PENDING: RunStatus.PENDING}
    statuses.update({s: RunStatus.RUNNING for s in run_states})
    statuses.update({s: RunStatus.COMPENSATING for s in undo_states if s is not None})
    statuses[State.SLEEPING] = RunStatus.SLEEPING
    statuses[State.WAITING] = RunStatus.WAITING
    for final in finals:
        statuses[State[final]] = RunStatus[final]

    def undo_below(index: int) -> Any:
        """The undo state of the latest step before ``index`` that has one, or None."""
        for k in range(index - 1, -1, -1):
            if undo_states[k] is not None:
                return undo_states[k]
        return None

    def end_of_compensation(progress: RunProgress) -> Any:
        if progress.cancel_requested:
            return State.CANCELLED
        if progress.undo_failed:
            return State.COMPENSATION_FAILED
        return State.COMPENSATED

    def compensate_from(index: int, ctx: Ctx, final_without_undo: Any) -> Transition[Any, Any]:
        """Start undoing the steps before ``index`` (all of them completed)."""
        progress = ctx
        target = undo_below(index)
        progress.attempt = 1
        progress.retry_at = None
        if target is None:
            return goto(final_without_undo)
        progress.compensating = True
        progress.position = undo_index[target]
        return goto(target)

    b = FsmBuilder[Any, RunEvent, Ctx, Any](
        states=State, events=RunEvent, initial=State.PENDING, name=f"workflow {workflow.name}"
    )
    first = run_states[0]

    def start(state: Any, event: Start, ctx: Ctx) -> Transition[Any, Any]:
        return goto(first)

    b.when(State.PENDING).on(Start, start, to=[first])

    everything_undoable = [s for s in undo_states if s is not None]
    cancel_targets = [*everything_undoable, State.CANCELLED]

    def cancel_parked(state: Any, event: CancelRequested, ctx: Ctx) -> Transition[Any, Any]:
        ctx.cancel_requested = True
        if ctx.compensating:
            return goto(undo_states[ctx.position])
        return compensate_from(ctx.position, ctx, State.CANCELLED)

    b.when(State.PENDING).on(CancelRequested, cancel_parked, to=[State.CANCELLED])
    for parked in (State.SLEEPING, State.WAITING):
        b.when(parked).on(CancelRequested, cancel_parked, to=cancel_targets)

    def resume(state: Any, event: Resume, ctx: Ctx) -> Transition[Any, Any]:
        progress = ctx
        if progress.compensating:
            return goto(undo_states[progress.position])
        return goto(run_states[progress.position])

    resume_targets = [*run_states, *everything_undoable]
    b.when(State.SLEEPING).on(Resume, resume, to=resume_targets)
    b.when(State.WAITING).on(Resume, resume, to=resume_targets)

    def sleep(state: Any, event: Sleep, ctx: Ctx) -> Transition[Any, Any]:
        return goto(State.SLEEPING)

    def wait(state: Any, event: Wait, ctx: Ctx) -> Transition[Any, Any]:
        return goto(State.WAITING)

    def retry(state: Any, event: Retry, ctx: Ctx) -> Transition[Any, Any]:
        ctx.attempt += 1
        ctx.retry_at = event.at
        return stay()

    for step, run_state in zip(steps, run_states, strict=True):
        index = step.index
        nxt = run_states[index + 1] if index + 1 < len(steps) else State.COMPLETED
        below = undo_below(index)
        fail_target = State.FAILED if below is None else below
        cancel_target = State.CANCELLED if below is None else below
        scope = b.when(run_state)
        scope.on(StepDone, _make_done(nxt), to=[nxt])
        scope.on(Retry, retry, to=())
        scope.on(StepFailed, _make_failed(index, compensate_from, State.FAILED), to=[fail_target])
        scope.on(
            CancelRequested,
            _make_cancel(index, compensate_from, State.CANCELLED),
            to=[cancel_target],
        )
        scope.on(Sleep, sleep, to=[State.SLEEPING])
        scope.on(Wait, wait, to=[State.WAITING])

    for step in steps:
        undo_state = undo_states[step.index]
        if undo_state is None:
            continue
        below = undo_below(step.index)
        targets = (
            [State.COMPENSATED, State.COMPENSATION_FAILED, State.CANCELLED]
            if below is None
            else [below]
        )
        scope = b.when(undo_state)
        done = _make_undo_next(step.index, undo_below, undo_index, end_of_compensation, False)
        failed = _make_undo_next(step.index, undo_below, undo_index, end_of_compensation, True)
        scope.on(UndoDone, done, to=targets)
        scope.on(UndoFailed, failed, to=targets)
        scope.on(Retry, retry, to=())
        scope.on(Sleep, sleep, to=[State.SLEEPING])
        scope.on(CancelRequested, _cancel_during_undo, to=())

    def give_up(state: Any, event: GiveUp, ctx: Ctx) -> Transition[Any, Any]:
        ctx.error = event.reason
        return goto(State.DEAD_LETTERED)

    def run_error(state: Any, event: RunError, ctx: Ctx) -> Transition[Any, Any]:
        return stay()

    b.from_any().on(GiveUp, give_up, to=[State.DEAD_LETTERED])
    b.from_any().on(RunError, run_error, to=())
    spec = b.build()
    workflow.codec.register(State, RunProgress)
    return CompiledWorkflow(spec, State, run_states, undo_states, statuses)


def _make_done(nxt: Any) -> Callable[[Any, StepDone, Ctx], Transition[Any, Any]]:
    def step_done(state: Any, event: StepDone, ctx: Ctx) -> Transition[Any, Any]:
        progress = ctx
        progress.position += 1
        progress.attempt = 1
        progress.retry_at = None
        progress.signal_cursor = max(progress.signal_cursor, event.signal_cursor)
        return goto(nxt)

    return step_done


def _make_failed(
    index: int, compensate_from: Callable[..., Transition[Any, Any]], final: Any
) -> Callable[[Any, StepFailed, Ctx], Transition[Any, Any]]:
    def step_failed(state: Any, event: StepFailed, ctx: Ctx) -> Transition[Any, Any]:
        ctx.error = event.error
        return compensate_from(index, ctx, final)

    return step_failed


def _make_cancel(
    index: int, compensate_from: Callable[..., Transition[Any, Any]], final: Any
) -> Callable[[Any, CancelRequested, Ctx], Transition[Any, Any]]:
    def cancel(state: Any, event: CancelRequested, ctx: Ctx) -> Transition[Any, Any]:
        ctx.cancel_requested = True
        return compensate_from(index, ctx, final)

    return cancel


def _make_undo_next(
    index: int,
    undo_below: Callable[[int], Any],
    undo_index: dict[Any, int],
    end_of_compensation: Callable[[RunProgress], Any],
    failed: bool,
) -> Callable[[Any, Any, Ctx], Transition[Any, Any]]:
    def undo_next(state: Any, event: Any, ctx: Ctx) -> Transition[Any, Any]:
        progress = ctx
        if failed:
            progress.undo_failed += 1
        else:
            progress.undone += 1
        progress.attempt = 1
        progress.retry_at = None
        below = undo_below(index)
        if below is None:
            progress.compensating = False
            return goto(end_of_compensation(progress))
        progress.position = undo_index[below]
        return goto(below)

    return undo_next


def _cancel_during_undo(state: Any, event: CancelRequested, ctx: Ctx) -> Transition[Any, Any]:
    """Compensation is already under way: it finishes, then the run ends CANCELLED."""
    ctx.cancel_requested = True
    return stay()
