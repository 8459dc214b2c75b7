"""One step of a run: run the next node (its tasks), merge what they wrote, pick what
comes next — and report it as one event for the execution FSM.

A step is one node: a function node (one task), a parallel node (a task per branch), a
fan-out (a task per send), a subgraph (its whole run, up to its first pause) or a
barrier. Tasks that finished keep their writes in the frame (*pending writes*) until the
step commits, so a step that is retried — after a failure, or after its interrupts got
their values — runs only the tasks that have not finished.
"""

from __future__ import annotations

import typing
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any, cast

import anyio

from ._errors import (
    BarrierRejected,
    FanOutError,
    GraphError,
    MissingEdge,
    MissingFallback,
    NodeFailed,
    NodeNotFound,
    NodeTimedOut,
    ParallelFailed,
    StepsExceeded,
)
from ._events import NodeStarted
from ._frame import decode_decision, send_input_type
from ._fsm import CANCEL, ExecEvent, NodeDone, NothingLeft, Paused, StepFailed
from ._interrupts import (
    BarrierId,
    GraphInterrupt,
    Interrupt,
    InterruptId,
    InterruptKind,
    Stored,
    call_sync,
)
from ._nodes import BarrierNode, FunctionNode, Node, ParallelNode, ParallelStrategy, SubgraphNode
from ._results import (
    Approve,
    Fallback,
    FanOut,
    NodeError,
    NodeOutput,
    Reject,
    Send,
    Skip,
)
from ._state import Delta, rollback
from ._tasks import (
    Done,
    Failed,
    Interrupted,
    Outcome,
    TaskSpec,
    as_delta,
    call,
    run_many,
    run_subgraph,
)

if TYPE_CHECKING:
    from ._context import RunContext

_NO_DELTAS: tuple[tuple[str, Delta], ...] = ()


async def run_step(ctx: RunContext[Any]) -> ExecEvent:
    """Run the next step and report it: done, paused, failed or nothing left."""
    frame = ctx.frame
    if frame.after is not None:
        return Paused((frame.after,))
    name = frame.next_node
    if name is None:
        return NothingLeft()
    if ctx.step - ctx.run_start >= ctx.max_steps:
        return StepFailed(StepsExceeded(ctx.max_steps))
    graph = ctx.graph
    node = graph.nodes.get(name)
    if node is None:
        return StepFailed(NodeNotFound(name))
    step = ctx.step + 1
    if name in graph.interrupt_before and not frame.released:
        return Paused((Interrupt(InterruptId(name, step), InterruptKind.BEFORE),))
    span = ctx.new_span() if ctx.sink is not None else ""
    started = ctx.now()
    if ctx.debug:
        await ctx.emit(
            NodeStarted(
                trace_id=ctx.trace_id,
                span_id=span,
                parent_span_id=ctx.root_span,
                node=name,
                step=step,
            )
        )
    if frame.sends is not None:
        return await _fan_out(ctx, name, frame.sends, span, started)
    if type(node) is FunctionNode:
        if node.input_type is not None:
            error = FanOutError(name, "the node runs on fan-out inputs but was reached without one")
            return StepFailed(error, name, span, started)
        if not node.is_async and node.options.retry is None:
            # Nothing to interrupt or retry: call it right here.
            scope = ctx.sync_scope
            scope.resumes = frame.resumes.get("") or []
            scope.writer = ctx.writer_for(name, span)
            scope.node = name
            scope.index = 0
            try:
                result = call_sync(scope, node.fn, ctx.state)
            except GraphInterrupt as interrupted:
                return Paused((_called(name, step, "", interrupted.index, interrupted.payload),))
            except Exception as exc:
                return _failed(ctx, node, name, span, started, exc, 1, _NO_DELTAS)
            if result is None or type(result) is dict:
                return _merged(ctx, name, span, started, result)
            return conclude(ctx, name, span, started, result)
        spec = TaskSpec("", name, node.fn, node.is_async, ctx.state, node.options)
        with ctx.cancel_scope() as cancel:
            ctx.node_scope = cancel
            try:
                outcome = await call(ctx, spec, span)
            finally:
                ctx.node_scope = None
        if cancel.cancelled_caught:
            return CANCEL
        return _single(ctx, node, name, step, span, started, outcome)
    if isinstance(node, ParallelNode):
        return await _parallel(ctx, node, name, step, span, started)
    if isinstance(node, SubgraphNode):
        timeout = node.options.timeout
        with ctx.cancel_scope() as cancel:
            ctx.node_scope = cancel
            try:
                if timeout is None:
                    outcome = await run_subgraph(ctx, node, span)
                else:
                    with anyio.move_on_after(timeout) as deadline:
                        outcome = await run_subgraph(ctx, node, span)
                    if deadline.cancelled_caught:
                        outcome = Failed("", NodeTimedOut(name, timeout))
            finally:
                ctx.node_scope = None
        if cancel.cancelled_caught:
            return CANCEL
        if isinstance(outcome, Interrupted):
            return Paused(outcome.inner)
        return _single(ctx, node, name, step, span, started, outcome)
    assert isinstance(node, BarrierNode)
    return await _barrier(ctx, node, name, step, span, started)


