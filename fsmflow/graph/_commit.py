"""Committing steps and ending runs: the execution FSM's actions that change the state,
save checkpoints by policy and emit the event stream.

Each saved checkpoint is reported by exactly one :class:`CheckpointSaved` (with its
number); a save the store refuses is reported as :class:`ErrorObserved`, the run goes on,
and the next checkpoint is a full one — except a save refused for a lost lease
(:class:`~fsmflow.store.LeaseLost`), which raises: the action fails, the FSM gets
``OwnershipLost`` and the run ends ``LEASE_LOST`` without writing anything more.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..store import LeaseLost
from ._checkpoint import CheckpointTrigger
from ._errors import ThreadLeaseLost
from ._events import (
    CheckpointSaved,
    ErrorObserved,
    ExecutionEntry,
    GraphCancelled,
    GraphCompleted,
    GraphFailed,
    GraphLeaseLost,
    GraphStarted,
    NodeEnded,
    StateChanged,
    StateValues,
    StepUpdates,
)
from ._fsm import NodeDone, StepFailed
from ._interrupts import Interrupt, InterruptId, InterruptKind

if TYPE_CHECKING:
    from ._context import RunContext


async def save(
    ctx: RunContext[Any],
    trigger: CheckpointTrigger,
    status: str,
    *,
    mark: bool = False,
    strict: bool = False,
    last: bool = False,
) -> None:
    """Save a checkpoint now. A store error is reported as an observed error (the run
    goes on, and the next checkpoint is a full one) — or raised, when ``strict``. A lost
    lease is always raised, and once it is lost nothing is written any more. The
    ``last`` checkpoint of a run releases its lease in the same batch."""
    checkpointer = ctx.checkpointer
    assert checkpointer is not None
    if ctx.lost is not None:
        raise ctx.lost
    lease = ctx.lease if last else None
    try:
        seq, incremental = await checkpointer.save(
            ctx.state,
            ctx.step,
            ctx.run_start,
            ctx.frame,
            ctx.occurrences,
            trigger,
            status,
            mark=mark,
            extra=() if lease is None else lease.release_ops(),
        )
    except LeaseLost as exc:
        ctx.lose(exc)
        raise
    except Exception as exc:
        checkpointer.chain = None
        if strict:
            raise
        await ctx.emit(
            ErrorObserved(
                trace_id=ctx.trace_id,
                span_id=ctx.root_span,
                node=None,
                message=f"checkpoint at step {ctx.step} failed: {type(exc).__name__}: {exc}",
            )
        )
        return
    if lease is not None:
        lease.gave_up()
    if ctx.debug:
        await ctx.emit(
            CheckpointSaved(
                trace_id=ctx.trace_id,
                span_id=ctx.root_span,
                step=ctx.step,
                next_node=ctx.frame.next_node,
                trigger=trigger.value,
                incremental=incremental,
                checkpoint=seq,
            )
        )


async def announce(ctx: RunContext[Any]) -> None:
    ctx.started_at = ctx.now()
    if ctx.debug:
        await ctx.emit(
            GraphStarted(
                trace_id=ctx.trace_id,
                span_id=ctx.root_span,
                graph=ctx.graph.name,
                graph_hash=ctx.graph.hash,
                step=ctx.step,
                resumed=ctx.resumed,
                thread_id=ctx.thread_id,
            )
        )
    if ctx.values:
        await _values(ctx)
    trigger = ctx.first_checkpoint
    if trigger is not None and ctx.checkpointer is not None:
        await save(ctx, trigger, "running", mark=True)


async def _values(ctx: RunContext[Any]) -> None:
    ctx.own.release()  # the consumer holds this state now
    await ctx.emit(
        StateValues(trace_id=ctx.trace_id, span_id=ctx.root_span, step=ctx.step, state=ctx.state)
    )


async def commit(ctx: RunContext[Any], done: NodeDone) -> None:
    ctx.state = done.state
    ctx.step = step = ctx.step + 1
    name = done.node
    if done.barrier:
        ctx.occurrences[name] = ctx.occurrences.get(name, 0) + 1
    ctx.log.append(ExecutionEntry(step, name, done.duration, True))
    frame = ctx.frame
    frame.clear_step()
    nxt = done.next
    if nxt is None or type(nxt) is str:
        frame.next_node = nxt
        if frame.sends is not None:
            frame.sends = None
    else:
        frame.next_node = nxt.node  # type: ignore[union-attr]
        frame.sends = nxt.sends  # type: ignore[union-attr]
    if nxt is not None and name in ctx.graph.interrupt_after:
        frame.after = Interrupt(InterruptId(name, step), InterruptKind.AFTER)
    if ctx.sink is not None:
        await _report(ctx, done)
    checkpointer = ctx.checkpointer
    if checkpointer is not None:
        checkpointer.record([delta for _, delta in done.deltas])
        if nxt is not None:
            policy = checkpointer.policy
            trigger: CheckpointTrigger | None = None
            if policy.every_step:
                trigger = CheckpointTrigger.STEP
            elif done.barrier and policy.on_barrier:
                trigger = CheckpointTrigger.BARRIER
            elif policy.adaptive is not None and policy.adaptive.wants(
                done.duration, done.cost, done.side_effects
            ):
                trigger = CheckpointTrigger.ADAPTIVE
            if trigger is not None:
                await save(ctx, trigger, "running")
    if ctx.on_commit is not None:
        await ctx.on_commit(ctx)


async def _report(ctx: RunContext[Any], done: NodeDone) -> None:
    if ctx.debug:
        for task, delta in done.deltas:
            if delta:
                await ctx.emit(
                    StateChanged(
                        trace_id=ctx.trace_id,
                        span_id=done.span,
                        parent_span_id=ctx.root_span,
                        node=done.node,
                        delta=delta,
                        branch=task or None,
                    )
                )
        for warning in done.warnings:
            await ctx.emit(
                ErrorObserved(
                    trace_id=ctx.trace_id,
                    span_id=done.span,
                    parent_span_id=ctx.root_span,
                    node=done.node,
                    message=warning,
                )
            )
        await ctx.emit(
            NodeEnded(
                trace_id=ctx.trace_id,
                span_id=done.span,
                parent_span_id=ctx.root_span,
                node=done.node,
                step=ctx.step,
                duration=done.duration,
                success=True,
            )
        )
    if ctx.updates:
        await ctx.emit(
            StepUpdates(
                trace_id=ctx.trace_id,
                span_id=done.span,
                parent_span_id=ctx.root_span,
                step=ctx.step,
                node=done.node,
                updates=tuple((task, delta) for task, delta in done.deltas),
            )
        )
    if ctx.values:
        await _values(ctx)


async def save_child_progress(parent: RunContext[Any]) -> None:
    """A subgraph running inside ``parent`` committed a step: with an every-step
    policy, ``parent`` checkpoints (its frame carries the subgraph's run)."""
    checkpointer = parent.checkpointer
    if checkpointer is not None and checkpointer.policy.every_step:
        await save(parent, CheckpointTrigger.STEP, "running")
    if parent.on_commit is not None:
        await parent.on_commit(parent)


async def complete(ctx: RunContext[Any], already: bool) -> None:
    frame = ctx.frame
    frame.next_node = None
    frame.sends = None
    checkpointer = ctx.checkpointer
    if not already and checkpointer is not None and checkpointer.policy.on_completion:
        await save(ctx, CheckpointTrigger.COMPLETION, "completed", mark=True, last=True)
    await release(ctx)
    ctx.result = result = ctx.result_now()
    if ctx.sink is not None:
        await ctx.emit(GraphCompleted(trace_id=ctx.trace_id, span_id=ctx.root_span, result=result))


async def fail(ctx: RunContext[Any], failure: StepFailed) -> None:
    ctx.stop_timers()
    ctx.error = failure.error
    if failure.node is not None:
        duration = ctx.now() - failure.started
        ctx.log.append(ExecutionEntry(ctx.step + 1, failure.node, duration, False))
        if ctx.debug and failure.span is not None:
            await ctx.emit(
                NodeEnded(
                    trace_id=ctx.trace_id,
                    span_id=failure.span,
                    parent_span_id=ctx.root_span,
                    node=failure.node,
                    step=ctx.step + 1,
                    duration=duration,
                    success=False,
                )
            )
    checkpointer = ctx.checkpointer
    if checkpointer is not None and checkpointer.policy.on_failure:
        await save(ctx, CheckpointTrigger.FAILURE, "failed", mark=True, last=True)
    await release(ctx)
    ctx.own.release()
    if ctx.sink is not None:
        await ctx.emit(
            GraphFailed(
                trace_id=ctx.trace_id,
                span_id=ctx.root_span,
                error=failure.error,
                state=ctx.state,
                step=ctx.step,
            )
        )


def where_now(ctx: RunContext[Any]) -> str:
    """Where the run is: the first interrupt it waits on, or its next node."""
    frame = ctx.frame
    if frame.interrupts:
        first = frame.interrupts[0]
        return str(first.barrier_id) if first.barrier_id is not None else str(first.id)
    return frame.next_node or "the end"


async def cancelled(ctx: RunContext[Any]) -> None:
    where = where_now(ctx)
    ctx.stop_timers()
    ctx.cancelled_at = where
    checkpointer = ctx.checkpointer
    if checkpointer is not None and checkpointer.policy.on_failure:
        await save(ctx, CheckpointTrigger.CANCEL, "cancelled", mark=True, last=True)
    await release(ctx)
    ctx.own.release()
    if ctx.sink is not None:
        await ctx.emit(
            GraphCancelled(
                trace_id=ctx.trace_id,
                span_id=ctx.root_span,
                where=where,
                state=ctx.state,
                step=ctx.step,
            )
        )


async def save_requested(ctx: RunContext[Any]) -> None:
    checkpointer = ctx.checkpointer
    if checkpointer is None or not checkpointer.policy.on_request:
        return
    waiting = bool(ctx.frame.interrupts)
    await save(ctx, CheckpointTrigger.REQUEST, "waiting" if waiting else "running", mark=waiting)


async def release(ctx: RunContext[Any]) -> None:
    """The run ended: give its lease up now (unless its last checkpoint did), so a
    standby takes over at once, even while the caller still holds the stream open."""
    lease = ctx.lease
    checkpointer = ctx.checkpointer
    if lease is not None and checkpointer is not None and not lease.released:
        await lease.release(checkpointer.writer.store)


async def abandon(ctx: RunContext[Any]) -> None:
    """End a run that lost its lease: nothing is written; the error and the terminal
    event say so."""
    lost = ctx.lost
    assert lost is not None
    ctx.abandoned = True
    ctx.stop_timers()
    ctx.cancelled_at = None
    ctx.result = None
    ctx.error = error = ThreadLeaseLost(ctx.thread_id, lost)
    ctx.own.release()
    if ctx.sink is not None:
        await ctx.emit(
            GraphLeaseLost(trace_id=ctx.trace_id, span_id=ctx.root_span, error=error, step=ctx.step)
        )
