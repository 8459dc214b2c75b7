"""What one graph run knows: :class:`RunContext` and its options.

Only the execution's ``dispatch_state`` and its FSM's actions touch a run context. The
work is split by concern: running a step (:mod:`._step`, with its tasks in
:mod:`._tasks`), committing it and ending the run (:mod:`._commit`), and waiting at
interrupts (:mod:`._waiting`); this module holds the run's state and the event plumbing.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Iterable
from contextlib import suppress
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio
import anyio.abc
import trio

from ..store import Codec, StoreError
from ..supervisor import EventSender, ExternalChannelClosed
from . import _commit, _step, _waiting
from ._checkpoint import Checkpointer, CheckpointTrigger, shared_codec
from ._errors import GraphError
from ._events import (
    CustomEvent,
    ExecutionEntry,
    GraphEvent,
    GraphResult,
    StreamMode,
)
from ._frame import Frame
from ._fsm import (
    Decide,
    ExecEvent,
    InterruptTimedOut,
    NodeDone,
    OwnershipLost,
    Paused,
    Resume,
    StepFailed,
)
from ._graph import Graph
from ._interrupts import Interrupt, InterruptId, TaskScope
from ._options import RunOptions
from ._state import Ownership

if TYPE_CHECKING:
    from ._lease import ThreadLease
    from ._waiting import DecisionBox, Waiter

S = TypeVar("S")

EventSink = Callable[[GraphEvent], Awaitable[None]]

#: The modes a stream has unless told otherwise: every lifecycle event and custom ones.
DEFAULT_MODES = frozenset({StreamMode.DEBUG, StreamMode.CUSTOM})


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
        thread_id: str | None = None,
        *,
        step: int = 0,
        run_start: int | None = None,
        frame: Frame | None = None,
        occurrences: dict[str, int] | None = None,
        resumed: bool = False,
        checkpointer: Checkpointer[S] | None = None,
        own: Ownership | None = None,
        codec: Codec | None = None,
    ) -> None:
        self.graph = graph
        self.schema = graph.schema
        self.state = state
        #: What of ``state`` the run built itself and may change in place.
        self.own = own or Ownership()
        self.options = options
        self.max_steps = options.max_steps
        self.trace_id = trace_id
        self.thread_id = thread_id or trace_id
        self.sink: EventSink | None = None
        self.debug = self.updates = self.values = self.custom = False
        self.step = step
        #: The step this run started at: ``max_steps`` counts from here.
        self.run_start = step if run_start is None else run_start
        #: Where the run stands and what its next step already has.
        self.frame = frame or Frame(graph.start)
        self.occurrences: dict[str, int] = dict(occurrences or {})
        self.resumed = resumed
        self.log: list[ExecutionEntry] = []
        self.checkpointer = checkpointer
        self.codec = codec or (checkpointer.codec if checkpointer is not None else shared_codec())
        #: Whether a pause waits for values (a handle can send them) or ends the run.
        self.waits = False
        #: Set for a subgraph's run: it stops at interrupts and its parent carries on.
        self.embedded = False
        #: Called after every commit of a subgraph's run (its parent checkpoints it).
        self.on_commit: Callable[[RunContext[S]], Awaitable[None]] | None = None
        #: A subgraph's run writes custom events through its parent's writer.
        self.forward_writer: Callable[[Any], Awaitable[None]] | None = None
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
        self.decisions: DecisionBox = _waiting.DecisionBox()
        #: The task scope of the sync nodes this run calls (reused step after step).
        self.sync_scope = TaskScope([], self.codec, None, "")
        #: The interrupts the run waits on, with their timers.
        self.waiters: dict[InterruptId, Waiter] = {}
        #: The checkpoint the run saves when it starts (its input, or a fork), if any.
        self.first_checkpoint: CheckpointTrigger | None = None
        #: A run stopping at a pause: whether its checkpoint failed.
        self.stopping = False
        self.pause_error: Exception | None = None
        #: Why the run lost its thread's lease (``None`` while it holds it); once set,
        #: the run writes nothing more and its FSM ends ``LEASE_LOST``.
        self.lost: StoreError | None = None
        #: Whether the FSM has ended the run for its lost lease.
        self.abandoned = False
        #: The lease the run holds on its thread (``None``: no store, or a subgraph's).
        self.lease: ThreadLease | None = None

    # -- events ------------------------------------------------------------------------

    def set_sink(self, sink: EventSink | None, modes: Iterable[StreamMode]) -> None:
        """Send events to ``sink``, those of ``modes`` (terminal and waiting events
        always)."""
        chosen = frozenset(modes)
        self.sink = sink
        on = sink is not None
        self.debug = on and StreamMode.DEBUG in chosen
        self.updates = on and StreamMode.UPDATES in chosen
        self.values = on and StreamMode.VALUES in chosen
        self.custom = on and StreamMode.CUSTOM in chosen

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
            self.set_sink(None, ())
            self.request_cancel()

    def writer_for(self, node: str, span: str) -> Callable[[Any], Awaitable[None]] | None:
        """What a node's :func:`stream_writer` sends through, or ``None``."""
        if self.forward_writer is not None:
            return self.forward_writer
        if not self.custom:
            return None

        async def write(data: Any) -> None:
            await self.emit(
                CustomEvent(
                    trace_id=self.trace_id,
                    span_id=span,
                    parent_span_id=self.root_span,
                    node=node,
                    data=data,
                )
            )

        return write

    def lose(self, error: StoreError) -> None:
        """The thread's lease is lost: write nothing more, stop the running node, and
        wake the FSM (a waiting run through its channel; a running one sees the flag
        between steps)."""
        if self.lost is not None:
            return
        self.lost = error
        if self.node_scope is not None:
            self.node_scope.cancel()
        sender = self.timer_sender
        if sender is not None:
            with suppress(anyio.WouldBlock, ExternalChannelClosed):
                sender.send_nowait(OwnershipLost(error))

    def request_cancel(self) -> None:
        self.cancel_requested = True
        if self.node_scope is not None:
            self.node_scope.cancel()

    def stop_timers(self) -> None:
        """Stop waiting: cancel every barrier timer."""
        for waiter in self.waiters.values():
            waiter.cancel()
        self.waiters.clear()

    def result_now(self, interrupts: tuple[Interrupt, ...] = ()) -> GraphResult[S]:
        """The run's result; the state is handed out, so the run gives it up."""
        self.own.release()
        return GraphResult(
            self.trace_id,
            self.state,
            tuple(self.log),
            self.now() - self.started_at,
            self.step,
            self.thread_id,
            interrupts,
        )

    # -- what the FSM calls ------------------------------------------------------------

    @property
    def can_stop(self) -> bool:
        """Whether a pause can end the run and be resumed later."""
        return self.embedded or self.checkpointer is not None

    async def run_step(self) -> ExecEvent:
        return await _step.run_step(self)

    def all_resolved(self) -> bool:
        return not self.frame.interrupts

    async def announce(self) -> None:
        await _commit.announce(self)

    async def commit(self, done: NodeDone) -> None:
        await _commit.commit(self, done)

    async def complete(self, already: bool) -> None:
        await _commit.complete(self, already)

    async def fail(self, failure: StepFailed) -> None:
        await _commit.fail(self, failure)

    async def cancelled(self) -> None:
        await _commit.cancelled(self)

    async def save_requested(self) -> None:
        await _commit.save_requested(self)

    async def open_wait(self, paused: Paused) -> None:
        await _waiting.open_wait(self, paused)

    async def save_pause(self, paused: Paused) -> None:
        await _waiting.save_pause(self, paused)

    async def stop(self) -> None:
        await _waiting.stop(self)

    async def accept(self, event: Decide | Resume | InterruptTimedOut) -> None:
        await _waiting.accept(self, event)

    async def release_wait(self) -> None:
        await _waiting.release_wait(self)

    async def stash(self, event: Decide | Resume) -> None:
        await _waiting.stash(self, event)

    async def abandon(self) -> None:
        await _commit.abandon(self)
