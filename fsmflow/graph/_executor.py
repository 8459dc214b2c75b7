"""Running graphs: :func:`execute`, :func:`execute_stream`, :func:`resume_from`,
:func:`resume`, and the :class:`GraphStream` a streaming run is watched through.

A run id (``trace_id``) names one execution; a thread id names the conversation a run
belongs to. Without ``thread_id`` a run is a thread of its own, named by its trace id.
Giving an existing thread new input (``thread_id=``) merges it into the thread's saved
state through the reducers and runs the graph again from its start; resuming continues
the thread's newest checkpoint (or forks it at an older one).

A run with a store holds its thread's lease (:mod:`._lease`) from before it reads the
thread until it ends: one process runs a thread at a time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any, Generic, TypeVar

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream

from ..diagrams import Flowchart, NodeClass
from ..store import Store
from ..supervisor import ChannelBuilder, SelfSupervisedWithExternalEvents
from ._checkpoint import Checkpointer, CheckpointPolicy, CheckpointTrigger, Lineage, shared_codec
from ._context import DEFAULT_MODES, RunContext
from ._errors import GraphError, RunExists, StreamingRequired, ThreadBusy
from ._events import GraphEvent, GraphResult, StreamMode
from ._execution import GraphExecution
from ._frame import Frame, find_pending, release
from ._fsm import ExecEvent, ExecState
from ._graph import Graph
from ._handle import GraphHandle
from ._history import load, read_head, remove_thread
from ._interrupts import BarrierId, Interrupt, InterruptId
from ._lease import DEFAULT_LEASE_TTL, ThreadLease, hold_thread
from ._options import DEFAULT_MAX_CONCURRENCY, DEFAULT_MAX_STEPS, RunOptions, new_trace_id
from ._state import Ownership

S = TypeVar("S")


class _NoValue:
    def __repr__(self) -> str:
        return "NO_VALUE"


#: "No resume value given" (``None`` is a value).
NO_VALUE: Any = _NoValue()


def _refuse_barriers(graph: Graph[Any]) -> None:
    if graph.barriers:
        raise StreamingRequired(graph.barriers)


def _initial(graph: Graph[S], state: S | Mapping[str, Any]) -> S:
    schema = graph.schema
    if schema.is_attrs and isinstance(state, Mapping):
        try:
            return schema.state_type(**state)
        except TypeError as exc:
            raise TypeError(
                f"cannot build a {schema.state_type.__name__} from the input: {exc}"
            ) from exc
    return state  # type: ignore[return-value]


def _held(
    store: Store | None, thread: str, options: RunOptions, standby: bool
) -> AbstractAsyncContextManager[ThreadLease | None]:
    """The thread's lease for a run (nothing without a store)."""
    if store is None:
        return nullcontext(None)
    return hold_thread(store, thread, options.lease_ttl, standby=standby, run=True)


async def _start(
    graph: Graph[S],
    state: S | Mapping[str, Any],
    options: RunOptions,
    run_id: str,
    thread: str,
    new_input: bool,
    replace: bool,
    lease: ThreadLease | None,
) -> RunContext[S]:
    """The context of a new run: on a new thread, or (``new_input``: the caller named
    the thread) on an existing one with ``state`` merged in as new input. With a store,
    the caller holds the thread's ``lease``."""
    store = options.store
    policy = options.policy
    if store is None or lease is None:
        return RunContext(graph, _initial(graph, state), options, run_id, thread)
    codec = shared_codec()
    head = await read_head(store, thread, codec)
    if head is not None and replace:
        await remove_thread(store, thread, lease.fence)
        head = None
    if head is None:
        lineage = Lineage(None, None, None, 1)
        checkpointer = Checkpointer(
            store, graph, thread, run_id, policy, options.compact_after, lineage, lease.fence, codec
        )
        ctx = RunContext(
            graph, _initial(graph, state), options, run_id, thread, checkpointer=checkpointer
        )
        ctx.first_checkpoint = CheckpointTrigger.INPUT if policy.every_step else None
        lease.watch(ctx)
        return ctx
    if not new_input:
        raise RunExists(thread)
    loaded = await load(store, graph, thread, codec=codec)
    restored = loaded.restored
    if restored.status in ("waiting", "running"):
        raise ThreadBusy(thread, restored.status, restored.next_node)
    if not isinstance(state, Mapping):
        raise TypeError(
            f"new input for thread {thread!r} is merged into its saved state: pass a mapping "
            f"of the keys to update, not a whole {type(state).__name__}"
        )
    own = Ownership(set(graph.schema.reducers), True)
    merged = graph.schema.apply(restored.state, state, "<input>", own)
    lineage = Lineage(loaded.head, restored.checkpoint, restored.chain, loaded.newest + 1)
    checkpointer = Checkpointer(
        store, graph, thread, run_id, policy, options.compact_after, lineage, lease.fence, codec
    )
    checkpointer.record([state])
    ctx = RunContext(
        graph,
        merged,
        options,
        run_id,
        thread,
        step=restored.step,
        occurrences=restored.occurrences,
        checkpointer=checkpointer,
        own=own,
    )
    ctx.first_checkpoint = CheckpointTrigger.INPUT if policy.every_step else None
    lease.watch(ctx)
    return ctx


