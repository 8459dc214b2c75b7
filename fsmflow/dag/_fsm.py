"""The DAG execution's own FSM: the one source of truth for its states, events and actions.

``STARTING -> RUNNING -> COMPLETED | FAILED``, through ``CANCELLING`` when a fail-fast
failure or a cancel request stops the run. Processor completions arrive on the
execution's inbox; the actions settle them (dependency counting, skipping, starting
what became ready) so that only the supervisor loop ever changes the run's state.
"""

from __future__ import annotations

import enum
from functools import cache
from typing import TYPE_CHECKING, Any, TypeAlias

import attrs

from ..fsm import FsmBuilder, FsmSpec, Transition, goto, stay
from ._result import FailureStrategy, NodeState, ProcessorOutcome

if TYPE_CHECKING:
    from ._executor import RunContext

    Ctx: TypeAlias = RunContext[Any]
else:
    Ctx = object


class ExecState(enum.Enum):
    STARTING = "starting"
    RUNNING = "running"
    CANCELLING = "cancelling"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


@attrs.frozen(slots=True)
class Begin:
    """Start the processors that depend on nothing."""


@attrs.frozen(slots=True)
class ProcessorDone:
    """A processor finished (done, failed or cancelled)."""

    outcome: ProcessorOutcome


@attrs.frozen(slots=True)
class AllSettled:
    """Every processor reached a terminal state."""


@attrs.frozen(slots=True)
class CancelRequested:
    """Stop the run from outside."""


@attrs.frozen(slots=True)
class ExecutorError:
    """An action of the execution itself failed."""

    message: str


ExecEvent: TypeAlias = Begin | ProcessorDone | AllSettled | CancelRequested | ExecutorError


@attrs.frozen(slots=True)
class StartRoots:
    async def execute(self, ctx: Ctx) -> None:
        await ctx.start_roots()


@attrs.frozen(slots=True)
class Settle:
    outcome: ProcessorOutcome

    async def execute(self, ctx: Ctx) -> None:
        await ctx.settle(self.outcome)


@attrs.frozen(slots=True)
class CancelRunning:
    """Cancel every running processor now and every waiting one before it starts."""

    requested: bool = False

    async def execute(self, ctx: Ctx) -> None:
        await ctx.cancel_all(requested=self.requested)


ExecAction: TypeAlias = StartRoots | Settle | CancelRunning
_T: TypeAlias = Transition[ExecState, ExecAction]


def _begin(state: ExecState, event: Begin, ctx: Ctx) -> _T:
    return goto(ExecState.RUNNING, StartRoots())


def _settle_running(state: ExecState, event: ProcessorDone, ctx: Ctx) -> _T:
    failed = event.outcome.state is NodeState.FAILED
    if failed and ctx.strategy is FailureStrategy.FAIL_FAST:
        return goto(ExecState.CANCELLING, Settle(event.outcome), CancelRunning())
    return stay(Settle(event.outcome))


def _settle_cancelling(state: ExecState, event: ProcessorDone, ctx: Ctx) -> _T:
    return stay(Settle(event.outcome))


def _cancel(state: ExecState, event: CancelRequested, ctx: Ctx) -> _T:
    return goto(ExecState.CANCELLING, CancelRunning(requested=True))


def _ignore_cancel(state: ExecState, event: CancelRequested, ctx: Ctx) -> _T:
    return stay()


def _finish_running(state: ExecState, event: AllSettled, ctx: Ctx) -> _T:
    return goto(ExecState.FAILED if ctx.failed else ExecState.COMPLETED)


def _finish_cancelling(state: ExecState, event: AllSettled, ctx: Ctx) -> _T:
    return goto(ExecState.CANCELLED if ctx.cancel_requested else ExecState.FAILED)


def _fail(state: ExecState, event: ExecutorError, ctx: Ctx) -> _T:
    ctx.failed = True
    ctx.errors.append(event.message)
    return goto(ExecState.FAILED, CancelRunning())


@cache
def execution_spec() -> FsmSpec[ExecState, ExecEvent, Ctx, ExecAction]:
    b = FsmBuilder[ExecState, ExecEvent, Ctx, ExecAction](
        states=ExecState, events=ExecEvent, initial=ExecState.STARTING, name="dag execution"
    )
    b.when(ExecState.STARTING).on(Begin, _begin, to=[ExecState.RUNNING])
    running = b.when(ExecState.RUNNING)
    running.on(ProcessorDone, _settle_running, to=[ExecState.CANCELLING])
    running.on(CancelRequested, _cancel, to=[ExecState.CANCELLING])
    running.on(AllSettled, _finish_running, to=[ExecState.COMPLETED, ExecState.FAILED])
    cancelling = b.when(ExecState.CANCELLING)
    cancelling.on(ProcessorDone, _settle_cancelling, to=())
    cancelling.on(CancelRequested, _ignore_cancel, to=())
    cancelling.on(AllSettled, _finish_cancelling, to=[ExecState.CANCELLED, ExecState.FAILED])
    b.from_any().on(ExecutorError, _fail, to=[ExecState.FAILED])
    return b.build()
