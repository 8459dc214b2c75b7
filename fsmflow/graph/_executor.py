"""Running a graph: a supervised execution FSM that runs one node per step.

:class:`GraphExecution` is a :class:`~fsmflow.supervisor.SelfSupervised` with an
external-event policy: while nodes run it ``POLL`` s its channel (decisions, cancel and
checkpoint requests are taken between nodes), while a barrier waits it ``BLOCK`` s on it.
Its ``dispatch_state`` runs the current node and reports what happened as an event; the
FSM's actions commit it (see :mod:`._fsm`). :class:`RunContext` is everything one run
knows; only the execution's dispatch and actions touch it.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Generic, TypeVar, cast

import anyio
import anyio.abc
import attrs
import trio
from anyio.streams.memory import MemoryObjectReceiveStream

from ..fsm import FsmSpec
from ..store import CheckpointStore
from ..supervisor import (
    TERMINATE,
    ChannelBuilder,
    EventLoopDirective,
    EventSender,
    ExternalEventMode,
    ExternalEventPolicy,
    SelfSupervised,
    SelfSupervisedWithExternalEvents,
    Trigger,
)
from ._checkpoint import Checkpointer, CheckpointPolicy, CheckpointTrigger, load_run
from ._errors import (
    BarrierRejected,
    GraphError,
    MissingEdge,
    MissingFallback,
    NodeFailed,
    NodeNotFound,
    ParallelFailed,
    StepsExceeded,
    StreamingRequired,
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
    BEGIN,
    CANCEL,
    BarrierReached,
    BarrierTimedOut,
    DecisionReady,
    ExecAction,
    ExecEvent,
    ExecState,
    ExecutorFailed,
    NodeDone,
    NothingLeft,
    StepFailed,
    execution_spec,
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
from ._handle import GraphHandle
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

    async def dispatch_state(
        self, state: ExecState, ctx: RunContext[Any]
    ) -> EventLoopDirective[ExecEvent]:
        if state is ExecState.RUNNING:
            if ctx.cancel_requested:
                return Trigger(CANCEL)
            return Trigger(await ctx.run_step())
        if state is ExecState.STARTING:
            return Trigger(BEGIN)
        if state is ExecState.AWAITING_DECISION:
            if ctx.cancel_requested:
                return Trigger(CANCEL)
            decision = ctx.ready_decision()
            if decision is not None:
                return Trigger(DecisionReady(decision))
            # The channel closed: no decision can arrive any more.
            return Trigger(CANCEL)
        return TERMINATE

    def external_event_mode(self, state: ExecState) -> ExternalEventMode:
        if state is ExecState.RUNNING:
            return ExternalEventMode.POLL
        if state is ExecState.AWAITING_DECISION:
            ctx = self._ctx
            if ctx.cancel_requested or ctx.ready_decision() is not None:
                return ExternalEventMode.POLL
            return ExternalEventMode.BLOCK
        return ExternalEventMode.IGNORE

    def on_external_event_channel_closed(self, state: ExecState) -> ExecEvent | None:
        return None

    def event_for_action_error(self, msg: str) -> ExecEvent:
        return ExecutorFailed(msg)


def _refuse_barriers(graph: Graph[Any]) -> None:
    if graph.barriers:
        raise StreamingRequired(graph.barriers)


async def execute(
    graph: Graph[S],
    state: S,
    *,
    max_steps: int = DEFAULT_MAX_STEPS,
    store: CheckpointStore | None = None,
    policy: CheckpointPolicy | None = None,
    compact_after: int = 20,
    trace_id: str | None = None,
) -> GraphResult[S]:
    """Run ``graph`` from its start on ``state`` and return the result.

    Raises the run's :class:`GraphError` when it fails, and :class:`StreamingRequired`
    for a graph with barriers (a barrier needs a handle: use :func:`execute_stream`).
    With ``store``, checkpoints are saved by ``policy`` under ``trace_id`` (random by
    default). No events are built: this is the fast path.
    """
    _refuse_barriers(graph)
    options = RunOptions(max_steps, store, policy or CheckpointPolicy(), compact_after)
    ctx = RunContext(graph, state, options, trace_id or new_trace_id(), None)
    return await _execute_plain(ctx)


async def _execute_plain(ctx: RunContext[S]) -> GraphResult[S]:
    execution = GraphExecution(ctx)
    await execution.run(ExecState.STARTING, ctx)
    if ctx.error is not None:
        raise ctx.error
    assert ctx.result is not None
    return ctx.result


class GraphStream(Generic[S]):
    """A running graph: iterate over its events, talk to it through :attr:`handle`.

    After the stream ends, :attr:`result` (completed), :attr:`error` (failed) or
    :attr:`cancelled_at` (cancelled) says how.
    """

    def __init__(
        self,
        events: MemoryObjectReceiveStream[GraphEvent],
        ctx: RunContext[S],
        handle: GraphHandle,
    ) -> None:
        self._events = events
        self._ctx = ctx
        self.handle = handle
        self.trace_id = ctx.trace_id

    @property
    def result(self) -> GraphResult[S] | None:
        return self._ctx.result

    @property
    def error(self) -> GraphError | None:
        return self._ctx.error

    @property
    def cancelled_at(self) -> str | None:
        return self._ctx.cancelled_at

    def __aiter__(self) -> AsyncIterator[GraphEvent]:
        return self._events.__aiter__()


@asynccontextmanager
async def _stream(ctx: RunContext[S], buffer: int, capacity: int) -> AsyncIterator[GraphStream[S]]:
    send, receive = anyio.create_memory_object_stream[GraphEvent](buffer)
    ctx.sink = send.send
    sender, receiver, watcher = ChannelBuilder[ExecEvent, ExecState](capacity).build(
        ExecState.STARTING
    )
    ctx.timer_sender = sender.clone()
    handle = GraphHandle(ctx, sender, watcher)
    execution = GraphExecution(ctx)
    runner = SelfSupervisedWithExternalEvents(execution, receiver, watcher)
    stream: GraphStream[S] = GraphStream(receive, ctx, handle)
    finished = False

    async def run() -> None:
        nonlocal finished
        async with send:
            try:
                async with anyio.create_task_group() as timers:
                    ctx.timers = timers
                    await runner.run(ExecState.STARTING, ctx)
                    finished = True
                    timers.cancel_scope.cancel()
            finally:
                sender.close()
                assert ctx.timer_sender is not None
                ctx.timer_sender.close()

    async with anyio.create_task_group() as tg, receive:
        tg.start_soon(run)
        try:
            yield stream
        finally:
            if not finished:
                tg.cancel_scope.cancel()


def execute_stream(
    graph: Graph[S],
    state: S,
    *,
    max_steps: int = DEFAULT_MAX_STEPS,
    store: CheckpointStore | None = None,
    policy: CheckpointPolicy | None = None,
    compact_after: int = 20,
    trace_id: str | None = None,
    buffer: int = 64,
    capacity: int = 64,
) -> AbstractAsyncContextManager[GraphStream[S]]:
    """Run ``graph`` in the background; iterate over its events and steer it::

        async with execute_stream(graph, state) as run:
            async for event in run:
                if isinstance(event, BarrierWaiting):
                    await run.handle.approve(event.barrier_id)
        print(run.result)

    The event buffer holds ``buffer`` events: a slow consumer slows the run down.
    Leaving the block before the run ends cancels it; so does closing the stream.
    ``capacity`` bounds the handle's queue of decisions and requests.
    """
    options = RunOptions(max_steps, store, policy or CheckpointPolicy(), compact_after)
    ctx = RunContext(graph, state, options, trace_id or new_trace_id(), None)
    return _stream(ctx, buffer, capacity)


@asynccontextmanager
async def resume_from(
    graph: Graph[S],
    trace_id: str,
    *,
    store: CheckpointStore,
    force: bool = False,
    max_steps: int = DEFAULT_MAX_STEPS,
    policy: CheckpointPolicy | None = None,
    compact_after: int = 20,
    buffer: int = 64,
    capacity: int = 64,
) -> AsyncIterator[GraphStream[S]]:
    """Continue ``trace_id`` from its latest checkpoint in ``store``, as a stream (see
    :func:`execute_stream`); the run keeps its trace id and step count, and a barrier it
    was waiting at waits again under the same barrier id.

    Raises :class:`CheckpointNotFound`, and :class:`GraphHashMismatch` when the graph
    changed since the checkpoint — unless ``force``, which warns instead.
    """
    options = RunOptions(max_steps, store, policy or CheckpointPolicy(), compact_after)
    ctx = await _restored_context(graph, trace_id, store, options, force)
    async with _stream(ctx, buffer, capacity) as stream:
        yield stream


async def resume(
    graph: Graph[S],
    trace_id: str,
    *,
    store: CheckpointStore,
    force: bool = False,
    max_steps: int = DEFAULT_MAX_STEPS,
    policy: CheckpointPolicy | None = None,
    compact_after: int = 20,
) -> GraphResult[S]:
    """:func:`resume_from` without a stream: continue the run and return its result
    (like :func:`execute`, it refuses graphs with barriers)."""
    _refuse_barriers(graph)
    options = RunOptions(max_steps, store, policy or CheckpointPolicy(), compact_after)
    return await _execute_plain(await _restored_context(graph, trace_id, store, options, force))


async def _restored_context(
    graph: Graph[S], trace_id: str, store: CheckpointStore, options: RunOptions, force: bool
) -> RunContext[S]:
    """A run context that continues ``trace_id`` from its latest checkpoint."""
    restored = await load_run(store, graph, trace_id, force=force)
    return RunContext(
        graph,
        restored.state,
        options,
        trace_id,
        None,
        step=restored.step,
        current=restored.next_node,
        occurrences=restored.occurrences,
        resumed=True,
    )