def _answer(
    frame: Frame, value: Any, values: Mapping[InterruptId | BarrierId | str, Any] | None
) -> None:
    """Record the resume values given to ``resume``/``resume_from`` (the caller learns
    whether the run took them from the call itself, so they are stored with the run's
    next checkpoint rather than one of their own)."""
    pending = find_pending(frame, None)
    if value is not NO_VALUE:
        if len(pending) != 1:
            shown = ", ".join(str(i.id) for i in pending) or "nothing"
            raise ValueError(
                f"value= answers the one interrupt the run waits on, but it waits on {shown}; "
                "pass values={interrupt_id: value, ...}"
            )
        release(frame, pending[0], value)
    for target, given in (values or {}).items():
        matched = find_pending(frame, target)
        if not matched:
            shown = ", ".join(str(i.id) for i in pending) or "nothing"
            raise ValueError(f"no interrupt {target!s} waits (the run waits on {shown})")
        for interrupt in matched:
            release(frame, interrupt, given)
    frame.interrupts = []


async def _resumed(
    graph: Graph[S],
    thread_id: str,
    store: Store,
    options: RunOptions,
    policy: CheckpointPolicy | None,
    checkpoint: int | None,
    force: bool,
    value: Any,
    values: Mapping[InterruptId | BarrierId | str, Any] | None,
    lease: ThreadLease,
) -> RunContext[S]:
    """The context that continues ``thread_id`` (or forks it at ``checkpoint``); the
    caller holds the thread's ``lease``."""
    codec = shared_codec()
    loaded = await load(store, graph, thread_id, checkpoint=checkpoint, force=force, codec=codec)
    restored = loaded.restored
    fork = checkpoint is not None and checkpoint != loaded.newest
    run_id = new_trace_id() if fork else restored.run_id
    policy = policy or restored.policy
    lineage = Lineage(
        loaded.head, restored.checkpoint, None if fork else restored.chain, loaded.newest + 1
    )
    options = RunOptions(
        options.max_steps,
        store,
        policy,
        options.compact_after,
        options.max_concurrency,
        options.lease_ttl,
    )
    checkpointer = Checkpointer(
        store, graph, thread_id, run_id, policy, options.compact_after, lineage, lease.fence, codec
    )
    frame = restored.frame
    _answer(frame, value, values)
    ctx = RunContext(
        graph,
        restored.state,
        options,
        run_id,
        thread_id,
        step=restored.step,
        run_start=restored.step if fork else restored.run_start,
        frame=frame,
        occurrences=restored.occurrences,
        resumed=True,
        checkpointer=checkpointer,
        own=Ownership(set(graph.schema.reducers), True),
    )
    if fork:
        ctx.first_checkpoint = CheckpointTrigger.FORK
    lease.watch(ctx)
    return ctx


async def _run_plain(ctx: RunContext[S]) -> GraphResult[S]:
    execution = GraphExecution(ctx)
    await execution.run(ExecState.STARTING, ctx)
    if ctx.error is not None:
        raise ctx.error
    assert ctx.result is not None
    return ctx.result


