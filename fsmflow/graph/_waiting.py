"""Waiting at interrupts: pausing, taking values and decisions, timeouts, resuming.

A run with a handle *waits*: it checkpoints the pause (so another process can take over),
reports each interrupt (:class:`BarrierWaiting` for a barrier, :class:`InterruptWaiting`
otherwise), starts the barriers' timers, and takes values as they arrive — each one
recorded in the frame at once (:func:`~fsmflow.graph._frame.release`) and, while others
are still missing, checkpointed. When every interrupt has its value the step runs again.
A run without a handle *stops*: it checkpoints the pause and ends ``INTERRUPTED``.

Decisions and values that arrive before their interrupt are kept in a
:class:`DecisionBox`: an exact one is used once, a barrier decision addressed to a node
name (a wildcard) serves every later occurrence of that barrier.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import attrs

from ._checkpoint import CheckpointTrigger
from ._commit import save
from ._errors import ExecutorFault
from ._events import (
    BarrierResolved,
    BarrierWaiting,
    ErrorObserved,
    GraphInterrupted,
    InterruptResumed,
    InterruptWaiting,
)
from ._frame import find_pending, release
from ._fsm import Decide, InterruptTimedOut, Paused, Resume
from ._interrupts import BarrierId, Interrupt, InterruptId, InterruptKind
from ._nodes import BarrierDefault, BarrierNode, SubgraphNode
from ._results import Approve, Decision, Reject, Skip

if TYPE_CHECKING:
    from ._context import RunContext
    from ._graph import Graph

_NOTHING: Any = object()


class DecisionBox:
    """Decisions and values that arrived before their interrupt."""

    def __init__(self) -> None:
        self.exact: dict[BarrierId, Decision] = {}
        self.wildcard: dict[str, Decision] = {}
        self.values: dict[InterruptId, Any] = {}

    def put_decision(self, target: BarrierId | str, decision: Decision) -> None:
        if isinstance(target, BarrierId):
            self.exact[target] = decision
        else:
            self.wildcard[target] = decision

    def take(self, interrupt: Interrupt) -> Any:
        """The value kept for ``interrupt`` (consumed unless a wildcard), or nothing."""
        found = self.values.pop(interrupt.id, _NOTHING)
        barrier = interrupt.barrier_id
        if found is _NOTHING and barrier is not None and not interrupt.id.path:
            found = self.exact.pop(barrier, _NOTHING)
            if found is _NOTHING:
                found = self.wildcard.get(barrier.node, _NOTHING)
        return found


@attrs.define(slots=True)
class Waiter:
    """An interrupt the run waits on, and its barrier's timer."""

    interrupt: Interrupt
    timer: anyio.CancelScope | None = None

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()


def _trigger(interrupts: tuple[Interrupt, ...]) -> CheckpointTrigger:
    if any(i.kind is InterruptKind.BARRIER for i in interrupts):
        return CheckpointTrigger.BARRIER
    return CheckpointTrigger.INTERRUPT


async def open_wait(ctx: RunContext[Any], paused: Paused) -> None:
    frame = ctx.frame
    frame.interrupts = list(paused.interrupts)
    checkpointer = ctx.checkpointer
    if checkpointer is not None and checkpointer.policy.on_barrier:
        # Saved before anyone hears of the pause: whoever answers may be talking to a
        # process that dies, and another one must be able to wait in its place.
        await save(ctx, _trigger(paused.interrupts), "waiting", mark=True)
    for interrupt in paused.interrupts:
        waiter = Waiter(interrupt)
        ctx.waiters[interrupt.id] = waiter
        if interrupt.barrier_id is not None:
            await ctx.emit(
                BarrierWaiting(
                    trace_id=ctx.trace_id,
                    span_id=ctx.root_span,
                    parent_span_id=ctx.root_span,
                    barrier_id=interrupt.barrier_id,
                    timeout=interrupt.timeout,
                )
            )
        else:
            await ctx.emit(
                InterruptWaiting(trace_id=ctx.trace_id, span_id=ctx.root_span, interrupt=interrupt)
            )
        if interrupt.timeout is not None and ctx.timers is not None:
            waiter.timer = anyio.CancelScope()
            ctx.timers.start_soon(_timer, ctx, waiter, ctx.now() + interrupt.timeout)
    for interrupt in list(frame.interrupts):
        value = ctx.decisions.take(interrupt)
        if value is not _NOTHING:
            await _take(ctx, interrupt, value, timed_out=False)


async def _timer(ctx: RunContext[Any], waiter: Waiter, deadline: float) -> None:
    """Tell the run that ``waiter`` timed out, unless it is answered first (which cancels
    this task). A late message for an answered interrupt is ignored."""
    assert waiter.timer is not None and ctx.timer_sender is not None
    with waiter.timer:
        await anyio.sleep_until(deadline)
        await ctx.timer_sender.send(InterruptTimedOut(waiter.interrupt.id))


