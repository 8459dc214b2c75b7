"""What every supervision tree shares: the run that owns the children's task group, the
dispatch of each state, start acknowledgement, and the read-only views.

:class:`~fsmflow.supervisor.SupervisionTree` and :class:`~fsmflow.supervisor.SupervisorPool`
are the two kinds users make; both are an ordinary :class:`SelfSupervised`: one loop
drives the tree's FSM (no second loop hides in here), its state is watchable and
drawable, and it can be the child of another tree.

Why an internal channel rather than the ``*WithExternalEvents`` wrappers: the tree must
own the task group its children live in, so its own :meth:`run` has to open that group
around the loop. A wrapper would run the loop without calling the tree's ``run``, so the
tree keeps its channel to itself and its dispatch blocks on it exactly as
``ExternalEventMode.BLOCK`` would.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio

from ..fsm import FsmSpec
from ._base import SelfSupervised
from ._directives import TERMINATE, EventLoopDirective, Trigger
from ._handle import SupervisorHandle, TaskSpawner, start_supervisor
from ._records import ExitKind, Journal, RunOutcome, SupervisorError
from ._tree_actions import TreeAction
from ._tree_context import TreeContext
from ._tree_errors import FailedToStartChild, RestartIntensityExceeded, TreeNotRunning
from ._tree_requests import ChildRequest
from ._tree_spec import tree_spec
from ._tree_start import GuardedSpawner, StartAck
from ._tree_states import (
    ChildrenStarted,
    ChildrenStopped,
    Escalating,
    Failed,
    RestartDue,
    Restarting,
    Running,
    Shutdown,
    ShuttingDown,
    StartFailed,
    Starting,
    Stopped,
    TreeEvent,
    TreeFault,
    TreeState,
)
from ._tree_values import (
    AutoShutdown,
    ChildCounts,
    ChildSpec,
    ChildStatus,
    RestartBackoff,
    RestartIntensity,
    RestartRecord,
    RestartStrategy,
    check_member,
)
from ._watcher import StateWatcher

if TYPE_CHECKING:
    from .._flowchart import Flowchart

# The defaults are frozen values, so one instance serves every tree.
DEFAULT_INTENSITY = RestartIntensity()
DEFAULT_BACKOFF = RestartBackoff()


class TreeBase(SelfSupervised[TreeState, TreeEvent, TreeContext, TreeAction]):
    """The machinery of :class:`SupervisionTree` and :class:`SupervisorPool`."""

    def __init__(
        self,
        name: str,
        children: Sequence[ChildSpec],
        *,
        strategy: RestartStrategy,
        intensity: RestartIntensity,
        backoff: RestartBackoff,
        rng: random.Random | None,
        history_limit: int,
        auto_shutdown: AutoShutdown,
        journal: Journal | None,
        pooled: bool,
    ) -> None:
        super().__init__(name, journal=journal)
        owner = f"tree {name!r}"
        check_member(owner, "strategy", strategy, RestartStrategy)
        check_member(owner, "auto_shutdown", auto_shutdown, AutoShutdown)
        if not isinstance(intensity, RestartIntensity):
            raise TypeError(f"{owner}: intensity must be a RestartIntensity, not {intensity!r}")
        if not isinstance(backoff, RestartBackoff):
            raise TypeError(f"{owner}: backoff must be a RestartBackoff, not {backoff!r}")
        if not isinstance(history_limit, int) or history_limit < 1:
            raise ValueError(f"{owner}: history_limit must be an int >= 1, not {history_limit!r}")
        seen: set[str] = set()
        duplicates: set[str] = set()
        for spec in children:
            if not isinstance(spec, ChildSpec):
                raise TypeError(f"{owner}: children must be ChildSpec values, not {spec!r}")
            self.check_significance(spec.id, spec.significant, auto_shutdown)
            (duplicates if spec.id in seen else seen).add(spec.id)
        if duplicates:
            raise ValueError(f"{owner}: duplicate child ids {', '.join(sorted(duplicates))}")
        self.children = tuple(children)
        self.strategy = strategy
        self.intensity = intensity
        self.backoff = backoff
        self.history_limit = history_limit
        self.auto_shutdown = auto_shutdown
        self._pooled = pooled
        self._rng = random.Random() if rng is None else rng
        self._context = self.initial_context()
        self._watcher: StateWatcher[TreeState] = StateWatcher(Starting())
        self._stop_requested = False
        self._start_ack: StartAck | None = None

    def check_significance(
        self, child: str, significant: bool, auto_shutdown: AutoShutdown | None = None
    ) -> None:
        """Refuse a significant child in a tree that never shuts down automatically."""
        if auto_shutdown is None:
            auto_shutdown = self.auto_shutdown
        if significant and auto_shutdown is AutoShutdown.NEVER:
            raise ValueError(
                f"tree {self.name!r}: child {child!r} is significant, but the tree's "
                "auto_shutdown is NEVER (significant children only mean something with "
                "ANY_SIGNIFICANT or ALL_SIGNIFICANT)"
            )

    @classmethod
    def fsm_spec(cls) -> FsmSpec[TreeState, TreeEvent, TreeContext, TreeAction]:
        return tree_spec()

    def initial_context(self) -> TreeContext:
        return TreeContext(
            self.name,
            self.children,
            strategy=self.strategy,
            intensity=self.intensity,
            backoff=self.backoff,
            rng=self._rng,
            history_limit=self.history_limit,
            auto_shutdown=self.auto_shutdown,
            pooled=self._pooled,
        )

    def event_for_action_error(self, msg: str) -> TreeEvent:
        return TreeFault(msg)

    # -- observing --------------------------------------------------------------------

    @property
    def watcher(self) -> StateWatcher[TreeState]:
        """The tree's state as it runs; closed when the run ends."""
        return self._watcher

    @property
    def state(self) -> TreeState:
        return self._watcher.current()

    @property
    def running(self) -> bool:
        """True while the tree's run is in progress (requests can be served)."""
        return self._context.bound

    @property
    def history(self) -> tuple[RestartRecord, ...]:
        """The restarts of the current (or last) run, oldest first, at most
        ``history_limit`` of them."""
        return tuple(self._context.history)

    def which_children(self) -> tuple[ChildStatus, ...]:
        """A snapshot of every child the tree holds, in start order: id, state
        (running, restarting, stopped, abandoned), restart count and last outcome.

        After a run, the children the tree held at its end, each as it ended.
        """
        return self._context.which_children()

    def count_children(self) -> ChildCounts:
        """How many children the tree holds, by state."""
        return self._context.count_children()

    def children_status(self) -> tuple[ChildStatus, ...]:
        """Same as :meth:`which_children`."""
        return self.which_children()

    def child_status(self, child_id: str) -> ChildStatus:
        """One child's snapshot; ``KeyError`` if the tree holds no such child."""
        return self._context.status(child_id)

    def child_handle(self, child_id: str) -> SupervisorHandle[Any, Any] | None:
        """The handle of the child's current run (``None`` before its first start or when
        it could not be started). A restart makes a new handle: look it up again rather
        than keeping it."""
        run = self._context.children[child_id].run
        return None if run is None else run.handle

    def flowchart(self) -> Flowchart:
        """The tree as a picture: the tree with its strategy and intensity, each child
        with its restart type, and, once the tree has run, each child's state
        highlighted; nested trees are drawn inside, as subroutine nodes with their own
        children. This makes a tree drawable by :func:`fsmflow.diagrams.to_mermaid` and
        ``fsmflow diagram MODULE:TREE``."""
        from ._tree_diagram import tree_flowchart

        return tree_flowchart(self)

    @property
    def strategy_label(self) -> str:
        """The restart strategy as OTP names it (a pool's is ``simple_one_for_one``)."""
        return self.strategy.value

    @property
    def context(self) -> TreeContext:
        """The context of the current (or last) run, for the tree's diagram and handles."""
        return self._context

    # -- controlling ------------------------------------------------------------------

    def shutdown(self) -> None:
        """Ask for an orderly shutdown: children stop in reverse start order (a pool's all
        at once), each within its ``shutdown_timeout``, then the run returns
        ``TERMINATED``.

        Safe to call more than once, from any task, and also before the run has begun
        (the run then stops without starting any child).
        """
        if self._stop_requested:
            return
        self._stop_requested = True
        self._context.post(Shutdown())

    def acknowledge_start_to(self, ack: StartAck) -> None:
        """Make the next run report its start to ``ack`` once every child of its spec
        started (called by a parent tree or :meth:`start`, before the run)."""
        self._start_ack = ack

    def submit(self, request: ChildRequest) -> None:
        """Queue a request for the running tree's loop; :class:`TreeNotRunning` if the
        run is not in progress (its reply is then never answered)."""
        if not self._context.post(request):
            raise TreeNotRunning(self.name)

    async def start_run(
        self, spawner: TaskSpawner, *, raise_on_failure: bool
    ) -> SupervisorHandle[TreeState, TreeEvent]:
        """Start the tree's run in ``spawner`` and return once it started (every child of
        its spec started), like ``nursery.start``.

        Raises :class:`FailedToStartChild` if a child could not start (the children that
        had started were stopped), and :class:`TreeNotRunning` if the run ended before it
        started for another reason. Cancelling the caller before the tree started
        cancels the tree's run. With ``raise_on_failure``, a failure of the tree after
        it started propagates into ``spawner``; otherwise it is only reported through
        the handle's outcome.
        """
        ack = StartAck()
        self.acknowledge_start_to(ack)

        def on_end(escaped: BaseException | None) -> BaseException | None:
            if escaped is not None:
                return escaped if raise_on_failure else None
            outcome = self.last_outcome
            failed = outcome is not None and outcome.exit is ExitKind.FAILED
            if raise_on_failure and ack.acknowledged and failed:
                assert outcome is not None
                return outcome.error
            return None

        handle = await start_supervisor(
            GuardedSpawner(spawner, ack, on_end), self, raise_on_failure=False
        )
        try:
            await ack.wait()
        except BaseException:
            handle.cancel()
            raise
        if not ack.acknowledged:
            outcome = self.last_outcome
            if outcome is not None and outcome.exit is ExitKind.FAILED:
                assert outcome.error is not None
                raise outcome.error
            if outcome is None or outcome.exit is ExitKind.CANCELLED:
                raise TreeNotRunning(self.name)
        return handle

    async def run(
        self, initial_state: TreeState | None = None, context: TreeContext | None = None
    ) -> RunOutcome[TreeState]:
        """Open the task group the children live in and drive the tree's FSM inside it.

        Returns ``TERMINATED`` after an orderly shutdown (asked for, or automatic);
        raises :class:`FailedToStartChild` if a child could not start while the tree
        started, :class:`RestartIntensityExceeded` (a :class:`SupervisorError`) once the
        tree gave up, and :class:`SupervisorError` for a fault of its own, in every case
        after every child has ended. The error is raised as itself, never inside an
        exception group, so a parent tree (or ``start_supervisor``) recognises it.
        """
        state = self.initial_state() if initial_state is None else initial_state
        if not isinstance(state, Starting):
            raise ValueError(f"a supervision tree's run begins in Starting(), not {state!r}")
        ctx = self.initial_context() if context is None else context
        ctx.start_ack, self._start_ack = self._start_ack, None
        if self._watcher.closed:
            self._watcher = StateWatcher(state)
        self._context = ctx
        send, receive = anyio.create_memory_object_stream[TreeEvent](math.inf)
        outcome: RunOutcome[TreeState] | None = None
        failure: SupervisorError | None = None
        try:
            async with anyio.create_task_group() as task_group:
                ctx.bind(task_group, send, receive)
                try:
                    outcome = await super().run(state, ctx)
                except SupervisorError as exc:
                    failure = exc
                finally:
                    # Normally every child has been stopped by now; whatever still runs
                    # (an abandoned child, or everything after a fault or a
                    # cancellation) is cancelled and joined here.
                    task_group.cancel_scope.cancel()
        finally:
            ctx.unbind()
            send.close()
            receive.close()
            self._stop_requested = False
            if self.last_outcome is not None:
                self._watcher.publish(self.last_outcome.final_state)
            self._watcher.close()
        if failure is not None:
            raise failure
        assert outcome is not None
        return outcome

    # -- the loop's hooks ---------------------------------------------------------------

    async def dispatch_state(
        self, state: TreeState, ctx: TreeContext
    ) -> EventLoopDirective[TreeEvent]:
        """Do the waiting work of each state: start the spec's children, receive the
        next event, stop children."""
        self._watcher.publish(state)
        match state:
            case Starting():
                if self._stop_requested:
                    return Trigger(Shutdown())
                failure = await ctx.start_initial()
                if failure is None:
                    return Trigger(ChildrenStarted())
                return Trigger(StartFailed(*failure))
            case Running():
                return Trigger(await ctx.next_event())
            case Restarting(pending=pending, stopping=stopping):
                if stopping:
                    await ctx.stop_children(stopping, forget=True)
                    return Trigger(ChildrenStopped())
                event = await ctx.next_event_before(min(p.due for p in pending))
                return Trigger(RestartDue() if event is None else event)
            case ShuttingDown() | Escalating():
                ctx.cancel_pending_restarts()
                if ctx.pooled:
                    await ctx.stop_all_at_once()
                else:
                    await ctx.stop_children(None, forget=False)
                return Trigger(ChildrenStopped())
            case Stopped() | Failed():
                return TERMINATE

    async def after_transition(self, state: TreeState, ctx: TreeContext) -> None:
        """Publish the new state; acknowledge the start on first reaching ``Running``;
        on entering ``Failed`` end the run with the error.

        Raising here is how the tree fails upward: the loop ends the run as ``FAILED``
        with this very error, writes the completion event and attaches the outcome.
        """
        self._watcher.publish(state)
        if isinstance(state, Running) and ctx.start_ack is not None:
            ack, ctx.start_ack = ctx.start_ack, None
            ack.started()
        if isinstance(state, Failed):
            if ctx.start_failure is not None:
                raise FailedToStartChild(self.name, *ctx.start_failure)
            if ctx.gave_up:
                raise RestartIntensityExceeded(self.name, ctx.intensity, ctx.history)
            raise SupervisorError(self.name, "Failed", "TreeFault", state.reason)