async def execute(
    graph: Graph[S],
    state: S | Mapping[str, Any],
    *,
    max_steps: int = DEFAULT_MAX_STEPS,
    store: Store | None = None,
    policy: CheckpointPolicy | None = None,
    compact_after: int = 20,
    trace_id: str | None = None,
    thread_id: str | None = None,
    replace: bool = False,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    lease_ttl: float = DEFAULT_LEASE_TTL,
    standby: bool = False,
) -> GraphResult[S]:
    """Run ``graph`` from its start on ``state`` and return the result.

    Raises the run's :class:`GraphError` when it fails. With ``store``, checkpoints are
    saved by ``policy`` into the thread ``thread_id`` (default: a thread of its own,
    named by ``trace_id``, random by default); a run that reaches an interrupt stops
    there and returns a result listing it (``result.interrupts``) — continue it with
    :func:`resume`. Without a store a graph with barriers raises
    :class:`StreamingRequired` (use :func:`execute_stream`). No events are built: this
    is the fast path.

    On a thread that already has checkpoints, ``state`` (a mapping of keys to update) is
    merged into the saved state through the reducers (:class:`ThreadBusy` when its last
    run has not finished); a ``trace_id`` whose thread has checkpoints is refused with
    :class:`RunExists` unless ``replace=True`` deletes them first.

    With a store the run holds its thread's lease while it runs (``lease_ttl`` seconds,
    renewed every third of that): :class:`ThreadHeld` while another live process runs
    the thread — or, with ``standby``, wait and take over when it ends or dies. A run that
    loses its lease stops without writing and raises :class:`ThreadLeaseLost`.
    """
    if store is None:
        _refuse_barriers(graph)
    options = RunOptions(
        max_steps, store, policy or CheckpointPolicy(), compact_after, max_concurrency, lease_ttl
    )
    run_id = trace_id or new_trace_id()
    thread = thread_id or run_id
    async with _held(store, thread, options, standby) as lease:
        ctx = await _start(
            graph, state, options, run_id, thread, thread_id is not None, replace, lease
        )
        return await _run_plain(ctx)