def _called(node: str, step: int, task: str, index: int, payload: Any) -> Interrupt:
    return Interrupt(InterruptId(node, step, task, index), InterruptKind.CALL, payload)


def _single(
    ctx: RunContext[Any],
    node: Node[Any],
    name: str,
    step: int,
    span: str,
    started: float,
    outcome: Outcome,
) -> ExecEvent:
    if isinstance(outcome, Done):
        return conclude(ctx, name, span, started, outcome.result)
    if isinstance(outcome, Interrupted):
        return Paused((_called(name, step, "", outcome.index, outcome.payload),))
    return _failed(ctx, node, name, span, started, outcome.error, outcome.attempts, _NO_DELTAS)


def _failed(
    ctx: RunContext[Any],
    node: Node[Any],
    name: str,
    span: str,
    started: float,
    error: BaseException,
    attempts: int,
    writes: tuple[tuple[str, Delta], ...],
    failed: str | None = None,
) -> ExecEvent:
    """A task of ``node`` failed for good: take the node's error route, or fail."""
    options = node.options
    if options.on_error is not None:
        cause = error.cause if isinstance(error, NodeFailed) else error
        record = NodeError(failed or name, type(cause).__name__, str(cause), attempts)
        deltas = (*writes, ("", {options.error_key: record}))
        return conclude(ctx, name, span, started, None, deltas, goto=options.on_error)
    if isinstance(error, NodeFailed) and failed is None:
        return StepFailed(NodeFailed(name, error.cause), name, span, started)
    return StepFailed(NodeFailed(failed or name, error), name, span, started)


async def _parallel(
    ctx: RunContext[Any], node: ParallelNode[Any], name: str, step: int, span: str, started: float
) -> ExecEvent:
    writes = ctx.frame.writes
    copy = ctx.schema.copy
    specs = [
        TaskSpec(b.name, name, b.fn, b.is_async, copy(ctx.state), node.options, b.name)
        for b in node.branches
        if b.name not in writes
    ]
    fail_fast = node.strategy is ParallelStrategy.FAIL_FAST
    with ctx.cancel_scope() as cancel:
        ctx.node_scope = cancel
        try:
            outcomes = await run_many(ctx, name, span, specs, fail_fast=fail_fast, limit=None)
        finally:
            ctx.node_scope = None
    if cancel.cancelled_caught:
        return CANCEL
    keys = [b.name for b in node.branches]
    return _gather(ctx, node, name, step, span, started, keys, outcomes, (name,), fail_fast)


async def _fan_out(
    ctx: RunContext[Any], name: str, sends: tuple[Send[Any], ...], span: str, started: float
) -> ExecEvent:
    graph = ctx.graph
    step = ctx.step + 1
    writes = ctx.frame.writes
    specs = []
    targets: dict[str, None] = {name: None}
    for index, send in enumerate(sends):
        target = graph.nodes.get(send.node)
        if not isinstance(target, FunctionNode):
            what = "not a node" if target is None else "not a function node"
            error = FanOutError(name, f"send #{index} goes to {send.node!r}, {what}")
            return StepFailed(error, name, span, started)
        targets.setdefault(send.node, None)
        expected = send_input_type(graph, send.node)
        if not _fits(send.arg, expected):
            error = FanOutError(
                name,
                f"send #{index} to {send.node!r} carries a {type(send.arg).__name__}, the node "
                f"runs on {getattr(expected, '__name__', expected)}",
            )
            return StepFailed(error, name, span, started)
        key = str(index)
        if key not in writes:
            label = f"{send.node}[{index}]"
            specs.append(
                TaskSpec(
                    key, send.node, target.fn, target.is_async, send.arg, target.options, label
                )
            )
    node = graph.nodes[name]
    limit = node.options.concurrency or ctx.options.max_concurrency
    outcomes = {}
    if specs:
        with ctx.cancel_scope() as cancel:
            ctx.node_scope = cancel
            try:
                outcomes = await run_many(ctx, name, span, specs, fail_fast=True, limit=limit)
            finally:
                ctx.node_scope = None
        if cancel.cancelled_caught:
            return CANCEL
    keys = [str(i) for i in range(len(sends))]
    return _gather(ctx, node, name, step, span, started, keys, outcomes, tuple(targets), True)


