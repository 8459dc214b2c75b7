"""Running a DAG: a supervised execution FSM, a pool of workers, dependency counting.

Readiness is event-driven: a processor is handed to a worker the moment its last
dependency settles — never by polling, never level by level. At most ``limit``
processors run at once because exactly that many workers exist and the execution only
hands work to free ones; a processor waiting for capacity costs a deque slot, not a task.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any, Generic, TypeVar

import anyio
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream

from ..fsm import FsmSpec, StateMachine
from ..supervisor import TERMINATE, EventLoopDirective, SelfSupervised, Trigger
from ._fsm import (
    AllSettled,
    Begin,
    CancelRequested,
    ExecAction,
    ExecEvent,
    ExecState,
    ExecutorError,
    ProcessorDone,
    execution_spec,
)
from ._model import Dag, ProcessorInput
from ._node import NodeEvent, node_spec
from ._result import (
    DagEvent,
    DagFinished,
    DagResult,
    DagStarted,
    FailureStrategy,
    NodeFinished,
    NodeState,
    NodeStateChanged,
    ProcessorFailed,
    ProcessorOutcome,
)

P = TypeVar("P")

EventSink = Callable[[DagEvent], Awaitable[None]]


class RunContext(Generic[P]):
    """Everything one run knows; only the execution's actions and its workers touch it."""

    def __init__(
        self,
        dag: Dag[P],
        payload: P,
        limit: int,
        strategy: FailureStrategy,
        sink: EventSink | None,
    ) -> None:
        self.dag = dag
        self.initial_payload = payload
        self.limit = limit
        self.strategy = strategy
        self.sink = sink
        spec = node_spec()
        self.nodes: dict[str, StateMachine[NodeState, NodeEvent, None, None]] = {
            pid: spec.new_machine(NodeState.WAITING) for pid in dag.order
        }
        self.waiting_on = {pid: len(set(p.dependencies)) for pid, p in dag.processors.items()}
        self.chain_position = {pid: i for i, pid in enumerate(dag.transform_chain)}
        #: Per settled processor: (position of the latest transform it carries, payload).
        self.carried: dict[str, tuple[int, Any]] = {}
        self.inputs: dict[str, ProcessorInput[P]] = {}
        self.outcomes: dict[str, ProcessorOutcome] = {}
        self.ready: deque[str] = deque()
        self.running = 0
        self.unfinished = len(dag.processors)
        self.failed = False
        self.cancelling = False
        self.cancel_requested = False
        #: The worker running each processor, so a cancellation reaches it.
        self.workers: dict[str, _Worker] = {}
        self.inbox_send, self.inbox = anyio.create_memory_object_stream[ExecEvent](math.inf)
        self.work_send, self.work = anyio.create_memory_object_stream[str](math.inf)
        self.started_at = 0.0

    # -- actions ------------------------------------------------------------------------

    async def start_roots(self) -> None:
        self.started_at = anyio.current_time()
        if self.sink is not None:
            await self.sink(DagStarted(len(self.dag.processors)))
        for pid in self.dag.order:
            if self.waiting_on[pid] == 0:
                await self._advance(pid, NodeEvent.DEPENDENCIES_MET)
                self.ready.append(pid)
        await self._hand_out()

    async def settle(self, outcome: ProcessorOutcome) -> None:
        pid = outcome.id
        self.running -= 1
        self.unfinished -= 1
        self.workers.pop(pid, None)
        self.outcomes[pid] = outcome
        await self._advance(pid, _FINAL_EVENT[outcome.state])
        self._carry(pid, outcome)
        if self.sink is not None:
            await self.sink(NodeFinished(outcome))
        if outcome.state is NodeState.FAILED:
            self.failed = True
            if self.strategy is FailureStrategy.FAIL_FAST:
                return  # CancelRunning, next in this transition, cancels the dependents
        if self.cancelling:
            return
        passes = outcome.state is NodeState.DONE or (
            outcome.state is NodeState.FAILED and self.strategy is FailureStrategy.BEST_EFFORT
        )
        for child in self.dag.dependents[pid]:
            if self.nodes[child].state is not NodeState.WAITING:
                continue
            if passes:
                self.waiting_on[child] -= 1
                if self.waiting_on[child] == 0:
                    await self._advance(child, NodeEvent.DEPENDENCIES_MET)
                    self.ready.append(child)
            else:
                await self._skip(child)
        await self._hand_out()

    async def cancel_all(self, *, requested: bool) -> None:
        self.cancelling = True
        self.cancel_requested = self.cancel_requested or requested
        self.ready.clear()
        for pid in self.dag.order:
            if self.nodes[pid].state in (NodeState.WAITING, NodeState.READY):
                await self._advance(pid, NodeEvent.CANCEL)
                self._finish_without_running(pid, NodeState.CANCELLED)
        for pid, worker in self.workers.items():
            worker.cancel(pid)

    # -- helpers ------------------------------------------------------------------------

    async def _hand_out(self) -> None:
        """Give ready processors to free workers, in readiness order."""
        while self.ready and self.running < self.limit:
            pid = self.ready.popleft()
            self.inputs[pid] = self._input_for(pid)
            await self._advance(pid, NodeEvent.START)
            self.running += 1
            self.work_send.send_nowait(pid)

    async def _skip(self, pid: str) -> None:
        """Skip ``pid`` and, transitively, everything waiting on it."""
        pending = [pid]
        while pending:
            current = pending.pop()
            if self.nodes[current].state is not NodeState.WAITING:
                continue
            await self._advance(current, NodeEvent.SKIP)
            self._finish_without_running(current, NodeState.SKIPPED)
            pending.extend(self.dag.dependents[current])

    def _finish_without_running(self, pid: str, state: NodeState) -> None:
        self.unfinished -= 1
        self.outcomes[pid] = ProcessorOutcome(pid, state)

    async def _advance(self, pid: str, event: NodeEvent) -> None:
        machine = self.nodes[pid]
        before = machine.state
        await machine.handle(event, None)
        if self.sink is not None:
            await self.sink(NodeStateChanged(pid, before, machine.state))

    def _input_for(self, pid: str) -> ProcessorInput[P]:
        processor = self.dag.processors[pid]
        position, payload = -1, self.initial_payload
        for dep in processor.dependencies:
            carried = self.carried[dep]
            if carried[0] > position:
                position, payload = carried
        deps = {dep: self.outcomes[dep] for dep in processor.dependencies}
        return ProcessorInput(pid, payload, deps, 1)

    def _carry(self, pid: str, outcome: ProcessorOutcome) -> None:
        given = self.inputs.get(pid)
        if given is None:
            return
        position = max(
            (self.carried[d][0] for d in self.dag.processors[pid].dependencies), default=-1
        )
        payload = given.payload
        if outcome.state is NodeState.DONE and pid in self.chain_position:
            position = self.chain_position[pid]
            if outcome.result is not None:
                payload = outcome.result
        self.carried[pid] = (position, payload)

    def result(self, cancelled: bool) -> DagResult[P]:
        position, payload = -1, self.initial_payload
        for carried in self.carried.values():
            if carried[0] > position:
                position, payload = carried
        outcomes = {pid: self.outcomes[pid] for pid in self.dag.order if pid in self.outcomes}
        return DagResult(
            outcomes=outcomes,
            payload=payload,
            succeeded=len(outcomes) == len(self.dag.processors)
            and all(o.state is NodeState.DONE for o in outcomes.values()),
            cancelled=cancelled,
            duration=anyio.current_time() - self.started_at,
        )


