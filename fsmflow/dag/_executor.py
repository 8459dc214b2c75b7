"""Running a DAG: a supervised execution FSM, a pool of workers, dependency counting.

Readiness is event-driven: a processor is handed to a worker the moment its last
dependency settles — never by polling, never level by level. At most ``limit``
processors run at once because exactly that many workers exist and the execution only
hands work to free ones; a processor waiting for capacity costs a deque slot, not a task.
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from types import MappingProxyType
from typing import Any, Generic, Protocol, TypeVar

import anyio
import anyio.to_thread
import trio
import trio.lowlevel
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
from ._model import Dag, Processor, ProcessorInput
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

_EMPTY: Mapping[str, ProcessorOutcome] = MappingProxyType({})


class _Event(Protocol):
    """What a run needs of an event: anyio's, or trio's own (the same methods)."""

    def set(self) -> None: ...
    def is_set(self) -> bool: ...
    async def wait(self) -> None: ...


def _loop_primitives() -> tuple[Callable[[], float], Callable[[], _Event]]:
    """The running loop's clock and event class: trio's own in a trio task, since anyio's
    look the backend up on every call (a clock reading costs as much as a dict build, an
    event over ten times more), and anyio's on any other backend. Picked once per run,
    like the supervisor loop's checkpoint."""
    if trio.lowlevel.in_trio_task():
        return trio.current_time, trio.Event
    return anyio.current_time, anyio.Event