def _fits(value: Any, expected: Any) -> bool:
    if typing.is_typeddict(expected):
        return isinstance(value, dict)
    return not isinstance(expected, type) or isinstance(value, expected)


def _gather(
    ctx: RunContext[Any],
    node: Node[Any],
    name: str,
    step: int,
    span: str,
    started: float,
    keys: list[str],
    outcomes: Mapping[str, Outcome],
    route_nodes: tuple[str, ...],
    fail_fast: bool,
) -> ExecEvent:
    """Turn the outcomes of a step's tasks into one event; finished tasks' writes stay in
    the frame until the step commits."""
    writes = ctx.frame.writes
    failures: dict[str, tuple[BaseException, int]] = {}
    interrupts: list[Interrupt] = []
    for key, outcome in outcomes.items():
        if isinstance(outcome, Done):
            try:
                writes[key] = as_delta(outcome.result)
            except TypeError as exc:
                failures[key] = (exc, outcome.attempts)
        elif isinstance(outcome, Interrupted):
            task_node = name if isinstance(node, ParallelNode) else _send_node(ctx, key, name)
            interrupts.append(_called(task_node, step, key, outcome.index, outcome.payload))
        else:
            failures[key] = (outcome.error, outcome.attempts)
    if failures:
        done = tuple((k, writes[k]) for k in keys if k in writes)
        if node.options.on_error is not None or fail_fast:
            key, (error, attempts) = next(iter(failures.items()))
            if isinstance(node, ParallelNode):
                label = f"{name}/{key}"
            else:
                label = f"{_send_node(ctx, key, name)}[{key}]"
            return _failed(ctx, node, name, span, started, error, attempts, done, label)
        ordered = {k: failures[k][0] for k in keys if k in failures}
        return StepFailed(ParallelFailed(name, ordered), name, span, started)
    if interrupts:
        return Paused(tuple(interrupts))
    deltas = tuple((k, writes[k]) for k in keys)
    try:
        ctx.schema.check_parallel(name, deltas)
    except GraphError as exc:
        return StepFailed(exc, name, span, started)
    return conclude(ctx, name, span, started, None, deltas, route_nodes=route_nodes)


def _send_node(ctx: RunContext[Any], key: str, default: str) -> str:
    sends = ctx.frame.sends
    if sends is None or not key.isdigit() or int(key) >= len(sends):
        return default
    return sends[int(key)].node


async def _barrier(
    ctx: RunContext[Any], node: BarrierNode[Any], name: str, step: int, span: str, started: float
) -> ExecEvent:
    barrier_id = BarrierId(name, ctx.occurrences.get(name, 0) + 1)
    values = ctx.frame.resumes.get("")
    if not values:
        interrupt = Interrupt(
            InterruptId(name, step), InterruptKind.BARRIER, None, barrier_id, node.timeout
        )
        return Paused((interrupt,))
    decision = values[0]
    try:
        if isinstance(decision, Stored):
            converter = ctx.codec.converter
            decision = decode_decision(decision.value, converter, ctx.graph, f"{barrier_id}")
        if node.apply is not None:
            result = node.apply(ctx.state, decision)
            if node.is_async:
                result = await cast(Awaitable[Any], result)
        elif isinstance(decision, Approve | Skip):
            result = None
        elif isinstance(decision, Reject):
            if node.on_reject is None:
                error = BarrierRejected(str(barrier_id), decision.reason)
                return StepFailed(error, name, span, started)
            result = NodeOutput(goto=node.on_reject)
        else:
            result = NodeOutput(update=decision.update, goto=decision.target)
    except Exception as exc:
        return StepFailed(NodeFailed(name, exc), name, span, started)
    return conclude(ctx, name, span, started, result, barrier=True)


