"""A supervision tree's per-run context: its children, its restart bookkeeping, the
channel through which exits and requests reach the tree's loop, and the work of
starting and stopping child runs.

Only the tree's loop changes this context (in its dispatch, handlers and actions); the
tasks running children only post :class:`ChildExited` events and record how their run
ended, and handles only post requests. The loop then handles everything in order, which
keeps restart decisions and requests free of races.
"""

from __future__ import annotations

import functools
import logging
import random
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any, Protocol, cast, runtime_checkable

import anyio
import attrs
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._base import Supervisor
from ._handle import SupervisorHandle, TaskSpawner, start_supervisor
from ._records import ExitKind, RunOutcome, SupervisorError
from ._tree_errors import TreeNotRunning
from ._tree_requests import DeleteChild, RestartChild, StartChild, TerminateChild
from ._tree_start import GuardedSpawner, StartAck
from ._tree_states import ChildExited, TreeEvent
from ._tree_values import (
    AutoShutdown,
    ChildCounts,
    ChildSpec,
    ChildState,
    ChildStatus,
    RestartBackoff,
    RestartIntensity,
    RestartRecord,
    RestartStrategy,
    RestartType,
)

logger = logging.getLogger("fsmflow.supervisor")


@runtime_checkable
class Subtree(Protocol):
    """A child that is itself a tree: it acknowledges its start once its own children
    started, and stops in order when asked to shut down."""

    def acknowledge_start_to(self, ack: StartAck) -> None: ...

    def shutdown(self) -> None: ...


_SUBTREE_CLASSES: dict[type, bool] = {}


def is_subtree(supervisor: object) -> bool:
    """Whether ``supervisor`` is a :class:`Subtree` (decided once per class: checking a
    runtime protocol costs more than starting a small child)."""
    cls = type(supervisor)
    known = _SUBTREE_CLASSES.get(cls)
    if known is None:
        known = _SUBTREE_CLASSES[cls] = issubclass(cls, Subtree)
    return known


class ChildRun:
    """One run of one child: the supervisor the factory made, its handle, and how the
    run ended once it has."""

    __slots__ = (
        "number",
        "supervisor",
        "handle",
        "exit_expected",
        "deadline",
        "abandoned",
        "outcome",
    )

    def __init__(self, number: int) -> None:
        self.number = number
        self.supervisor: Supervisor[Any, Any, Any, Any] | None = None
        self.handle: SupervisorHandle[Any, Any] | None = None
        #: The tree stopped this run or already accounted for its end, so its
        #: ChildExited changes nothing.
        self.exit_expected = False
        #: When the tree stops waiting for this run to end, once it asked it to stop.
        self.deadline: float | None = None
        #: The run missed that deadline and the tree moved on without it.
        self.abandoned = False
        self.outcome: RunOutcome[object] | None = None

    @property
    def running(self) -> bool:
        return self.handle is not None and self.outcome is None


class Child:
    """A child slot: its spec, its current run, and what a status report needs."""

    __slots__ = ("spec", "run", "starts", "last_outcome", "restart_pending")

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.run: ChildRun | None = None
        #: Starts attempted, the first one included.
        self.starts = 0
        self.last_outcome: RunOutcome[object] | None = None
        #: A restart is scheduled (the tree's ``Restarting`` state says when).
        self.restart_pending = False

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def live(self) -> bool:
        return self.run is not None and self.run.running

    def state(self) -> ChildState:
        run = self.run
        if run is not None and run.running:
            return ChildState.ABANDONED if run.abandoned else ChildState.RUNNING
        if self.restart_pending:
            return ChildState.RESTARTING
        return ChildState.STOPPED

    def status(self) -> ChildStatus:
        return ChildStatus(
            self.spec.id,
            self.state(),
            max(self.starts - 1, 0),
            self.last_outcome,
            self.spec.restart,
            self.spec.significant,
        )