class RunContext(Generic[P]):
    """Everything one run knows; only the execution's actions and its workers touch it.

    Work goes out on ``queue`` (inputs of processors already ``RUNNING``) and
    completions come back on ``inbox``; both are plain deques, since every producer and
    consumer runs in one thread, with an event only for a side that found nothing."""

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
        self.clock, self.new_event = _loop_primitives()
        spec = node_spec()
        self.nodes: dict[str, StateMachine[NodeState, NodeEvent, None, None]] = {
            pid: spec.new_machine(NodeState.WAITING) for pid in dag.order
        }
        self.waiting_on = {pid: len(p.dependencies) for pid, p in dag.processors.items()}
        self.chain_position = {pid: i for i, pid in enumerate(dag.transform_chain)}
        #: Without transforms the payload never changes, so nothing needs carrying.
        self.carries = bool(dag.transform_chain)
        #: Per started processor: (position of the latest transform it got, its payload).
        self.given: dict[str, tuple[int, Any]] = {}
        #: Per settled processor: (position of the latest transform it carries, payload).
        self.carried: dict[str, tuple[int, Any]] = {}
        self.outcomes: dict[str, ProcessorOutcome] = {}
        self.ready: deque[str] = deque()
        self.running = 0
        self.unfinished = len(dag.processors)
        self.failed = False
        #: The execution's own failures (an action of its FSM raised), in order.
        self.errors: list[str] = []
        self.cancelling = False
        self.cancel_requested = False
        self.closed = False
        self.workers: list[_Worker] = []
        self.queue: deque[ProcessorInput[P]] = deque()
        #: Idle workers' wake-up events, and how many were woken but have not run yet.
        self.idle: list[_Event] = []
        self.waking = 0
        self.inbox: deque[ExecEvent] = deque()
        self.inbox_waiter: _Event | None = None
        self.started_at = 0.0

    def post(self, event: ExecEvent) -> None:
        """Put ``event`` on the execution's inbox (never blocks)."""
        self.inbox.append(event)
        waiter = self.inbox_waiter
        if waiter is not None:
            self.inbox_waiter = None
            waiter.set()

    async def next_event(self) -> ExecEvent:
        """The oldest event on the inbox, waiting for one if need be."""
        inbox = self.inbox
        while not inbox:
            waiter = self.inbox_waiter = self.new_event()
            await waiter.wait()
        return inbox.popleft()

    def wake_worker(self) -> None:
        """Wake one idle worker for queued work, unless one is already on its way: work
        is handed out in batches, and a woken worker wakes the next only if work remains
        after it takes its own, so quick processors cost no wake-up each."""
        if self.queue and self.idle and not self.waking:
            self.waking += 1
            self.idle.pop().set()

    # -- actions ------------------------------------------------------------------------

    async def start_roots(self) -> None:
        self.started_at = self.clock()
        if self.sink is not None:
            await self.sink(DagStarted(len(self.dag.processors)))
        waiting_on = self.waiting_on
        for pid in self.dag.order:
            if waiting_on[pid] == 0:
                await self._advance(pid, NodeEvent.DEPENDENCIES_MET)
                self.ready.append(pid)
        await self._hand_out()

    async def settle(self, outcome: ProcessorOutcome) -> None:
        pid = outcome.id
        state = outcome.state
        self.running -= 1
        self.unfinished -= 1
        self.outcomes[pid] = outcome
        sink = self.sink
        if sink is None:
            event = NodeEvent.SUCCEED if state is NodeState.DONE else _FINAL_EVENT[state]
            await self.nodes[pid].handle(event, None)
        else:
            await self._advance(pid, _FINAL_EVENT[state])
        if self.carries:
            self._carry(pid, outcome)
        if sink is not None:
            await sink(NodeFinished(outcome))
        if state is NodeState.FAILED:
            self.failed = True
            if self.strategy is FailureStrategy.FAIL_FAST:
                return  # CancelRunning, next in this transition, cancels the dependents
        if self.cancelling:
            return
        waiting_on = self.waiting_on
        if not self.failed and sink is None:
            # Nothing failed, so nothing was skipped: every dependent is still WAITING.
            ready = self.ready
            nodes = self.nodes
            for child in self.dag.dependents[pid]:
                left = waiting_on[child] - 1
                waiting_on[child] = left
                if left == 0:
                    await nodes[child].handle(NodeEvent.DEPENDENCIES_MET, None)
                    ready.append(child)
        else:
            passes = state is NodeState.DONE or (
                state is NodeState.FAILED and self.strategy is FailureStrategy.BEST_EFFORT
            )
            for child in self.dag.dependents[pid]:
                if self.nodes[child].state is not NodeState.WAITING:
                    continue
                if passes:
                    waiting_on[child] -= 1
                    if waiting_on[child] == 0:
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
        # Handed out but not taken by a worker yet: cancelled before they start.
        while self.queue:
            self.post(ProcessorDone(ProcessorOutcome(self.queue.popleft().id, NodeState.CANCELLED)))
        for worker in self.workers:
            worker.cancel()

    # -- helpers ------------------------------------------------------------------------

    async def _hand_out(self) -> None:
        """Give ready processors to the workers, in readiness order."""
        ready = self.ready
        if not ready:
            return
        limit = self.limit
        queue = self.queue
        nodes = self.nodes
        sink = self.sink
        while ready and self.running < limit:
            pid = ready.popleft()
            given = self._input_for(pid)
            if sink is None:
                await nodes[pid].handle(NodeEvent.START, None)
            else:
                await self._advance(pid, NodeEvent.START)
            self.running += 1
            queue.append(given)
        self.wake_worker()

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
        dependencies = self.dag.processors[pid].dependencies
        payload = self.initial_payload
        if self.carries:
            position = -1
            for dep in dependencies:
                carried = self.carried[dep]
                if carried[0] > position:
                    position, payload = carried
            self.given[pid] = (position, payload)
        if not dependencies:
            return ProcessorInput(pid, payload, _EMPTY, 1)
        outcomes = self.outcomes
        return ProcessorInput(pid, payload, {dep: outcomes[dep] for dep in dependencies}, 1)

    def _carry(self, pid: str, outcome: ProcessorOutcome) -> None:
        given = self.given.get(pid)
        if given is None:
            return
        position, payload = given
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
            succeeded=not self.errors
            and len(outcomes) == len(self.dag.processors)
            and all(o.state is NodeState.DONE for o in outcomes.values()),
            cancelled=cancelled,
            duration=self.clock() - self.started_at,
            error="; ".join(self.errors) if self.errors else None,
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
        if state is ExecState.RUNNING or state is ExecState.CANCELLING:
            if ctx.unfinished == 0:
                return Trigger(AllSettled())
            inbox = ctx.inbox
            # Completions usually wait already: take them without a scheduler round.
            return Trigger(inbox.popleft() if inbox else await ctx.next_event())
        if state is ExecState.STARTING:
            return Trigger(Begin())
        return TERMINATE

    def event_for_action_error(self, msg: str) -> ExecEvent:
        return ExecutorError(msg)


