"""The tasks of a step: one node function call each, with retries, a timeout and the
interrupt scope; several of them side by side (parallel branches, fan-out inputs); and a
subgraph's whole run.

A task ends in one of three outcomes: :class:`Done` (its result), :class:`Interrupted`
(it called ``interrupt`` and has no value for it yet) or :class:`Failed` (its last attempt
raised). Tasks of one step run in a task group; a failure under the fail-fast strategy
cancels the others, which then have no outcome and run again when the step is retried.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import anyio
import anyio.abc
import attrs

from . import _commit
from ._errors import NodeTimedOut
from ._events import BranchCompleted, NodeRetrying, ParallelCompleted, ParallelStarted
from ._execution import GraphExecution
from ._frame import ChildRun, Frame
from ._interrupts import GraphInterrupt, Interrupt, TaskScope, enter_task, leave_task
from ._nodes import NodeOptions, SubgraphNode
from ._options import RunOptions
from ._results import Fallback, NodeOutput
from ._state import Delta

if TYPE_CHECKING:
    from ._context import RunContext


@attrs.frozen(slots=True)
class Done:
    key: str
    result: Any
    attempts: int = 1


@attrs.frozen(slots=True)
class Interrupted:
    key: str
    #: The index of the ``interrupt`` call and its payload (a plain task), or the
    #: subgraph's pending interrupts (already named from this run's point of view).
    index: int = 0
    payload: Any = None
    inner: tuple[Interrupt, ...] = ()


@attrs.frozen(slots=True)
class Failed:
    key: str
    error: BaseException
    attempts: int = 1


Outcome: TypeAlias = Done | Interrupted | Failed


@attrs.frozen(slots=True)
class TaskSpec:
    """One task to run: ``fn(arg)`` for node ``node`` under task key ``key``."""

    key: str
    node: str
    fn: Callable[[Any], Any] = attrs.field(eq=False)
    is_async: bool
    arg: Any = attrs.field(eq=False)
    options: NodeOptions
    #: Shown in branch events (a branch name, ``node[i]`` for a fan-out input).
    label: str = ""


def as_delta(result: Any) -> Delta:
    """The delta of a branch or fan-out task's result; raises ``TypeError``."""
    if result is None:
        return {}
    if isinstance(result, NodeOutput | Fallback):
        return result.update
    if isinstance(result, Mapping):
        return result
    raise TypeError(
        f"a node returns a mapping, None, NodeOutput or Fallback, not {type(result).__name__}"
    )


async def call(ctx: RunContext[Any], spec: TaskSpec, span: str) -> Outcome:
    """Run one task to its outcome, retrying as its node's policy allows."""
    resumes = ctx.frame.resumes.get(spec.key)
    scope = TaskScope(
        resumes if resumes is not None else [],
        ctx.codec,
        ctx.writer_for(spec.node, span),
        spec.node,
    )
    token = enter_task(scope)
    retry = spec.options.retry
    timeout = spec.options.timeout
    fn = spec.fn
    attempt = 0
    try:
        while True:
            attempt += 1
            scope.index = 0
            try:
                if not spec.is_async:
                    return Done(spec.key, fn(spec.arg), attempt)
                if timeout is None:
                    return Done(spec.key, await cast(Awaitable[Any], fn(spec.arg)), attempt)
                with anyio.move_on_after(timeout) as deadline:
                    result = await cast(Awaitable[Any], fn(spec.arg))
                if deadline.cancelled_caught:
                    raise NodeTimedOut(spec.node, timeout)
                return Done(spec.key, result, attempt)
            except GraphInterrupt as interrupted:
                return Interrupted(spec.key, interrupted.index, interrupted.payload)
            except Exception as exc:
                if retry is None or attempt >= retry.max_attempts or not retry.accepts(exc):
                    return Failed(spec.key, exc, attempt)
                delay = retry.delay(attempt)
                if ctx.debug:
                    await ctx.emit(
                        NodeRetrying(
                            trace_id=ctx.trace_id,
                            span_id=span,
                            parent_span_id=ctx.root_span,
                            node=spec.node,
                            attempt=attempt,
                            delay=delay,
                            error=f"{type(exc).__name__}: {exc}",
                        )
                    )
                await anyio.sleep(delay)
    finally:
        leave_task(token)