_FINAL_EVENT = {
    NodeState.DONE: NodeEvent.SUCCEED,
    NodeState.FAILED: NodeEvent.FAIL,
    NodeState.CANCELLED: NodeEvent.CANCEL,
}


class DagExecution(SelfSupervised[ExecState, ExecEvent, "RunContext[Any]", ExecAction]):
    """The supervised FSM of one DAG run (its diagram is in the docs)."""

    @classmethod
    def fsm_spec(cls) -> FsmSpec[ExecState, ExecEvent, RunContext[Any], ExecAction]:
        return execution_spec()

    async def dispatch_state(
        self, state: ExecState, ctx: RunContext[Any]
    ) -> EventLoopDirective[ExecEvent]:
        if state is ExecState.STARTING:
            return Trigger(Begin())
        if state is ExecState.RUNNING or state is ExecState.CANCELLING:
            if ctx.unfinished == 0:
                return Trigger(AllSettled())
            try:  # completions usually wait already: take them without a scheduler round
                return Trigger(ctx.inbox.receive_nowait())
            except anyio.WouldBlock:
                return Trigger(await ctx.inbox.receive())
        return TERMINATE

    def event_for_action_error(self, msg: str) -> ExecEvent:
        return ExecutorError(msg)


class _Worker:
    """One of the ``limit`` workers. Its cancel scope lives as long as no processor is
    cancelled, so the common path creates no scope per processor; after a cancellation
    it reports the interrupted processor and serves on (later work is cancelled before
    it starts, because the run is cancelling)."""

    __slots__ = ("ctx", "work", "scope", "pid", "started", "attempt")

    def __init__(self, ctx: RunContext[Any], work: MemoryObjectReceiveStream[str]) -> None:
        self.ctx = ctx
        self.work = work
        self.scope = anyio.CancelScope()
        self.pid: str | None = None
        self.started = 0.0
        self.attempt = 0

    def cancel(self, pid: str) -> None:
        if self.pid == pid:
            self.scope.cancel()

    async def serve(self) -> None:
        async with self.work:
            while True:
                with anyio.CancelScope() as self.scope:
                    await self._serve_until_closed()
                    return
                pid, self.pid = self.pid, None
                assert pid is not None
                outcome = ProcessorOutcome(
                    pid,
                    NodeState.CANCELLED,
                    duration=anyio.current_time() - self.started,
                    attempts=self.attempt,
                )
                self.ctx.inbox_send.send_nowait(ProcessorDone(outcome))

    async def _serve_until_closed(self) -> None:
        ctx = self.ctx
        work = self.work
        while True:
            try:
                pid = work.receive_nowait()
            except anyio.WouldBlock:
                try:
                    pid = await work.receive()
                except anyio.EndOfStream:
                    return
            except anyio.EndOfStream:
                return
            if ctx.cancelling:
                outcome = ProcessorOutcome(pid, NodeState.CANCELLED)
            else:
                self.pid = pid
                ctx.workers[pid] = self
                outcome = await self._run(pid)
                self.pid = None
            ctx.inbox_send.send_nowait(ProcessorDone(outcome))

    async def _run(self, pid: str) -> ProcessorOutcome:
        processor = self.ctx.dag.processors[pid]
        given = self.ctx.inputs[pid]
        self.started = started = anyio.current_time()
        self.attempt = 0
        while True:
            self.attempt += 1
            if self.attempt > 1:
                given = ProcessorInput(pid, given.payload, given.dependencies, self.attempt)
            try:
                if processor.timeout is None:
                    result = await _call(processor.function, given, processor)
                else:
                    with anyio.fail_after(processor.timeout):
                        result = await _call(processor.function, given, processor)
            except Exception as exc:
                if self.attempt <= processor.retries:
                    await anyio.sleep(processor.retry_backoff * 2 ** (self.attempt - 1))
                    continue
                return ProcessorOutcome(
                    pid,
                    NodeState.FAILED,
                    error=_failed(pid, self.attempt, exc),
                    duration=anyio.current_time() - started,
                    attempts=self.attempt,
                )
            return ProcessorOutcome(
                pid, NodeState.DONE, result, None, anyio.current_time() - started, self.attempt
            )