def _merged(
    ctx: RunContext[Any], name: str, span: str, started: float, delta: Delta | None
) -> ExecEvent:
    """:func:`conclude` for the common case: a node returned a delta (or nothing); follow
    its edges."""
    undo: list[Any] = []
    graph = ctx.graph
    try:
        state = ctx.state
        if delta:
            state = ctx.schema.apply(state, delta, name, ctx.own, undo)
        target = None if name == graph.end else graph.route(name, state)
        if type(target) is FanOut:
            for send in target.sends:
                if send.node not in graph.nodes:
                    raise NodeNotFound(send.node)
    except GraphError as exc:
        rollback(undo)
        ctx.own.release()
        return StepFailed(exc, name, span, started)
    except BaseException:
        rollback(undo)
        ctx.own.release()
        raise
    deltas = _NO_DELTAS if delta is None else (("", delta),)
    return NodeDone(name, span, started, ctx.now() - started, deltas, state, target)


def conclude(
    ctx: RunContext[Any],
    name: str,
    span: str,
    started: float,
    result: Any,
    deltas: tuple[tuple[str, Delta], ...] | None = None,
    *,
    barrier: bool = False,
    goto: str | None = None,
    route_nodes: tuple[str, ...] | None = None,
) -> ExecEvent:
    """Merge a step's writes into the state and pick what comes next."""
    output: NodeOutput | None = None
    warnings: tuple[str, ...] = ()
    fallback: Fallback | None = None
    if deltas is None:
        if result is None:
            deltas = _NO_DELTAS
        elif type(result) is NodeOutput:
            output = result
            deltas = (("", result.update),)
            if result.warning is not None:
                warnings = (result.warning,)
        elif type(result) is Fallback:
            fallback = result
            deltas = (("", result.update),)
        elif isinstance(result, Mapping):
            deltas = (("", result),)
        else:
            error = NodeFailed(
                name,
                TypeError(
                    f"a node returns a mapping, None, NodeOutput or Fallback, not "
                    f"{type(result).__name__}"
                ),
            )
            return StepFailed(error, name, span, started)
    own = ctx.own
    undo: list[Any] = []
    try:
        state = ctx.state
        apply = ctx.schema.apply
        for _, delta in deltas:
            state = apply(state, delta, name, own, undo)
        target = _target(ctx, name, state, output, fallback, goto, route_nodes)
        if fallback is not None:
            warnings = (f"fell back to {target!r}: {fallback.reason}",)
    except GraphError as exc:
        rollback(undo)
        own.release()
        return StepFailed(exc, name, span, started)
    except BaseException:
        rollback(undo)
        own.release()
        raise
    cost, side_effects = (0.0, False) if output is None else (output.cost, output.side_effects)
    return NodeDone(
        name,
        span,
        started,
        ctx.now() - started,
        deltas,
        state,
        target,
        cost,
        side_effects,
        warnings,
        barrier,
    )


def _target(
    ctx: RunContext[Any],
    name: str,
    state: Any,
    output: NodeOutput | None,
    fallback: Fallback | None,
    goto: str | None,
    route_nodes: tuple[str, ...] | None,
) -> str | FanOut | None:
    graph = ctx.graph
    if goto is not None:
        return goto
    if fallback is not None:
        target = graph.fallback_target(name)
        if target is None:
            raise MissingFallback(name, fallback.reason)
        return target
    if name == graph.end or (output is not None and output.end):
        return None
    if output is not None and output.goto is not None:
        goto_to = output.goto
        if not isinstance(goto_to, str):
            sends: list[Send[Any]] = []
            for send in goto_to:
                if not isinstance(send, Send):
                    raise FanOutError(name, f"goto lists a {type(send).__name__}, not a Send")
                sends.append(send)
            if sends:
                return FanOut(sends[0].node, tuple(sends))
        else:
            target = goto_to
            if target not in graph.nodes:
                raise NodeNotFound(target)
            if target not in graph.targets[name]:
                raise MissingEdge(name, target)
            return target
    nodes = route_nodes or (name,)
    found: list[str | FanOut | None] = []
    for node in nodes:
        nxt = None if node == graph.end else graph.route(node, state)
        if nxt not in found:
            found.append(nxt)
    if len(found) > 1:
        shown = ", ".join(repr(f.node if isinstance(f, FanOut) else f) for f in found)
        raise FanOutError(name, f"the branches lead on to different nodes ({shown})")
    nxt = found[0]
    if isinstance(nxt, FanOut):
        for send in nxt.sends:
            if send.node not in graph.nodes:
                raise NodeNotFound(send.node)
    return nxt
