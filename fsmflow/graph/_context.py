"""What one graph run knows: :class:`RunContext`, its options and its decision box.

Only the execution's ``dispatch_state`` and its FSM's actions touch a run context; it runs
one node per step, applies deltas through the reducers, checkpoints by policy and emits
the event stream.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, TypeVar, cast

import anyio
import anyio.abc
import attrs
import trio

from ..store import CheckpointStore
from ..supervisor import (
    EventSender,
)
from ._checkpoint import Checkpointer, CheckpointPolicy, CheckpointTrigger
from ._errors import (
    BarrierRejected,
    GraphError,
    MissingEdge,
    MissingFallback,
    NodeFailed,
    NodeNotFound,
    ParallelFailed,
    StepsExceeded,
)
from ._events import (
    BarrierId,
    BarrierResolved,
    BarrierWaiting,
    BranchCompleted,
    CheckpointSaved,
    ErrorObserved,
    ExecutionEntry,
    GraphCancelled,
    GraphCompleted,
    GraphEvent,
    GraphFailed,
    GraphResult,
    GraphStarted,
    NodeEnded,
    NodeStarted,
    ParallelCompleted,
    ParallelStarted,
    StateChanged,
)
from ._fsm import (
    CANCEL,
    BarrierReached,
    BarrierTimedOut,
    ExecEvent,
    NodeDone,
    NothingLeft,
    StepFailed,
)
from ._graph import (
    Approve,
    BarrierDefault,
    BarrierNode,
    Decision,
    Fallback,
    FunctionNode,
    Graph,
    NodeOutput,
    ParallelNode,
    ParallelStrategy,
    Reject,
    Skip,
)
from ._state import Delta

S = TypeVar("S")

EventSink = Callable[[GraphEvent], Awaitable[None]]

#: Default bound on node executions per run.
DEFAULT_MAX_STEPS = 1000
_NO_DELTAS: tuple[tuple[str | None, Delta], ...] = ()


def new_trace_id() -> str:
    """A random W3C-style trace id (32 hex digits)."""
    return os.urandom(16).hex()


class DecisionBox:
    """Decisions that arrived before their barrier: exact ones are used once, wildcard
    ones (addressed to a node) serve every later occurrence of that node."""

    def __init__(self) -> None:
        self.exact: dict[BarrierId, Decision] = {}
        self.wildcard: dict[str, Decision] = {}

    def put(self, target: BarrierId | str, decision: Decision) -> None:
        if isinstance(target, BarrierId):
            self.exact[target] = decision
        else:
            self.wildcard[target] = decision

    def find(self, barrier_id: BarrierId) -> Decision | None:
        found = self.exact.get(barrier_id)
        return found if found is not None else self.wildcard.get(barrier_id.node)

    def consume(self, barrier_id: BarrierId) -> None:
        self.exact.pop(barrier_id, None)


@attrs.define(slots=True)
class Waiting:
    """The barrier the run waits at."""

    barrier_id: BarrierId
    span: str
    started: float
    timer: anyio.CancelScope | None = None


@attrs.frozen(slots=True)
class RunOptions:
    """How a run executes and checkpoints (see :func:`execute_stream`)."""

    max_steps: int = DEFAULT_MAX_STEPS
    store: CheckpointStore | None = None
    policy: CheckpointPolicy = attrs.field(factory=CheckpointPolicy)
    compact_after: int = 20

    def __attrs_post_init__(self) -> None:
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, not {self.max_steps}")


def _clock() -> Callable[[], float]:
    """trio's clock in a trio task (anyio's looks the backend up on every call)."""
    return trio.current_time if trio.lowlevel.in_trio_task() else anyio.current_time


class RunContext(Generic[S]):
    """The mutable state of one run."""

    def __init__(
        self,
        graph: Graph[S],
        state: S,
        options: RunOptions,
        trace_id: str,
        sink: EventSink | None,
        *,
        step: int = 0,
        current: str | None = "",
        occurrences: Mapping[str, int] | None = None,
        resumed: bool = False,
    ) -> None:
        self.graph = graph
        self.schema = graph.schema
        self.state = state
        self.options = options
        self.max_steps = options.max_steps
        self.trace_id = trace_id
        self.sink = sink
        self.step = step
        #: The node the next step runs; ``None`` when a resumed run had completed.
        self.current: str | None = graph.start if current == "" else current
        self.occurrences: dict[str, int] = dict(occurrences or {})
        self.resumed = resumed
        self.log: list[ExecutionEntry] = []
        self.decisions = DecisionBox()
        self.waiting: Waiting | None = None
        #: The resolved barrier whose decision the next step applies.
        self.resolving: tuple[Waiting, Decision] | None = None
        self.cancel_requested = False
        self.node_scope: anyio.CancelScope | trio.CancelScope | None = None
        #: trio's own scopes in trio (anyio's wrapper costs as much as a step).
        self.cancel_scope: Callable[[], anyio.CancelScope | trio.CancelScope] = (
            trio.CancelScope if trio.lowlevel.in_trio_task() else anyio.CancelScope
        )
        self.timers: anyio.abc.TaskGroup | None = None
        self.timer_sender: EventSender[ExecEvent] | None = None
        self._spans = itertools.count(1)
        self.root_span = self.new_span()
        self.now = _clock()
        self.started_at = 0.0
        self.result: GraphResult[S] | None = None
        self.error: GraphError | None = None
        self.cancelled_at: str | None = None
        self.checkpointer: Checkpointer[S] | None = None
        if options.store is not None:
            self.checkpointer = Checkpointer(
                options.store,
                graph,
                trace_id,
                options.policy,
                options.compact_after,
            )

    def new_span(self) -> str:
        return f"{next(self._spans):016x}"

    async def emit(self, event: GraphEvent) -> None:
        """Send ``event`` to the consumer, waiting while its buffer is full. A consumer
        that went away (closed its end) cancels the run before its next step."""
        sink = self.sink
        if sink is None:
            return
        try:
            await sink(event)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self.sink = None
            self.request_cancel()

    def request_cancel(self) -> None:
        self.cancel_requested = True
        if self.node_scope is not None:
            self.node_scope.cancel()

    # -- dispatch work -----------------------------------------------------------------

    async def run_step(self) -> ExecEvent:
        """Run the current node (or apply a resolved barrier's decision) and report it."""
        if self.resolving is not None:
            return await self._apply_decision()
        name = self.current
        if name is None:
            return NothingLeft()
        if self.step >= self.max_steps:
            return StepFailed(StepsExceeded(self.max_steps))
        node = self.graph.nodes.get(name)
        if node is None:
            return StepFailed(NodeNotFound(name))
        span = self.new_span()
        started = self.now()
        if self.sink is not None:
            await self.emit(
                NodeStarted(
                    trace_id=self.trace_id,
                    span_id=span,
                    parent_span_id=self.root_span,
                    node=name,
                    step=self.step + 1,
                )
            )
        if type(node) is FunctionNode:
            if not node.is_async:  # nothing to interrupt: it runs without yielding
                try:
                    result = node.fn(self.state)
                except Exception as exc:
                    return StepFailed(NodeFailed(name, exc), name, span, started)
                return self._conclude(name, span, started, result)
            with self.cancel_scope() as scope:
                self.node_scope = scope
                try:
                    result = await cast(Awaitable[Any], node.fn(self.state))
                except Exception as exc:
                    return StepFailed(NodeFailed(name, exc), name, span, started)
                finally:
                    self.node_scope = None
            if scope.cancelled_caught:
                return CANCEL
            return self._conclude(name, span, started, result)
        if isinstance(node, ParallelNode):
            with self.cancel_scope() as scope:
                self.node_scope = scope
                try:
                    deltas = await self._run_parallel(node, span)
                except GraphError as exc:
                    return StepFailed(exc, name, span, started)
                finally:
                    self.node_scope = None
            if scope.cancelled_caught:
                return CANCEL
            return self._conclude(name, span, started, None, deltas)
        assert isinstance(node, BarrierNode)
        occurrence = self.occurrences.get(name, 0) + 1
        self.occurrences[name] = occurrence
        return BarrierReached(BarrierId(name, occurrence), span, started)

    def _conclude(
        self,
        name: str,
        span: str,
        started: float,
        result: Any,
        deltas: tuple[tuple[str | None, Delta], ...] | None = None,
        barrier: bool = False,
    ) -> ExecEvent:
        """Merge a node's result into a new state and pick the next node."""
        graph = self.graph
        output: NodeOutput | None = None
        warnings: tuple[str, ...] = ()
        fallback: Fallback | None = None
        if deltas is None:
            if result is None:
                deltas = _NO_DELTAS
            elif type(result) is NodeOutput:
                output = result
                deltas = ((None, result.update),)
                if result.warning is not None:
                    warnings = (result.warning,)
            elif type(result) is Fallback:
                fallback = result
                deltas = ((None, result.update),)
            elif isinstance(result, Mapping):
                deltas = ((None, result),)
            else:
                error = NodeFailed(
                    name,
                    TypeError(
                        f"a node returns a mapping, None, NodeOutput or Fallback, not "
                        f"{type(result).__name__}"
                    ),
                )
                return StepFailed(error, name, span, started)
        try:
            state = self.state
            apply = self.schema.apply
            for _, delta in deltas:
                state = apply(state, delta, name)
            target: str | None
            if fallback is not None:
                target = graph.fallback_target(name)
                if target is None:
                    raise MissingFallback(name, fallback.reason)
                warnings = (f"fell back to {target!r}: {fallback.reason}",)
            elif name == graph.end or (output is not None and output.end):
                target = None
            elif output is not None and output.goto is not None:
                target = output.goto
                if target not in graph.nodes:
                    raise NodeNotFound(target)
                if target not in graph.targets[name]:
                    raise MissingEdge(name, target)
            else:
                target = graph.route(name, state)
        except GraphError as exc:
            return StepFailed(exc, name, span, started)
        cost, side_effects = (0.0, False) if output is None else (output.cost, output.side_effects)
        duration = self.now() - started
        return NodeDone(
            name,
            span,
            started,
            duration,
            deltas,
            state,
            target,
            cost,
            side_effects,
            warnings,
            barrier,
        )

    async def _run_parallel(
        self, node: ParallelNode[S], span: str
    ) -> tuple[tuple[str | None, Delta], ...]:
        """Run every branch on its own copy of the state; their deltas, in branch order."""
        name = node.name
        if self.sink is not None:
            await self.emit(
                ParallelStarted(
                    trace_id=self.trace_id,
                    span_id=span,
                    parent_span_id=self.root_span,
                    node=name,
                    branches=tuple(b.name for b in node.branches),
                )
            )
        started = self.now()
        results: dict[str, Delta] = {}
        failures: dict[str, BaseException] = {}
        fail_fast = node.strategy is ParallelStrategy.FAIL_FAST

        async def run_branch(index: int, group: anyio.abc.TaskGroup) -> None:
            branch = node.branches[index]
            branch_span = self.new_span()
            begun = self.now()
            try:
                result = branch.fn(self.schema.copy(self.state))
                if branch.is_async:
                    result = await cast(Awaitable[Any], result)
                if result is None:
                    results[branch.name] = {}
                elif isinstance(result, NodeOutput | Fallback):
                    results[branch.name] = result.update
                elif isinstance(result, Mapping):
                    results[branch.name] = result
                else:
                    raise TypeError(
                        f"a branch returns a mapping, None, NodeOutput or Fallback, not "
                        f"{type(result).__name__}"
                    )
            except Exception as exc:
                failures[branch.name] = exc
                if fail_fast:
                    group.cancel_scope.cancel()
            if self.sink is not None:
                await self.emit(
                    BranchCompleted(
                        trace_id=self.trace_id,
                        span_id=branch_span,
                        parent_span_id=span,
                        node=name,
                        branch=branch.name,
                        success=branch.name not in failures,
                        duration=self.now() - begun,
                    )
                )

        async with anyio.create_task_group() as group:
            for index in range(len(node.branches)):
                group.start_soon(run_branch, index, group)
        if self.sink is not None:
            await self.emit(
                ParallelCompleted(
                    trace_id=self.trace_id,
                    span_id=span,
                    parent_span_id=self.root_span,
                    node=name,
                    success=not failures,
                    duration=self.now() - started,
                )
            )
        if failures:
            if fail_fast:
                branch, exc = next(iter(failures.items()))
                raise NodeFailed(f"{name}/{branch}", exc)
            ordered = {b.name: failures[b.name] for b in node.branches if b.name in failures}
            raise ParallelFailed(name, ordered)
        pairs = tuple((b.name, results[b.name]) for b in node.branches)
        self.schema.check_parallel(name, pairs)
        return pairs

    async def _apply_decision(self) -> ExecEvent:
        """The second half of a barrier step: apply the decision and route."""
        assert self.resolving is not None
        waiting, decision = self.resolving
        self.resolving = None
        name = waiting.barrier_id.node
        node = self.graph.nodes[name]
        assert isinstance(node, BarrierNode)
        if node.apply is not None:
            try:
                result = node.apply(self.state, decision)
                if node.is_async:
                    result = await cast(Awaitable[Any], result)
            except Exception as exc:
                return StepFailed(NodeFailed(name, exc), name, waiting.span, waiting.started)
        elif isinstance(decision, Approve | Skip):
            result = None
        elif isinstance(decision, Reject):
            if node.on_reject is None:
                error = BarrierRejected(str(waiting.barrier_id), decision.reason)
                return StepFailed(error, name, waiting.span, waiting.started)
            result = NodeOutput(goto=node.on_reject)
        else:
            result = NodeOutput(update=decision.update, goto=decision.target)
        return self._conclude(name, waiting.span, waiting.started, result, barrier=True)

    def ready_decision(self) -> Decision | None:
        waiting = self.waiting
        return None if waiting is None else self.decisions.find(waiting.barrier_id)

    def default_decision(self) -> Decision:
        assert self.waiting is not None
        node = self.graph.nodes[self.waiting.barrier_id.node]
        assert isinstance(node, BarrierNode)
        if node.default is BarrierDefault.APPROVE:
            return Approve()
        if node.default is BarrierDefault.SKIP:
            return Skip()
        return Reject(f"no decision within {node.timeout}s")

    # -- actions -----------------------------------------------------------------------

    async def announce(self) -> None:
        self.started_at = self.now()
        if self.sink is not None:
            await self.emit(
                GraphStarted(
                    trace_id=self.trace_id,
                    span_id=self.root_span,
                    graph=self.graph.name,
                    graph_hash=self.graph.hash,
                    step=self.step,
                    resumed=self.resumed,
                )
            )

    async def commit(self, done: NodeDone) -> None:
        self.state = done.state
        self.step += 1
        self.log.append(ExecutionEntry(self.step, done.node, done.duration, True))
        if self.sink is not None:
            await self._report(done)
        checkpointer = self.checkpointer
        if checkpointer is None:
            if done.next is not None:
                self.current = done.next
            return
        checkpointer.record([delta for _, delta in done.deltas])
        if done.next is None:
            return
        self.current = done.next
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
            await self.save(trigger, done.next, self.occurrences, "running")

    async def _report(self, done: NodeDone) -> None:
        for branch, delta in done.deltas:
            if delta:
                await self.emit(
                    StateChanged(
                        trace_id=self.trace_id,
                        span_id=done.span,
                        parent_span_id=self.root_span,
                        node=done.node,
                        delta=delta,
                        branch=branch,
                    )
                )
        for warning in done.warnings:
            await self.emit(
                ErrorObserved(
                    trace_id=self.trace_id,
                    span_id=done.span,
                    parent_span_id=self.root_span,
                    node=done.node,
                    message=warning,
                )
            )
        await self.emit(
            NodeEnded(
                trace_id=self.trace_id,
                span_id=done.span,
                parent_span_id=self.root_span,
                node=done.node,
                step=self.step,
                duration=done.duration,
                success=True,
            )
        )

    async def save(
        self,
        trigger: CheckpointTrigger,
        next_node: str | None,
        occurrences: Mapping[str, int],
        status: str,
    ) -> None:
        """Save a checkpoint; a store error is reported as an observed error (the run
        goes on, and the next checkpoint is a full one)."""
        checkpointer = self.checkpointer
        assert checkpointer is not None
        try:
            incremental = await checkpointer.save(
                self.state, self.step, next_node, trigger, occurrences, status
            )
        except Exception as exc:
            checkpointer.chain = None
            await self.emit(
                ErrorObserved(
                    trace_id=self.trace_id,
                    span_id=self.root_span,
                    node=None,
                    message=f"checkpoint at step {self.step} failed: {type(exc).__name__}: {exc}",
                )
            )
            return
        await self.emit(
            CheckpointSaved(
                trace_id=self.trace_id,
                span_id=self.root_span,
                step=self.step,
                next_node=next_node,
                trigger=trigger.value,
                incremental=incremental,
            )
        )

    async def save_requested(self) -> None:
        checkpointer = self.checkpointer
        if checkpointer is None or not checkpointer.policy.on_request:
            return
        if self.waiting is not None:
            await self.save(
                CheckpointTrigger.REQUEST,
                self.waiting.barrier_id.node,
                self._occurrences_before_wait(),
                "waiting",
            )
        else:
            await self.save(CheckpointTrigger.REQUEST, self.current, self.occurrences, "running")

    def _occurrences_before_wait(self) -> dict[str, int]:
        """Occurrence counts as before the waiting barrier was reached, so a run resumed
        from here reaches it again under the same id."""
        assert self.waiting is not None
        counts = dict(self.occurrences)
        counts[self.waiting.barrier_id.node] -= 1
        return counts

    def _result(self) -> GraphResult[S]:
        return GraphResult(
            self.trace_id, self.state, tuple(self.log), self.now() - self.started_at, self.step
        )

    async def complete(self) -> None:
        self.current = None
        checkpointer = self.checkpointer
        if checkpointer is not None and checkpointer.policy.on_completion:
            await self.save(CheckpointTrigger.COMPLETION, None, self.occurrences, "completed")
        self.result = result = self._result()
        if self.sink is not None:
            await self.emit(
                GraphCompleted(trace_id=self.trace_id, span_id=self.root_span, result=result)
            )

    async def fail(self, failure: StepFailed) -> None:
        self._stop_waiting()
        self.error = failure.error
        if failure.node is not None:
            duration = self.now() - failure.started
            self.log.append(ExecutionEntry(self.step + 1, failure.node, duration, False))
            if self.sink is not None and failure.span is not None:
                await self.emit(
                    NodeEnded(
                        trace_id=self.trace_id,
                        span_id=failure.span,
                        parent_span_id=self.root_span,
                        node=failure.node,
                        step=self.step + 1,
                        duration=duration,
                        success=False,
                    )
                )
        if self.sink is not None:
            await self.emit(
                GraphFailed(
                    trace_id=self.trace_id,
                    span_id=self.root_span,
                    error=failure.error,
                    state=self.state,
                    step=self.step,
                )
            )

    async def cancelled(self) -> None:
        if self.waiting is not None:
            where = str(self.waiting.barrier_id)
        else:
            where = self.current or "the end"
        self._stop_waiting()
        self.cancelled_at = where
        if self.sink is not None:
            await self.emit(
                GraphCancelled(
                    trace_id=self.trace_id,
                    span_id=self.root_span,
                    where=where,
                    state=self.state,
                    step=self.step,
                )
            )

    async def open_barrier(self, reached: BarrierReached) -> None:
        node = self.graph.nodes[reached.barrier_id.node]
        assert isinstance(node, BarrierNode)
        self.waiting = waiting = Waiting(reached.barrier_id, reached.span, reached.started)
        checkpointer = self.checkpointer
        if checkpointer is not None and checkpointer.policy.on_barrier:
            # Saved before anyone hears of the barrier: whoever decides may be talking to
            # a process that dies, and another one must be able to wait in its place.
            await self.save(
                CheckpointTrigger.BARRIER, node.name, self._occurrences_before_wait(), "waiting"
            )
        if self.sink is not None:
            await self.emit(
                BarrierWaiting(
                    trace_id=self.trace_id,
                    span_id=reached.span,
                    parent_span_id=self.root_span,
                    barrier_id=reached.barrier_id,
                    timeout=node.timeout,
                )
            )
        if node.timeout is not None and self.timers is not None:
            waiting.timer = anyio.CancelScope()
            self.timers.start_soon(self._timer, waiting, self.now() + node.timeout)

    async def _timer(self, waiting: Waiting, deadline: float) -> None:
        """Tell the run that ``waiting`` timed out, unless it is resolved first (which
        cancels this task). A late message for a resolved barrier is ignored."""
        assert waiting.timer is not None and self.timer_sender is not None
        with waiting.timer:
            await anyio.sleep_until(deadline)
            await self.timer_sender.send(BarrierTimedOut(waiting.barrier_id))

    def _stop_waiting(self) -> None:
        waiting = self.waiting
        if waiting is not None:
            self.waiting = None
            if waiting.timer is not None:
                waiting.timer.cancel()

    async def close_barrier(self, decision: Decision, timed_out: bool) -> None:
        waiting = self.waiting
        assert waiting is not None
        self.decisions.consume(waiting.barrier_id)
        self._stop_waiting()
        self.resolving = (waiting, decision)
        if self.sink is not None:
            await self.emit(
                BarrierResolved(
                    trace_id=self.trace_id,
                    span_id=waiting.span,
                    parent_span_id=self.root_span,
                    barrier_id=waiting.barrier_id,
                    decision=decision,
                    timed_out=timed_out,
                )
            )