async def run_many(
    ctx: RunContext[Any],
    name: str,
    span: str,
    specs: Sequence[TaskSpec],
    *,
    fail_fast: bool,
    limit: int | None,
) -> dict[str, Outcome]:
    """Run ``specs`` side by side (at most ``limit`` at once); their outcomes by key.

    Tasks of sync functions, which cannot yield anyway, run one after the other without a
    task of their own; the async ones then run concurrently. A task cancelled (or never
    started) because a sibling failed first (``fail_fast``) has no outcome."""
    if ctx.debug:
        await ctx.emit(
            ParallelStarted(
                trace_id=ctx.trace_id,
                span_id=span,
                parent_span_id=ctx.root_span,
                node=name,
                branches=tuple(s.label or s.key for s in specs),
            )
        )
    started = ctx.now()
    outcomes: dict[str, Outcome] = {}
    limiter = None if limit is None or limit >= len(specs) else anyio.CapacityLimiter(limit)

    async def run_one(spec: TaskSpec, group: anyio.abc.TaskGroup) -> None:
        branch_span = ctx.new_span()
        begun = ctx.now()
        if limiter is None:
            outcome = await call(ctx, spec, branch_span)
        else:
            async with limiter:
                outcome = await call(ctx, spec, branch_span)
        outcomes[spec.key] = outcome
        if isinstance(outcome, Failed) and fail_fast:
            group.cancel_scope.cancel()
        if ctx.debug:
            await _branch_done(ctx, name, span, branch_span, spec, outcome, begun)

    concurrent = []
    for spec in specs:
        if spec.is_async:
            concurrent.append(spec)
            continue
        branch_span = ctx.new_span() if ctx.debug else span
        begun = ctx.now() if ctx.debug else 0.0
        outcome = await call(ctx, spec, branch_span)
        outcomes[spec.key] = outcome
        if ctx.debug:
            await _branch_done(ctx, name, span, branch_span, spec, outcome, begun)
        if fail_fast and isinstance(outcome, Failed):
            concurrent.clear()
            break
    if concurrent:
        async with anyio.create_task_group() as group:
            for spec in concurrent:
                group.start_soon(run_one, spec, group)
    if ctx.debug:
        await ctx.emit(
            ParallelCompleted(
                trace_id=ctx.trace_id,
                span_id=span,
                parent_span_id=ctx.root_span,
                node=name,
                success=all(isinstance(o, Done) for o in outcomes.values())
                and len(outcomes) == len(specs),
                duration=ctx.now() - started,
            )
        )
    return outcomes


async def _branch_done(
    ctx: RunContext[Any],
    name: str,
    span: str,
    branch_span: str,
    spec: TaskSpec,
    outcome: Outcome,
    begun: float,
) -> None:
    await ctx.emit(
        BranchCompleted(
            trace_id=ctx.trace_id,
            span_id=branch_span,
            parent_span_id=span,
            node=name,
            branch=spec.label or spec.key,
            success=isinstance(outcome, Done),
            duration=ctx.now() - begun,
        )
    )


async def run_subgraph(ctx: RunContext[Any], node: SubgraphNode[Any], span: str) -> Outcome:
    """Run (or continue) the subgraph of ``node`` to its end or its first pause: its
    run stops at interrupts (they become this task's), reports every commit so the parent
    can checkpoint it, and forwards what its nodes write to the parent's stream."""
    saved = ctx.frame.children.get("")
    graph = node.graph
    options = RunOptions(ctx.options.max_steps, max_concurrency=ctx.options.max_concurrency)
    if saved is not None:
        child: RunContext[Any] = type(ctx)(
            graph,
            saved.state,
            options,
            ctx.trace_id,
            ctx.thread_id,
            step=saved.step,
            frame=saved.frame,
            occurrences=saved.occurrences,
            resumed=True,
            codec=ctx.codec,
        )
    else:
        try:
            initial = node.enter(ctx.state)
        except Exception as exc:
            return Failed("", exc)
        child = type(ctx)(graph, initial, options, ctx.trace_id, ctx.thread_id, codec=ctx.codec)
    child.embedded = True
    child.forward_writer = ctx.writer_for(node.name, span)
    parent = ctx

    async def on_commit(run: RunContext[Any]) -> None:
        parent.frame.children[""] = _saved(run)
        await _commit.save_child_progress(parent)

    child.on_commit = on_commit
    await GraphExecution(child).run(GraphExecution.initial_state_for(child), child)
    if child.error is not None:
        return Failed("", child.error)
    if child.frame.interrupts:
        ctx.frame.children[""] = _saved(child)
        inner = tuple(
            attrs.evolve(i, id=attrs.evolve(i.id, path=(node.name, *i.id.path)))
            for i in child.frame.interrupts
        )
        return Interrupted("", inner=inner)
    ctx.frame.children.pop("", None)
    try:
        delta = node.leave(ctx.state, child.state)
    except Exception as exc:
        return Failed("", exc)
    return Done("", delta)


def _saved(run: RunContext[Any]) -> ChildRun:
    frame: Frame = run.frame
    return ChildRun(run.state, run.step, dict(run.occurrences), frame)
