"""The supervision tree's FSM: which event moves the tree where, and what it records.

Handlers only decide (the restart rules live in :mod:`._tree_decisions`); actions start
children, record restarts and serve requests; the tree's ``dispatch_state`` does the
waiting work of each state (starting the spec's children, receiving events, stopping
children). The spec is strict, so an event arriving where the tree never expects it is
a loud error, not a silent drop.
"""

from __future__ import annotations

import anyio

from ..fsm import FsmBuilder, FsmSpec, Transition, goto, stay
from ._tree_actions import (
    EndChild,
    GiveUp,
    RecordRestart,
    RecordStartFailure,
    ServeRequest,
    StartChildren,
    TreeAction,
)
from ._tree_context import TreeContext
from ._tree_decisions import Ended, IntensityExceeded, decide_exit, split_due
from ._tree_requests import ChildRequest, DeleteChild, RestartChild, StartChild, TerminateChild
from ._tree_states import (
    ChildExited,
    ChildrenStarted,
    ChildrenStopped,
    Escalating,
    Failed,
    RestartDue,
    Restarting,
    Running,
    Shutdown,
    ShuttingDown,
    StartFailed,
    Starting,
    Stopped,
    TreeEvent,
    TreeFault,
    TreeState,
)
from ._tree_values import RestartStrategy

TreeTransition = Transition[TreeState, TreeAction]


def children_started(state: Starting, event: ChildrenStarted, ctx: TreeContext) -> TreeTransition:
    return goto(Running())


def start_failed(state: Starting, event: StartFailed, ctx: TreeContext) -> TreeTransition:
    return goto(Escalating(f"failed to start child {event.child_id!r}"), RecordStartFailure(event))


def shut_down(state: TreeState, event: Shutdown, ctx: TreeContext) -> TreeTransition:
    return goto(ShuttingDown())


def child_exited(
    state: Running | Restarting, event: ChildExited, ctx: TreeContext
) -> TreeTransition:
    pending = state.pending if isinstance(state, Restarting) else ()
    decision = decide_exit(ctx, event, pending, anyio.current_time())
    if decision is None:
        return stay()
    if isinstance(decision, Ended):
        actions = (EndChild(decision.child_id, True),) if decision.forget else ()
        if decision.auto_shutdown is not None:
            return goto(ShuttingDown(decision.auto_shutdown), *actions)
        return stay(*actions)
    if isinstance(decision, IntensityExceeded):
        return goto(
            Escalating(f"restart intensity exceeded by child {event.child_id!r}"),
            GiveUp(decision.record),
        )
    return goto(Restarting(decision.pending, decision.stopping), RecordRestart(decision.record))


def restart_due(state: Restarting, event: RestartDue, ctx: TreeContext) -> TreeTransition:
    due, waiting = split_due(state.pending, anyio.current_time())
    grouped = not ctx.pooled and ctx.strategy is not RestartStrategy.ONE_FOR_ONE
    return goto(Restarting(waiting) if waiting else Running(), StartChildren(due, grouped))


def group_stopped(state: Restarting, event: ChildrenStopped, ctx: TreeContext) -> TreeTransition:
    return goto(Restarting(state.pending))


def serve_request(
    state: Running | Restarting, event: ChildRequest, ctx: TreeContext
) -> TreeTransition:
    """Requests are served by an action; terminating a child that waits to restart
    also takes it off the pending restarts."""
    if isinstance(event, TerminateChild) and isinstance(state, Restarting):
        pending = tuple(p for p in state.pending if p.child_id != event.child_id)
        if len(pending) != len(state.pending):
            following: TreeState = Restarting(pending, state.stopping) if pending else Running()
            return goto(following, ServeRequest(event))
    return stay(ServeRequest(event))


def all_stopped(state: ShuttingDown, event: ChildrenStopped, ctx: TreeContext) -> TreeTransition:
    return goto(Stopped(state.reason, tuple(ctx.abandoned)))


def escalated(state: Escalating, event: ChildrenStopped, ctx: TreeContext) -> TreeTransition:
    return goto(Failed(state.reason, tuple(ctx.abandoned)))


def fault(state: TreeState, event: TreeFault, ctx: TreeContext) -> TreeTransition:
    """A fault while children may still run escalates (stop them, then fail); one while
    they are already being stopped fails at once (the run's end cancels the rest)."""
    if isinstance(state, ShuttingDown | Escalating):
        return goto(Failed(event.message, tuple(ctx.abandoned)))
    return goto(Escalating(event.message))


_REQUESTS = (StartChild, TerminateChild, RestartChild, DeleteChild)

_SPEC: FsmSpec[TreeState, TreeEvent, TreeContext, TreeAction] | None = None


def tree_spec() -> FsmSpec[TreeState, TreeEvent, TreeContext, TreeAction]:
    """The supervision tree's spec, built once."""
    global _SPEC
    if _SPEC is None:
        builder = FsmBuilder[TreeState, TreeEvent, TreeContext, TreeAction](
            states=TreeState, events=TreeEvent, initial=Starting, name="supervision tree"
        )
        builder.when(Starting).on(ChildrenStarted, children_started, to=[Running]).on(
            StartFailed, start_failed, to=[Escalating]
        ).on(Shutdown, shut_down, to=[ShuttingDown]).on(TreeFault, fault, to=[Escalating])
        running = builder.when(Running)
        running.on(ChildExited, child_exited, to=[Restarting, Escalating, ShuttingDown])
        for request in _REQUESTS:
            running.on(request, serve_request, to=[Running])
        running.on(Shutdown, shut_down, to=[ShuttingDown]).on(TreeFault, fault, to=[Escalating])
        restarting = builder.when(Restarting)
        restarting.on(ChildExited, child_exited, to=[Restarting, Escalating, ShuttingDown])
        restarting.on(RestartDue, restart_due, to=[Running, Restarting])
        restarting.on(ChildrenStopped, group_stopped, to=[Restarting])
        for request in _REQUESTS:
            # Only terminating a child can empty the pending restarts.
            targets = [Restarting, Running] if request is TerminateChild else [Restarting]
            restarting.on(request, serve_request, to=targets)
        restarting.on(Shutdown, shut_down, to=[ShuttingDown]).on(TreeFault, fault, to=[Escalating])
        builder.when(ShuttingDown).on(ChildrenStopped, all_stopped, to=[Stopped]).on(
            TreeFault, fault, to=[Failed]
        )
        builder.when(Escalating).on(ChildrenStopped, escalated, to=[Failed]).on(
            TreeFault, fault, to=[Failed]
        )
        _SPEC = builder.strict().build()
    return _SPEC
