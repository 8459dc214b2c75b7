"""``GraphExecution``: one graph run as a supervised FSM.

It is a :class:`~fsmflow.supervisor.SelfSupervised` with an external-event policy: while
steps run it ``POLL`` s its channel (decisions, resume values, cancel and checkpoint
requests are taken between steps); while interrupts wait it ``BLOCK`` s on it. Its
``dispatch_state`` runs the current step and reports what happened as an event; the FSM's
actions commit it (see :mod:`._fsm`) on the run's context.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..fsm import FsmSpec
from ..supervisor import (
    TERMINATE,
    EventLoopDirective,
    ExternalEventMode,
    ExternalEventPolicy,
    SelfSupervised,
    Trigger,
)
from ._fsm import (
    BEGIN,
    CANCEL,
    RESUME_READY,
    STOPPED,
    ExecAction,
    ExecEvent,
    ExecState,
    ExecutorFailed,
    OwnershipLost,
    StepFailed,
    execution_spec,
)
from ._waiting import pause_failure

if TYPE_CHECKING:
    from ._context import RunContext


class GraphExecution(
    SelfSupervised[ExecState, ExecEvent, "RunContext[Any]", ExecAction],
    ExternalEventPolicy[ExecState, ExecEvent],
):
    """The supervised FSM of one graph run (its diagram is in the docs)."""

    def __init__(self, ctx: RunContext[Any]) -> None:
        super().__init__(f"graph:{ctx.graph.name}")
        self._ctx = ctx

    @classmethod
    def fsm_spec(cls) -> FsmSpec[ExecState, ExecEvent, RunContext[Any], ExecAction]:
        return execution_spec()

    @staticmethod
    def initial_state_for(ctx: RunContext[Any]) -> ExecState:
        return ExecState.STARTING

    async def dispatch_state(
        self, state: ExecState, ctx: RunContext[Any]
    ) -> EventLoopDirective[ExecEvent]:
        if state is ExecState.RUNNING:
            if ctx.lost is not None:
                return Trigger(OwnershipLost(ctx.lost))
            if ctx.stopping:
                if ctx.pause_error is not None:
                    return Trigger(StepFailed(pause_failure(ctx)))
                return Trigger(STOPPED)
            if ctx.cancel_requested:
                return Trigger(CANCEL)
            event = await ctx.run_step()
            if ctx.lost is not None:  # whatever the step did stays unwritten
                return Trigger(OwnershipLost(ctx.lost))
            return Trigger(event)
        if state is ExecState.STARTING:
            if ctx.lost is not None:
                return Trigger(OwnershipLost(ctx.lost))
            return Trigger(BEGIN)
        if state is ExecState.AWAITING_DECISION:
            if ctx.lost is not None:
                return Trigger(OwnershipLost(ctx.lost))
            if ctx.cancel_requested:
                return Trigger(CANCEL)
            if ctx.all_resolved():
                return Trigger(RESUME_READY)
            # The channel closed: no value can arrive any more.
            return Trigger(CANCEL)
        return TERMINATE

    def external_event_mode(self, state: ExecState) -> ExternalEventMode:
        if state is ExecState.RUNNING:
            return ExternalEventMode.POLL
        if state is ExecState.AWAITING_DECISION:
            ctx = self._ctx
            if ctx.cancel_requested or ctx.all_resolved() or ctx.lost is not None:
                return ExternalEventMode.POLL
            return ExternalEventMode.BLOCK
        return ExternalEventMode.IGNORE

    def on_external_event_channel_closed(self, state: ExecState) -> ExecEvent | None:
        return None

    def event_for_action_error(self, msg: str) -> ExecEvent:
        ctx = self._ctx
        if ctx.lost is not None and not ctx.abandoned:
            # A save refused for a lost lease (or any action failing after the loss).
            return OwnershipLost(ctx.lost)
        return ExecutorFailed(msg)