def _failed(pid: str, attempts: int, exc: Exception) -> ProcessorFailed:
    error = ProcessorFailed(pid, attempts, exc)
    error.__cause__ = exc
    return error


async def _call(function: Callable[..., Any], given: ProcessorInput[Any], processor: Any) -> Any:
    if processor.is_async:
        return await function(given)
    if processor.blocking:
        return await anyio.to_thread.run_sync(function, given)
    return function(given)


async def execute_dag(
    dag: Dag[P],
    payload: P,
    *,
    limit: int = 64,
    strategy: FailureStrategy = FailureStrategy.FAIL_FAST,
    on_event: EventSink | None = None,
    name: str = "dag",
) -> DagResult[P]:
    """Run ``dag`` on ``payload`` and return every processor's outcome.

    At most ``limit`` processors run at once. A failure is handled by ``strategy``; it is
    reported in the result, never raised. ``on_event`` (awaited, so a slow sink slows
    the run rather than growing memory) sees every node state change. Cancelling the
    caller cancels every running processor.
    """
    if limit < 1:
        raise ValueError(f"limit must be >= 1, not {limit}")
    return await _execute(RunContext(dag, payload, limit, strategy, on_event), name)


async def _execute(ctx: RunContext[P], name: str) -> DagResult[P]:
    execution = DagExecution(name)
    with ctx.inbox_send, ctx.inbox:
        async with anyio.create_task_group() as tg, ctx.work_send, ctx.work:
            for _ in range(min(ctx.limit, max(len(ctx.dag), 1))):
                tg.start_soon(_Worker(ctx, ctx.work.clone()).serve)
            try:
                await execution.run(ExecState.STARTING, ctx)
            finally:
                tg.cancel_scope.cancel()
    result = ctx.result(cancelled=ctx.cancel_requested)
    if ctx.sink is not None:
        await ctx.sink(DagFinished(result.succeeded, result.cancelled, result.duration))
    return result


