"""The actions of a supervision tree's FSM: the effects its handlers decide on.

Each is a frozen value whose ``execute`` changes the tree's context (the only place,
besides the tree's dispatch, where it changes). Requests made through a handle are
served here; a refused request is answered to its caller, never turned into a failure
of the tree.
"""

from __future__ import annotations

from typing import TypeAlias

import attrs

from ._tree_context import Child, TreeContext
from ._tree_errors import (
    ChildAlreadyPresent,
    ChildNotFound,
    ChildNotStopped,
    ChildStartError,
    TreeNotRunning,
    TreeRequestError,
)
from ._tree_requests import ChildRequest, DeleteChild, RestartChild, StartChild, TerminateChild
from ._tree_states import StartFailed
from ._tree_values import ChildState, ChildStatus, RestartRecord


@attrs.frozen
class StartChildren:
    """Start the children whose restart is due, in start order."""

    child_ids: tuple[str, ...]
    #: A grouped restart stops at a child that cannot start.
    grouped: bool = False

    async def execute(self, ctx: TreeContext) -> None:
        await ctx.restart(self.child_ids, grouped=self.grouped)


@attrs.frozen
class RecordRestart:
    """Add a restart to the history and the intensity window; its children are now
    pending."""

    record: RestartRecord

    async def execute(self, ctx: TreeContext) -> None:
        ctx.record(self.record)


@attrs.frozen
class GiveUp:
    """Record the exit that exceeded the restart intensity; the tree will fail."""

    record: RestartRecord

    async def execute(self, ctx: TreeContext) -> None:
        ctx.give_up(self.record)


@attrs.frozen
class EndChild:
    """A child ended for good; forget it if it was temporary or pooled."""

    child_id: str
    forget: bool

    async def execute(self, ctx: TreeContext) -> None:
        if self.forget:
            ctx.forget(self.child_id)


@attrs.frozen
class RecordStartFailure:
    """Remember which child made the tree's start fail, for the error its run raises."""

    failure: StartFailed

    async def execute(self, ctx: TreeContext) -> None:
        ctx.start_failure = (self.failure.child_id, self.failure.error)


@attrs.frozen
class ServeRequest:
    """Carry out a request made through the tree's handle and answer it."""

    request: ChildRequest

    async def execute(self, ctx: TreeContext) -> None:
        reply = self.request.reply
        try:
            result = await _serve(ctx, self.request)
        except TreeRequestError as refused:
            reply.fail(refused)
        except Exception as bug:
            reply.fail(bug)
            raise
        except BaseException:
            reply.fail(TreeNotRunning(ctx.tree))
            raise
        else:
            reply.resolve(result)


async def _serve(ctx: TreeContext, request: ChildRequest) -> ChildStatus | None:
    match request:
        case StartChild(spec=spec):
            existing = ctx.children.get(spec.id)
            if existing is not None:
                raise ChildAlreadyPresent(ctx.tree, spec.id, existing.state())
            child = ctx.add(spec)
            failure = await ctx.start_run(child)
            if failure is not None:
                assert child.run is not None
                child.run.exit_expected = True
                ctx.forget(spec.id)
                raise ChildStartError(ctx.tree, spec.id, failure.error)
            return child.status()
        case TerminateChild(child_id=child_id):
            child = _find(ctx, child_id)
            child.restart_pending = False
            await ctx.stop_run(child)
            if ctx.forgets(child):
                ctx.forget(child_id)
            return None
        case RestartChild(child_id=child_id):
            child = _find(ctx, child_id)
            state = child.state()
            if state is not ChildState.STOPPED:
                raise ChildNotStopped(ctx.tree, child_id, state)
            failure = await ctx.start_run(child)
            if failure is not None:
                assert child.run is not None
                child.run.exit_expected = True
                raise ChildStartError(ctx.tree, child_id, failure.error)
            return child.status()
        case DeleteChild(child_id=child_id):
            child = _find(ctx, child_id)
            state = child.state()
            if state is not ChildState.STOPPED:
                raise ChildNotStopped(ctx.tree, child_id, state)
            ctx.forget(child_id)
            return None


def _find(ctx: TreeContext, child_id: str) -> Child:
    child = ctx.children.get(child_id)
    if child is None:
        raise ChildNotFound(ctx.tree, child_id)
    return child


TreeAction: TypeAlias = (
    StartChildren | RecordRestart | GiveUp | EndChild | RecordStartFailure | ServeRequest
)