class GraphStream(Generic[S]):
    """A running graph: iterate over its events, talk to it through :attr:`handle`.

    After the stream ends, :attr:`result` (completed, or stopped at interrupts),
    :attr:`error` (failed) or :attr:`cancelled_at` (cancelled) says how.
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
        self.thread_id = ctx.thread_id

    @property
    def result(self) -> GraphResult[S] | None:
        return self._ctx.result

    @property
    def error(self) -> GraphError | None:
        return self._ctx.error

    @property
    def cancelled_at(self) -> str | None:
        return self._ctx.cancelled_at

    @property
    def interrupts(self) -> tuple[Interrupt, ...]:
        """What the run waits on now (empty while it runs)."""
        return tuple(self._ctx.frame.interrupts)

    def flowchart(self, *, title: str | None = None) -> Flowchart:
        """The graph with this run's position highlighted: the node it runs or waits
        at (barriers and interrupted nodes as waiting), or the node it failed at."""
        return self._ctx.graph.flowchart(title=title, highlight=run_highlight(self._ctx))

    def __aiter__(self) -> AsyncIterator[GraphEvent]:
        return self._events.__aiter__()


def run_highlight(ctx: RunContext[Any]) -> dict[str, NodeClass]:
    frame = ctx.frame
    marks: dict[str, NodeClass] = {}
    for entry in ctx.log:
        marks[entry.node] = NodeClass.DONE if entry.success else NodeClass.FAILED
    for interrupt in frame.interrupts:
        marks["/".join((*interrupt.id.path, interrupt.id.node))] = NodeClass.WAITING
    if not frame.interrupts:
        for node in frame.next_nodes:
            if ctx.error is not None:
                marks[node] = NodeClass.FAILED
            else:
                marks[node] = NodeClass.CURRENT
    return marks


@asynccontextmanager
async def _stream(
    ctx: RunContext[S],
    buffer: int,
    capacity: int,
    modes: Iterable[StreamMode],
    stop_at_interrupts: bool,
) -> AsyncIterator[GraphStream[S]]:
    send, receive = anyio.create_memory_object_stream[GraphEvent](buffer)
    ctx.set_sink(send.send, modes)
    ctx.waits = not stop_at_interrupts
    sender, receiver, watcher = ChannelBuilder[ExecEvent, ExecState](capacity).build(
        ExecState.STARTING
    )
    ctx.timer_sender = sender.clone()
    handle = GraphHandle(ctx, sender, watcher)
    runner = SelfSupervisedWithExternalEvents(GraphExecution(ctx), receiver, watcher)
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


def _modes(stream_mode: StreamMode | Iterable[StreamMode]) -> frozenset[StreamMode]:
    if isinstance(stream_mode, StreamMode):
        return frozenset({stream_mode})
    return frozenset(stream_mode)


@asynccontextmanager
async def execute_stream(
    graph: Graph[S],
    state: S | Mapping[str, Any],
    *,
    max_steps: int = DEFAULT_MAX_STEPS,
    store: Store | None = None,
    policy: CheckpointPolicy | None = None,
    compact_after: int = 20,
    trace_id: str | None = None,
    thread_id: str | None = None,
    replace: bool = False,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    buffer: int = 64,
    capacity: int = 64,
    stream_mode: StreamMode | Iterable[StreamMode] = DEFAULT_MODES,
    stop_at_interrupts: bool = False,
    lease_ttl: float = DEFAULT_LEASE_TTL,
    standby: bool = False,
) -> AsyncIterator[GraphStream[S]]:
    """Run ``graph`` in the background; iterate over its events and steer it::

        async with execute_stream(graph, state) as run:
            async for event in run:
                if isinstance(event, BarrierWaiting):
                    await run.handle.approve(event.barrier_id)
        print(run.result)

    ``stream_mode`` chooses what the stream carries besides the events needed to steer
    the run (see :class:`StreamMode`). The event buffer holds ``buffer`` events: a slow
    consumer slows the run down. At an interrupt the run waits for values sent through the
    handle — or, with ``stop_at_interrupts``, ends there (checkpointed, like
    :func:`execute`). Leaving the block before the run ends cancels it; so does closing
    the stream. ``capacity`` bounds the handle's queue of decisions and requests. The
    other arguments are :func:`execute`'s; the run holds its thread's lease until it
    ends (a run waiting at an interrupt holds it too), and one that loses it ends with
    :class:`GraphLeaseLost`.
    """
    options = RunOptions(
        max_steps, store, policy or CheckpointPolicy(), compact_after, max_concurrency, lease_ttl
    )
    run_id = trace_id or new_trace_id()
    thread = thread_id or run_id
    async with _held(store, thread, options, standby) as lease:
        ctx = await _start(
            graph, state, options, run_id, thread, thread_id is not None, replace, lease
        )
        async with _stream(ctx, buffer, capacity, _modes(stream_mode), stop_at_interrupts) as run:
            yield run


@asynccontextmanager
async def resume_from(
    graph: Graph[S],
    thread_id: str,
    *,
    store: Store,
    checkpoint: int | None = None,
    value: Any = NO_VALUE,
    values: Mapping[InterruptId | BarrierId | str, Any] | None = None,
    force: bool = False,
    max_steps: int = DEFAULT_MAX_STEPS,
    policy: CheckpointPolicy | None = None,
    compact_after: int = 20,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    buffer: int = 64,
    capacity: int = 64,
    stream_mode: StreamMode | Iterable[StreamMode] = DEFAULT_MODES,
    stop_at_interrupts: bool = False,
    lease_ttl: float = DEFAULT_LEASE_TTL,
    standby: bool = False,
) -> AsyncIterator[GraphStream[S]]:
    """Continue ``thread_id`` from its newest checkpoint in ``store``, as a stream (see
    :func:`execute_stream`).

    The run keeps its trace id, its step count and its checkpoint policy (unless
    ``policy`` is given); interrupts it waited on wait again under the same ids — or take
    ``value`` (the one waiting interrupt's) or ``values`` (by interrupt id, barrier id or
    barrier node name) at once. With ``checkpoint``, the thread is forked at that
    checkpoint instead: a new run (new trace id) continues from it, and the checkpoints
    after it stay as they were.

    Raises :class:`CheckpointNotFound`, and :class:`GraphHashMismatch` when the graph
    changed since the checkpoint — unless ``force``, which warns instead. The thread's
    lease is taken before the checkpoint is read: :class:`ThreadHeld` while another live
    process runs the thread, unless ``standby`` (then the newest checkpoint is read once
    that process has ended or died: a standby continues where its predecessor stopped).
    """
    options = RunOptions(
        max_steps, store, CheckpointPolicy(), compact_after, max_concurrency, lease_ttl
    )
    async with hold_thread(store, thread_id, lease_ttl, standby=standby, run=True) as lease:
        ctx = await _resumed(
            graph, thread_id, store, options, policy, checkpoint, force, value, values, lease
        )
        async with _stream(ctx, buffer, capacity, _modes(stream_mode), stop_at_interrupts) as run:
            yield run


async def resume(
    graph: Graph[S],
    thread_id: str,
    *,
    store: Store,
    checkpoint: int | None = None,
    value: Any = NO_VALUE,
    values: Mapping[InterruptId | BarrierId | str, Any] | None = None,
    force: bool = False,
    max_steps: int = DEFAULT_MAX_STEPS,
    policy: CheckpointPolicy | None = None,
    compact_after: int = 20,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    lease_ttl: float = DEFAULT_LEASE_TTL,
    standby: bool = False,
) -> GraphResult[S]:
    """:func:`resume_from` without a stream (LangGraph's ``invoke(Command(resume=...))``):
    continue the thread and return the result — which stops at the next interrupt, like
    :func:`execute`. Raises :class:`ThreadLeaseLost` when the run loses its lease."""
    options = RunOptions(
        max_steps, store, CheckpointPolicy(), compact_after, max_concurrency, lease_ttl
    )
    async with hold_thread(store, thread_id, lease_ttl, standby=standby, run=True) as lease:
        ctx = await _resumed(
            graph, thread_id, store, options, policy, checkpoint, force, value, values, lease
        )
        return await _run_plain(ctx)
