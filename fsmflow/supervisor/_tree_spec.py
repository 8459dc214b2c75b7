"""The supervision tree's FSM: which event moves the tree where, and what it records.

Handlers only decide (the restart rules live in :meth:`TreeContext.plan_restart`);
actions start children and record restarts; the tree's ``dispatch_state`` does the
waiting work of each state (receiving events, stopping children). The spec is strict,
so an event arriving where the tree never expects it is a loud error, not a silent drop.
"""

from __future__ import annotations

import anyio

from ..fsm import FsmBuilder, FsmSpec, Transition, goto, stay
from ._tree_context import GiveUp, RecordRestart, StartChildren, TreeAction, TreeContext
from ._tree_states import (
    Begin,
    ChildExited,
    ChildrenStopped,
    Escalating,
    Failed,
    RestartDue,
    Restarting,
    Running,
    Shutdown,
    ShuttingDown,
    Starting,
    Stopped,
    TreeEvent,
    TreeFault,
    TreeState,
)

TreeTransition = Transition[TreeState, TreeAction]


def start_all(state: Starting, event: Begin, ctx: TreeContext) -> TreeTransition:
    return goto(Running(), StartChildren(ctx.child_ids))


def shut_down(state: TreeState, event: Shutdown, ctx: TreeContext) -> TreeTransition:
    return goto(ShuttingDown())


def child_exited(
    state: Running | Restarting, event: ChildExited, ctx: TreeContext
) -> TreeTransition:
    pending = state.pending if isinstance(state, Restarting) else ()
    plan = ctx.plan_restart(event, pending, anyio.current_time())
    if plan is None:
        return stay()
    if plan.give_up:
        return goto(
            Escalating(f"restart intensity exceeded by child {event.child_id!r}"),
            GiveUp(plan.record),
        )
    return goto(Restarting(plan.pending, plan.stopping), RecordRestart(plan.record))


def restart_due(state: Restarting, event: RestartDue, ctx: TreeContext) -> TreeTransition:
    due, waiting = ctx.split_due(state.pending, anyio.current_time())
    return goto(Restarting(waiting) if waiting else Running(), StartChildren(due))


def group_stopped(state: Restarting, event: ChildrenStopped, ctx: TreeContext) -> TreeTransition:
    return goto(Restarting(state.pending))


def all_stopped(state: ShuttingDown, event: ChildrenStopped, ctx: TreeContext) -> TreeTransition:
    return goto(Stopped())


def escalated(state: Escalating, event: ChildrenStopped, ctx: TreeContext) -> TreeTransition:
    return goto(Failed(state.reason))


def fault(state: TreeState, event: TreeFault, ctx: TreeContext) -> TreeTransition:
    """A fault while children may still run escalates (stop them, then fail); one while
    they are already being stopped fails at once (the run's end cancels the rest)."""
    if isinstance(state, ShuttingDown | Escalating):
        return goto(Failed(event.message))
    return goto(Escalating(event.message))


_SPEC: FsmSpec[TreeState, TreeEvent, TreeContext, TreeAction] | None = None


def tree_spec() -> FsmSpec[TreeState, TreeEvent, TreeContext, TreeAction]:
    """The supervision tree's spec, built once."""
    global _SPEC
    if _SPEC is None:
        builder = FsmBuilder[TreeState, TreeEvent, TreeContext, TreeAction](
            states=TreeState, events=TreeEvent, initial=Starting, name="supervision tree"
        )
        builder.when(Starting).on(Begin, start_all, to=[Running]).on(
            Shutdown, shut_down, to=[ShuttingDown]
        ).on(TreeFault, fault, to=[Escalating])
        builder.when(Running).on(ChildExited, child_exited, to=[Restarting, Escalating]).on(
            Shutdown, shut_down, to=[ShuttingDown]
        ).on(TreeFault, fault, to=[Escalating])
        builder.when(Restarting).on(ChildExited, child_exited, to=[Restarting, Escalating]).on(
            RestartDue, restart_due, to=[Running, Restarting]
        ).on(ChildrenStopped, group_stopped, to=[Restarting]).on(
            Shutdown, shut_down, to=[ShuttingDown]
        ).on(TreeFault, fault, to=[Escalating])
        builder.when(ShuttingDown).on(ChildrenStopped, all_stopped, to=[Stopped]).on(
            TreeFault, fault, to=[Failed]
        )
        builder.when(Escalating).on(ChildrenStopped, escalated, to=[Failed]).on(
            TreeFault, fault, to=[Failed]
        )
        _SPEC = builder.strict().build()
    return _SPEC
