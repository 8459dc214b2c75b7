"""A supervision tree's per-run context: its children, its restart bookkeeping, and the
channel through which child exits reach the tree's loop.

Only the tree's loop changes this context (in its dispatch, handlers and actions); the
tasks watching child runs only post :class:`ChildExited` events, which the loop then
handles in order. That is what keeps the restart decisions free of races.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any, TypeAlias

import anyio
import attrs
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._base import Supervisor
from ._handle import SupervisorHandle, TaskSpawner, start_supervisor
from ._records import ExitKind, RunOutcome, SupervisorError
from ._tree_states import ChildExited, TreeEvent
from ._tree_values import (
    ChildSpec,
    ChildStatus,
    PendingRestart,
    RestartBackoff,
    RestartIntensity,
    RestartRecord,
    RestartStrategy,
    RestartType,
)

logger = logging.getLogger("fsmflow.supervisor")


class ChildRun:
    """One run of one child: the supervisor the factory made and its handle."""

    __slots__ = ("number", "supervisor", "handle", "stopping", "deadline")

    def __init__(self, number: int) -> None:
        self.number = number
        self.supervisor: Supervisor[Any, Any, Any, Any] | None = None
        self.handle: SupervisorHandle[Any, Any] | None = None
        #: The tree stopped (or is stopping) this run, so its exit is expected.
        self.stopping = False
        #: When the tree stops waiting for this run to end, once it asked it to stop.
        self.deadline: float | None = None

    @property
    def running(self) -> bool:
        return self.handle is not None and not self.handle.done


class Child:
    """A child slot: its spec, its place in the start order, and its current run."""

    __slots__ = ("spec", "index", "run", "runs", "last_outcome")

    def __init__(self, spec: ChildSpec, index: int) -> None:
        self.spec = spec
        self.index = index
        self.run: ChildRun | None = None
        self.runs = 0
        self.last_outcome: RunOutcome[object] | None = None

    def status(self) -> ChildStatus:
        running = self.run is not None and self.run.running
        return ChildStatus(self.spec.id, running, max(self.runs - 1, 0), self.last_outcome)


@attrs.frozen
class RestartPlan:
    """What the tree decided about a child's exit: the record for its history, and
    either the restarts to schedule or that it gives up."""

    record: RestartRecord
    give_up: bool
    pending: tuple[PendingRestart, ...] = ()
    stopping: tuple[str, ...] = ()


class TreeContext:
    """The context of one run of a :class:`SupervisionTree` (its ``C`` type parameter).

    The tree makes a fresh one in ``initial_context()``; there is no reason to build one
    yourself. A context serves a single run.
    """

    def __init__(
        self,
        children: Sequence[ChildSpec],
        *,
        strategy: RestartStrategy,
        intensity: RestartIntensity,
        backoff: RestartBackoff,
        rng: random.Random,
        history_limit: int,
    ) -> None:
        self.children = {spec.id: Child(spec, i) for i, spec in enumerate(children)}
        #: Every child id, in start order.
        self.child_ids = tuple(self.children)
        self.strategy = strategy
        self.intensity = intensity
        self.backoff = backoff
        self.rng = rng
        self.history: deque[RestartRecord] = deque(maxlen=history_limit)
        self.gave_up = False
        # The restarts inside the intensity window, oldest first.
        self._window: deque[RestartRecord] = deque()
        self._spawner: TaskSpawner | None = None
        self._send: MemoryObjectSendStream[TreeEvent] | None = None
        self._receive: MemoryObjectReceiveStream[TreeEvent] | None = None
        self._used = False

    # -- the run's lifetime -------------------------------------------------------------

    def bind(
        self,
        spawner: TaskSpawner,
        send: MemoryObjectSendStream[TreeEvent],
        receive: MemoryObjectReceiveStream[TreeEvent],
    ) -> None:
        """Attach the run's task group and event channel (called by ``tree.run``)."""
        if self._used:
            raise RuntimeError("a TreeContext serves a single run; let the tree make a new one")
        self._used = True
        self._spawner = spawner
        self._send = send
        self._receive = receive

    def unbind(self) -> None:
        """The run is over: later posts are dropped (nobody would read them)."""
        self._spawner = None
        self._send = None
        self._receive = None

    def post(self, event: TreeEvent) -> None:
        """Queue ``event`` for the tree's loop. The channel is unbounded, so posting never
        waits: a child's exit can always be reported, even while the loop is busy
        stopping that very child."""
        if self._send is not None:
            self._send.send_nowait(event)

    async def next_event(self) -> TreeEvent:
        """Wait for the next queued event."""
        assert self._receive is not None, "the tree's run has not bound its context"
        return await self._receive.receive()

    async def next_event_before(self, deadline: float) -> TreeEvent | None:
        """The next queued event, or ``None`` once ``deadline`` passed without one.

        A queued event is returned even when the deadline has already passed, so an exit
        reported before a backoff expired is never reordered after the restart.
        """
        assert self._receive is not None, "the tree's run has not bound its context"
        try:
            return self._receive.receive_nowait()
        except anyio.WouldBlock:
            pass
        with anyio.move_on_at(deadline):
            return await self._receive.receive()
        return None

    # -- starting children --------------------------------------------------------------

    async def start(self, child_ids: Iterable[str]) -> None:
        """Start a new run of each child, in the order given.

        A factory (or context factory, or the supervisor's own defaults) that raises
        makes a failed run, reported like any other exit; the supervisor never ran, so
        it wrote no completion event.
        """
        assert self._spawner is not None, "the tree's run has not bound its context"
        for child_id in child_ids:
            child = self.children[child_id]
            child.runs += 1
            run = ChildRun(child.runs)
            child.run = run
            spec = child.spec
            try:
                supervisor = spec.factory()
                context = None if spec.context_factory is None else spec.context_factory()
                run.handle = await start_supervisor(
                    self._spawner,
                    supervisor,
                    initial_state=spec.initial_state,
                    context=context,
                    raise_on_failure=False,
                )
            except Exception as exc:
                logger.warning("child %r could not be started: %r", child_id, exc)
                error = SupervisorError(
                    child_id, "-", "start", f"could not start: {type(exc).__name__}: {exc}"
                )
                error.__cause__ = exc
                failed = RunOutcome(
                    supervisor=child_id,
                    exit=ExitKind.FAILED,
                    final_state=None,
                    transitions=0,
                    dispatches=0,
                    failures=0,
                    error=error,
                    completion_written=False,
                )
                self._ended(child, run, failed)
                continue
            run.supervisor = supervisor
            self._spawner.start_soon(self._watch, child, run, name=f"watch:{child_id}")

    async def _watch(self, child: Child, run: ChildRun) -> None:
        assert run.handle is not None
        self._ended(child, run, await run.handle.outcome())

    def _ended(self, child: Child, run: ChildRun, outcome: RunOutcome[object]) -> None:
        child.last_outcome = outcome
        self.post(ChildExited(child.spec.id, run.number, outcome))

    # -- restart decisions ----------------------------------------------------------------

    def plan_restart(
        self, event: ChildExited, pending: tuple[PendingRestart, ...], now: float
    ) -> RestartPlan | None:
        """Decide what ``event`` means: ``None`` when nothing is to be done (a stale
        report, an exit the tree caused, or one the child's restart type accepts)."""
        child = self.children[event.child_id]
        run = child.run
        if run is None or run.number != event.run or run.stopping:
            return None
        exit_kind = event.outcome.exit
        if not child.spec.restart.restarts_after(exit_kind):
            return None
        error = None if event.outcome.error is None else str(event.outcome.error)
        recent = [r for r in self._window if r.at > now - self.intensity.period]
        if len(recent) >= self.intensity.max_restarts:
            return RestartPlan(RestartRecord(child.spec.id, exit_kind, error, now, (), 0.0), True)
        earlier = sum(1 for r in recent if r.child_id == child.spec.id)
        delay = self.backoff.delay(earlier, self.rng)
        restart, stop = self._group(child, {p.child_id for p in pending})
        record = RestartRecord(child.spec.id, exit_kind, error, now, restart, delay)
        return RestartPlan(record, False, self._merge(pending, restart, now + delay), stop)

    def _group(self, child: Child, pending: set[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The children to restart and the live ones to stop first, by strategy.

        A child that ended for good (temporary, or transient after a normal end) is
        outside every group: only live or pending children are restarted with the one
        that exited, and temporary ones among them are stopped but not restarted.
        """
        if self.strategy is RestartStrategy.ONE_FOR_ONE:
            return (child.spec.id,), ()
        scope = list(self.children.values())
        if self.strategy is RestartStrategy.REST_FOR_ONE:
            scope = scope[child.index :]
        restart: list[str] = []
        stop: list[str] = []
        for other in scope:
            live = other.run is not None and other.run.running
            if other is not child and not live and other.spec.id not in pending:
                continue
            if live:
                stop.append(other.spec.id)
            if other is child or other.spec.restart is not RestartType.TEMPORARY:
                restart.append(other.spec.id)
        return tuple(restart), tuple(stop)

    def _merge(
        self, pending: tuple[PendingRestart, ...], restart: tuple[str, ...], due: float
    ) -> tuple[PendingRestart, ...]:
        """Add ``restart`` (due at ``due``) to what is already pending, in start order.

        Under the grouped strategies everything pending becomes due together, at the
        latest due time, so the group still starts in order.
        """
        dues = {p.child_id: p.due for p in pending}
        dues.update(dict.fromkeys(restart, due))
        if self.strategy is not RestartStrategy.ONE_FOR_ONE:
            dues = dict.fromkeys(dues, max(dues.values()))
        ordered = sorted(dues, key=lambda child_id: self.children[child_id].index)
        return tuple(PendingRestart(child_id, dues[child_id]) for child_id in ordered)

    @staticmethod
    def split_due(
        pending: tuple[PendingRestart, ...], now: float
    ) -> tuple[tuple[str, ...], tuple[PendingRestart, ...]]:
        """The children due by ``now`` (in start order) and the restarts still waiting."""
        due = tuple(p.child_id for p in pending if p.due <= now)
        return due, tuple(p for p in pending if p.due > now)

    def record(self, record: RestartRecord) -> None:
        """Remember a restart: in the history and in the intensity window."""
        self.history.append(record)
        self._window.append(record)
        while self._window and self._window[0].at <= record.at - self.intensity.period:
            self._window.popleft()

    def give_up(self, record: RestartRecord) -> None:
        """Remember the exit that exceeded the intensity; the tree now fails."""
        self.history.append(record)
        self.gave_up = True

    # -- stopping -------------------------------------------------------------------------

    def live_runs(self, child_ids: Iterable[str]) -> list[tuple[ChildSpec, ChildRun]]:
        """The running runs among ``child_ids``, in reverse start order: the order in
        which a tree stops its children, so that later children, which may depend on
        earlier ones, go first."""
        chosen = set(child_ids)
        return [
            (child.spec, child.run)
            for child in reversed(self.children.values())
            if child.spec.id in chosen and child.run is not None and child.run.running
        ]


# -- actions ----------------------------------------------------------------------------


@attrs.frozen
class StartChildren:
    """Start a new run of each child, in start order."""

    child_ids: tuple[str, ...]

    async def execute(self, ctx: TreeContext) -> None:
        await ctx.start(self.child_ids)


@attrs.frozen
class RecordRestart:
    """Add a restart to the history and the intensity window."""

    record: RestartRecord

    async def execute(self, ctx: TreeContext) -> None:
        ctx.record(self.record)


@attrs.frozen
class GiveUp:
    """Record the exit that exceeded the restart intensity; the tree will fail."""

    record: RestartRecord

    async def execute(self, ctx: TreeContext) -> None:
        ctx.give_up(self.record)


TreeAction: TypeAlias = StartChildren | RecordRestart | GiveUp