class DagStream(Generic[P]):
    """Events of a running DAG, as an async iterator, and its result once it ends."""

    def __init__(self, events: MemoryObjectReceiveStream[DagEvent], ctx: RunContext[P]) -> None:
        self._events = events
        self._ctx = ctx
        self.result: DagResult[P] | None = None

    def cancel(self) -> None:
        """Ask the run to stop: running processors are cancelled, waiting ones never
        start, and the result says ``cancelled``. Does nothing once the run has ended."""
        with suppress(anyio.ClosedResourceError):
            self._ctx.inbox_send.send_nowait(CancelRequested())

    def __aiter__(self) -> AsyncIterator[DagEvent]:
        return self._events.__aiter__()


@asynccontextmanager
async def stream_dag(
    dag: Dag[P],
    payload: P,
    *,
    limit: int = 64,
    strategy: FailureStrategy = FailureStrategy.FAIL_FAST,
    buffer: int = 64,
) -> AsyncIterator[DagStream[P]]:
    """Run ``dag`` in the background and iterate over its events::

        async with stream_dag(dag, payload) as stream:
            async for event in stream:
                ...
        print(stream.result)

    The buffer is bounded: a slow consumer slows the run. Leaving the block early
    cancels the run.
    """
    if limit < 1:
        raise ValueError(f"limit must be >= 1, not {limit}")
    send, receive = anyio.create_memory_object_stream[DagEvent](buffer)
    ctx = RunContext(dag, payload, limit, strategy, send.send)
    stream: DagStream[P] = DagStream(receive, ctx)

    async def run() -> None:
        async with send:
            stream.result = await _execute(ctx, "dag")

    async with anyio.create_task_group() as tg, receive:
        tg.start_soon(run)
        try:
            yield stream
        finally:
            if stream.result is None:
                tg.cancel_scope.cancel()