async def _take(ctx: RunContext[Any], interrupt: Interrupt, value: Any, *, timed_out: bool) -> None:
    frame = ctx.frame
    release(frame, interrupt, value)
    waiter = ctx.waiters.pop(interrupt.id, None)
    if waiter is not None:
        waiter.cancel()
    if ctx.debug:
        if interrupt.barrier_id is not None:
            await ctx.emit(
                BarrierResolved(
                    trace_id=ctx.trace_id,
                    span_id=ctx.root_span,
                    parent_span_id=ctx.root_span,
                    barrier_id=interrupt.barrier_id,
                    decision=value,
                    timed_out=timed_out,
                )
            )
        else:
            await ctx.emit(
                InterruptResumed(
                    trace_id=ctx.trace_id,
                    span_id=ctx.root_span,
                    interrupt_id=interrupt.id,
                    value=value,
                )
            )
    checkpointer = ctx.checkpointer
    if frame.interrupts and checkpointer is not None and checkpointer.policy.on_barrier:
        await save(ctx, CheckpointTrigger.RESUME, "waiting", mark=True)


async def _observe(ctx: RunContext[Any], message: str) -> None:
    await ctx.emit(
        ErrorObserved(trace_id=ctx.trace_id, span_id=ctx.root_span, node=None, message=message)
    )


async def accept(ctx: RunContext[Any], event: Decide | Resume | InterruptTimedOut) -> None:
    frame = ctx.frame
    if isinstance(event, InterruptTimedOut):
        waiter = ctx.waiters.get(event.interrupt_id)
        if waiter is not None and any(i.id == event.interrupt_id for i in frame.interrupts):
            default = default_decision(ctx.graph, waiter.interrupt)
            await _take(ctx, waiter.interrupt, default, timed_out=True)
        return
    if isinstance(event, Decide):
        if isinstance(event.target, str):
            ctx.decisions.put_decision(event.target, event.decision)  # later occurrences
        matched = [i for i in find_pending(frame, event.target) if i.kind is InterruptKind.BARRIER]
        if not matched:
            ctx.decisions.put_decision(event.target, event.decision)
        for interrupt in matched:
            await _take(ctx, interrupt, event.decision, timed_out=False)
        return
    matched = find_pending(frame, event.target)
    if event.target is None and len(matched) > 1:
        shown = ", ".join(str(i.id) for i in matched)
        await _observe(ctx, f"a value without an interrupt id while {shown} wait; say which")
        return
    if not matched:
        if isinstance(event.target, InterruptId):
            ctx.decisions.values[event.target] = event.value
        else:
            await _observe(ctx, f"no interrupt waits for {event.target!s}: value ignored")
        return
    for interrupt in matched:
        await _take(ctx, interrupt, event.value, timed_out=False)


async def stash(ctx: RunContext[Any], event: Decide | Resume) -> None:
    """A decision or value arrived while the run works: keep it for its interrupt."""
    if isinstance(event, Decide):
        ctx.decisions.put_decision(event.target, event.decision)
    elif isinstance(event.target, InterruptId):
        ctx.decisions.values[event.target] = event.value
    else:
        await _observe(ctx, f"no interrupt waits for {event.target!s}: value ignored")


async def release_wait(ctx: RunContext[Any]) -> None:
    ctx.stop_timers()
    checkpointer = ctx.checkpointer
    if checkpointer is not None and checkpointer.policy.on_barrier:
        await save(ctx, CheckpointTrigger.RESUME, "running", mark=True)


async def save_pause(ctx: RunContext[Any], paused: Paused) -> None:
    """Record the pause of a run that stops at it; it must reach the store, or nothing
    could continue the run (the run then fails instead)."""
    ctx.frame.interrupts = list(paused.interrupts)
    ctx.stopping = True
    if ctx.checkpointer is not None:
        try:
            await save(
                ctx, _trigger(paused.interrupts), "waiting", mark=True, strict=True, last=True
            )
        except Exception as exc:
            ctx.pause_error = exc


def pause_failure(ctx: RunContext[Any]) -> ExecutorFault:
    error = ctx.pause_error
    return ExecutorFault(
        f"the run paused at {', '.join(str(i.id) for i in ctx.frame.interrupts)} but the "
        f"checkpoint of the pause failed: {type(error).__name__}: {error}"
    )


async def stop(ctx: RunContext[Any]) -> None:
    ctx.stopping = False
    ctx.result = result = ctx.result_now(tuple(ctx.frame.interrupts))
    if ctx.sink is not None:
        await ctx.emit(
            GraphInterrupted(trace_id=ctx.trace_id, span_id=ctx.root_span, result=result)
        )


def default_decision(graph: Graph[Any], interrupt: Interrupt) -> Decision:
    """What a barrier applies when nobody decided in time."""
    for part in interrupt.id.path:
        found = graph.nodes[part]
        assert isinstance(found, SubgraphNode)
        graph = found.graph
    node = graph.nodes[interrupt.id.node]
    assert isinstance(node, BarrierNode)
    if node.default is BarrierDefault.APPROVE:
        return Approve()
    if node.default is BarrierDefault.SKIP:
        return Skip()
    return Reject(f"no decision within {node.timeout}s")