class TreeContext:
    """The context of one run of a supervision tree (its ``C`` type parameter).

    The tree makes a fresh one in ``initial_context()``; there is no reason to build one
    yourself. A context serves a single run.
    """

    def __init__(
        self,
        tree: str,
        children: Sequence[ChildSpec],
        *,
        strategy: RestartStrategy,
        intensity: RestartIntensity,
        backoff: RestartBackoff,
        rng: random.Random,
        history_limit: int,
        auto_shutdown: AutoShutdown = AutoShutdown.NEVER,
        pooled: bool = False,
    ) -> None:
        self.tree = tree
        #: Every child the tree holds, in start order (dynamic children last).
        self.children = {spec.id: Child(spec) for spec in children}
        #: The children of the tree's spec, started when the run begins.
        self.static_ids = tuple(self.children)
        self.strategy = strategy
        self.intensity = intensity
        self.backoff = backoff
        self.rng = rng
        self.auto_shutdown = auto_shutdown
        #: A pool (OTP's simple_one_for_one): children are forgotten when they end for
        #: good and stopped all at once.
        self.pooled = pooled
        self.history: deque[RestartRecord] = deque(maxlen=history_limit)
        self.gave_up = False
        #: The start failure that made the tree fail its start, if one did.
        self.start_failure: tuple[str, BaseException | None] | None = None
        #: The children whose run the tree abandoned after a missed shutdown deadline.
        self.abandoned: list[str] = []
        #: Who waits for this run's start acknowledgement (a parent tree, ``start()``).
        self.start_ack: StartAck | None = None
        # The restarts inside the intensity window, oldest first.
        self.window: deque[RestartRecord] = deque()
        self._runs = 0
        self._group: TaskSpawner | None = None
        self._send: MemoryObjectSendStream[TreeEvent] | None = None
        self._receive: MemoryObjectReceiveStream[TreeEvent] | None = None
        self.used = False

    # -- the run's lifetime -------------------------------------------------------------

    def bind(
        self,
        group: TaskSpawner,
        send: MemoryObjectSendStream[TreeEvent],
        receive: MemoryObjectReceiveStream[TreeEvent],
    ) -> None:
        """Attach the run's task group and event channel (called by the tree's run)."""
        if self.used:
            raise RuntimeError("a TreeContext serves a single run; let the tree make a new one")
        self.used = True
        self._group = group
        self._send = send
        self._receive = receive

    @property
    def bound(self) -> bool:
        return self._send is not None

    def unbind(self) -> None:
        """The run is over: later posts are refused, and every request still queued is
        answered with :class:`TreeNotRunning`."""
        receive = self._receive
        self._group = None
        self._send = None
        self._receive = None
        self.cancel_pending_restarts()
        if receive is None:
            return
        while True:
            try:
                event = receive.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                break
            if isinstance(event, StartChild | TerminateChild | RestartChild | DeleteChild):
                event.reply.fail(TreeNotRunning(self.tree))

    def post(self, event: TreeEvent) -> bool:
        """Queue ``event`` for the tree's loop; ``False`` once the run is over. The
        channel is unbounded, so posting never waits: a child's exit can always be
        reported, even while the loop is busy stopping that very child."""
        if self._send is None:
            return False
        self._send.send_nowait(event)
        return True

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

    async def start_run(self, child: Child) -> RunOutcome[object] | None:
        """Start a new run of ``child`` and wait until it acknowledged its start.

        Returns ``None`` once it started, else the outcome of a run that could not start
        (its factory, context factory, ``initial_state()`` / ``initial_context()`` or
        ``build_state_machine()`` raised, or, for a tree, its own start failed). Every
        run posts exactly one :class:`ChildExited` when it ends, one that could not
        start included; the caller marks that exit expected when it reports the failure
        some other way.
        """
        group = self._group
        assert group is not None, "the tree's run has not bound its context"
        self._runs += 1
        run = ChildRun(self._runs)
        child.run = run
        child.starts += 1
        child.restart_pending = False
        spec = child.spec
        try:
            supervisor = spec.factory()
            run.supervisor = supervisor
            ack = StartAck()
            subtree = is_subtree(supervisor)
            if subtree:
                cast(Subtree, supervisor).acknowledge_start_to(ack)
            context = None if spec.context_factory is None else spec.context_factory()
            spawner = GuardedSpawner(group, ack, functools.partial(self._run_ended, child, run))
            run.handle = await start_supervisor(
                spawner,
                supervisor,
                initial_state=spec.initial_state,
                context=context,
                raise_on_failure=False,
                on_started=None if subtree else ack.started,
            )
        except Exception as exc:
            logger.warning("%s: child %r could not be started: %r", self.tree, spec.id, exc)
            outcome = _never_ran(spec.id, exc)
            self._record_end(child, run, outcome)
            return outcome
        await ack.wait()
        if ack.failed_to_start(run.outcome):
            return run.outcome
        return None

    def _run_ended(
        self, child: Child, run: ChildRun, escaped: BaseException | None
    ) -> BaseException | None:
        """The end of a run's task (called by its guard, even under cancellation)."""
        assert run.supervisor is not None
        outcome = run.supervisor.last_outcome
        if outcome is None:  # start_supervisor always sets it; never trust that blindly
            outcome = _never_ran(child.spec.id, escaped)
        elif escaped is not None:
            logger.error("%s: the run of child %r raised %r", self.tree, child.spec.id, escaped)
            if outcome.error is None:
                outcome = attrs.evolve(outcome, error=_as_supervisor_error(child.spec.id, escaped))
        self._record_end(child, run, outcome)
        return None

    def _record_end(self, child: Child, run: ChildRun, outcome: RunOutcome[object]) -> None:
        run.outcome = outcome
        if child.run is run:
            child.last_outcome = outcome
        self.post(ChildExited(child.spec.id, run.number, outcome))

    async def start_initial(self) -> tuple[str, BaseException | None] | None:
        """Start the children of the tree's spec in order, each once the one before
        started. Stops at the first that cannot start and returns its id and error."""
        for child_id in self.static_ids:
            child = self.children[child_id]
            failure = await self.start_run(child)
            if failure is not None:
                assert child.run is not None
                child.run.exit_expected = True
                return child_id, failure.error
        return None

    async def restart(self, child_ids: Iterable[str], *, grouped: bool) -> None:
        """Start the children due to restart, in order. A child that cannot start is
        reported like any failed run (its exit counts toward the intensity); in a
        grouped restart the children after it are left for the group's next restart."""
        for child_id in child_ids:
            child = self.children.get(child_id)
            if child is None or child.live:
                continue
            failure = await self.start_run(child)
            if failure is not None and grouped:
                break

    # -- stopping -------------------------------------------------------------------------

    async def stop_run(self, child: Child) -> None:
        """Ask the child's current run to stop and wait for it until its deadline.

        A child tree is asked for an orderly shutdown (so its own children stop in order
        too); any other supervisor is cancelled (its loop still writes its completion
        event). A run that misses its deadline is cancelled once more, logged and
        abandoned: the tree stops waiting for it and moves on. Its task still lives in
        the tree's task group, which waits for it before the tree's run returns.
        """
        run = child.run
        if run is None:
            return
        run.exit_expected = True
        if not run.running:
            return
        self._ask_to_stop(child, run, anyio.current_time())
        await self._wait_or_abandon(child, run)

    def _ask_to_stop(self, child: Child, run: ChildRun, now: float) -> None:
        run.exit_expected = True
        if run.deadline is not None:
            return
        run.deadline = now + child.spec.shutdown_timeout
        if is_subtree(run.supervisor):
            cast(Subtree, run.supervisor).shutdown()
        else:
            assert run.handle is not None
            run.handle.cancel()

    async def _wait_or_abandon(self, child: Child, run: ChildRun) -> None:
        assert run.handle is not None and run.deadline is not None
        if not run.running:
            return
        with anyio.move_on_at(run.deadline):
            await run.handle.outcome()
        if run.running and not run.abandoned:
            run.handle.cancel()
            run.abandoned = True
            self.abandoned.append(child.spec.id)
            logger.warning(
                "%s: child %r did not stop within its shutdown_timeout of %gs; abandoned",
                self.tree,
                child.spec.id,
                child.spec.shutdown_timeout,
            )

    async def stop_children(self, child_ids: Iterable[str] | None, *, forget: bool) -> None:
        """Stop the live children among ``child_ids`` (``None``: all), one after the
        other, in reverse start order, so that later children, which may depend on
        earlier ones, go first. With ``forget``, the temporary (or pooled) ones stopped
        are forgotten, as the tree does outside its final shutdown."""
        chosen = None if child_ids is None else set(child_ids)
        stopping = [
            child
            for child in reversed(self.children.values())
            if (chosen is None or child.spec.id in chosen) and child.live
        ]
        for child in stopping:
            await self.stop_run(child)
            if forget and self.forgets(child):
                self.forget(child.spec.id)

    async def stop_all_at_once(self) -> None:
        """Ask every live child to stop at the same moment, then wait for each until its
        deadline (how a pool shuts down: its children do not depend on each other)."""
        live = [child for child in self.children.values() if child.live]
        now = anyio.current_time()
        for child in live:
            assert child.run is not None
            self._ask_to_stop(child, child.run, now)
        for child in live:
            assert child.run is not None
            await self._wait_or_abandon(child, child.run)

    def cancel_pending_restarts(self) -> None:
        for child in self.children.values():
            child.restart_pending = False

    # -- bookkeeping ----------------------------------------------------------------------

    def forgets(self, child: Child) -> bool:
        """Whether the tree drops ``child`` once its run is over for good (OTP drops
        temporary children, and every child of a simple_one_for_one pool)."""
        return self.pooled or child.spec.restart is RestartType.TEMPORARY

    def add(self, spec: ChildSpec) -> Child:
        """Hold a new child, last in start order."""
        child = self.children[spec.id] = Child(spec)
        return child

    def forget(self, child_id: str) -> None:
        self.children.pop(child_id, None)

    def record(self, record: RestartRecord) -> None:
        """Remember a restart: in the history, in the intensity window, and as pending
        for every child it restarts."""
        self.history.append(record)
        self.window.append(record)
        while self.window and self.window[0].at <= record.at - self.intensity.period:
            self.window.popleft()
        for child_id in record.restarted:
            child = self.children.get(child_id)
            if child is not None:
                child.restart_pending = True

    def give_up(self, record: RestartRecord) -> None:
        """Remember the exit that exceeded the intensity; the tree now fails."""
        self.history.append(record)
        self.gave_up = True

    # -- reporting ------------------------------------------------------------------------

    def status(self, child_id: str) -> ChildStatus:
        return self.children[child_id].status()

    def which_children(self) -> tuple[ChildStatus, ...]:
        return tuple(child.status() for child in self.children.values())

    def count_children(self) -> ChildCounts:
        counts = dict.fromkeys(ChildState, 0)
        for child in self.children.values():
            counts[child.state()] += 1
        return ChildCounts(
            specs=len(self.children),
            running=counts[ChildState.RUNNING],
            restarting=counts[ChildState.RESTARTING],
            stopped=counts[ChildState.STOPPED],
            abandoned=counts[ChildState.ABANDONED],
        )


def _as_supervisor_error(child_id: str, error: BaseException) -> SupervisorError:
    wrapped = SupervisorError(
        child_id, "-", "start", f"could not start: {type(error).__name__}: {error}"
    )
    wrapped.__cause__ = error
    return wrapped


def _never_ran(child_id: str, error: BaseException | None) -> RunOutcome[object]:
    """The outcome of a run that failed before its loop began."""
    return RunOutcome(
        supervisor=child_id,
        exit=ExitKind.FAILED,
        final_state=None,
        transitions=0,
        dispatches=0,
        failures=0,
        error=None if error is None else _as_supervisor_error(child_id, error),
        completion_written=False,
    )
