"""Running a graph: a supervised execution FSM that runs one node per step.

:class:`GraphExecution` is a :class:`~fsmflow.supervisor.SelfSupervised` with an
external-event policy: while nodes run it ``POLL`` s its channel (decisions, cancel and
checkpoint requests are taken between nodes), while a barrier waits it ``BLOCK`` s on it.
Its ``dispatch_state`` runs the current node and reports what happened as an event; the
FSM's actions commit it (see :mod:`._fsm`), on the run's :class:`RunContext`
(:mod:`._context`). The entry points — :func:`execute`, :func:`execute_stream`,
:func:`resume_from`, :func:`resume` — live here too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Generic, TypeVar

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream

from ..fsm import FsmSpec
from ..store import CheckpointStore
from ..supervisor import (
    TERMINATE,
    ChannelBuilder,
    EventLoopDirective,
    ExternalEventMode,
    ExternalEventPolicy,
    SelfSupervised,
    SelfSupervisedWithExternalEvents,
    Trigger,
)
from ._checkpoint import CheckpointPolicy, load_run
from ._context import DEFAULT_MAX_STEPS, RunContext, RunOptions, new_trace_id
from ._errors import (
    GraphError,
    StreamingRequired,
)
from ._events import (
    GraphEvent,
    GraphResult,
)
from ._fsm import (
    BEGIN,
    CANCEL,
    DecisionReady,
    ExecAction,
    ExecEvent,
    ExecState,
    ExecutorFailed,
    execution_spec,
)
from ._graph import (
    Graph,
)
from ._handle import GraphHandle

S = TypeVar("S")


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