class _Worker:
    """One of the ``limit`` workers: it takes queued processors until the run ends.

    Its cancel scope lives as long as no processor is cancelled, so the common path
    creates no scope per processor; after a cancellation it reports the interrupted
    processor and serves on."""

    __slots__ = ("ctx", "scope", "pid", "started", "attempt")

    def __init__(self, ctx: RunContext[Any]) -> None:
        self.ctx = ctx
        self.scope = anyio.CancelScope()
        self.pid: str | None = None
        self.started = 0.0
        self.attempt = 0

    def cancel(self) -> None:
        """Cancel the processor this worker runs, if any."""
        if self.pid is not None:
            self.scope.cancel()

    async def serve(self) -> None:
        while True:
            with anyio.CancelScope() as self.scope:
                await self._serve()
            pid, self.pid = self.pid, None
            if pid is not None:  # None: cancelled just after its processor finished
                outcome = ProcessorOutcome(
                    pid,
                    NodeState.CANCELLED,
                    duration=self.ctx.clock() - self.started,
                    attempts=self.attempt,
                )
                self.ctx.post(ProcessorDone(outcome))

    async def _serve(self) -> None:
        ctx = self.ctx
        queue = ctx.queue
        idle = ctx.idle
        processors = ctx.dag.processors
        clock = ctx.clock
        while True:
            if not queue:
                woken = ctx.new_event()
                idle.append(woken)
                try:
                    await woken.wait()
                finally:
                    if woken.is_set():
                        ctx.waking -= 1
                    else:
                        idle.remove(woken)
                continue
            given = queue.popleft()
            if queue:
                ctx.wake_worker()
            pid = given.id
            processor = processors[pid]
            self.pid = pid
            self.started = started = clock()
            self.attempt = 1
            try:
                if processor.is_async and processor.timeout is None:
                    result = await processor.function(given)
                else:
                    result = await _attempt(processor, given)
            except Exception as exc:
                outcome = await self._retry(processor, given, exc)
            else:
                outcome = ProcessorOutcome(pid, NodeState.DONE, result, None, clock() - started, 1)
            self.pid = None
            ctx.post(ProcessorDone(outcome))

    async def _retry(
        self, processor: Processor[Any], given: ProcessorInput[Any], exc: Exception
    ) -> ProcessorOutcome:
        """Retry after the first attempt failed with ``exc``, as ``processor`` allows."""
        pid = processor.id
        while self.attempt <= processor.retries:
            await anyio.sleep(processor.retry_backoff * 2 ** (self.attempt - 1))
            self.attempt += 1
            given = ProcessorInput(pid, given.payload, given.dependencies, self.attempt)
            try:
                result = await _attempt(processor, given)
            except Exception as again:
                exc = again
                continue
            return ProcessorOutcome(
                pid, NodeState.DONE, result, None, self.ctx.clock() - self.started, self.attempt
            )
        return ProcessorOutcome(
            pid,
            NodeState.FAILED,
            error=_failed(pid, self.attempt, exc),
            duration=self.ctx.clock() - self.started,
            attempts=self.attempt,
        )


async def _attempt(processor: Processor[Any], given: ProcessorInput[Any]) -> Any:
    """One attempt at ``processor``, under its timeout if it has one."""
    if processor.timeout is None:
        return await _call(processor.function, given, processor)
    with anyio.fail_after(processor.timeout):
        return await _call(processor.function, given, processor)


def _failed(pid: str, attempts: int, exc: Exception) -> ProcessorFailed:
    error = ProcessorFailed(pid, attempts, exc)
    error.__cause__ = exc
    return error


async def _call(
    function: Callable[..., Any], given: ProcessorInput[Any], processor: Processor[Any]
) -> Any:
    if processor.is_async:
        return await function(given)
    if processor.blocking:
        return await anyio.to_thread.run_sync(function, given)
    result = function(given)
    if inspect.isawaitable(result):  # a sync callable handing back an awaitable
        return await result
    return result


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
    try:
        async with anyio.create_task_group() as tg:
            for _ in range(min(ctx.limit, max(len(ctx.dag), 1))):
                worker = _Worker(ctx)
                ctx.workers.append(worker)
                tg.start_soon(worker.serve)
            try:
                await execution.run(ExecState.STARTING, ctx)
            finally:
                tg.cancel_scope.cancel()
    finally:
        ctx.closed = True
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
        if not self._ctx.closed:
            self._ctx.post(CancelRequested())

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
                print(event)
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
