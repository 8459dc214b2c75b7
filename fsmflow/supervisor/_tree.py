"""``SupervisionTree``: a supervisor whose work is to keep other supervisors running.

After Erlang/OTP. The tree starts its children in a task group it owns, learns of every
exit as a :class:`ChildExited` event, and restarts children by strategy, restart type,
intensity and backoff. The tree is itself an ordinary :class:`SelfSupervised`: one loop
drives its FSM (no second loop hides in here), its state is watchable and drawable, and
it can be the child of another tree.

Why an internal channel rather than the ``*WithExternalEvents`` wrappers: the tree must
own the task group its children live in, so its own :meth:`SupervisionTree.run` has to
open that group around the loop. A wrapper would run the loop without calling the
tree's ``run``, so the tree keeps its channel to itself and its dispatch blocks on it
exactly as ``ExternalEventMode.BLOCK`` would.
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter
from collections.abc import Sequence
from typing import Any

import anyio

from ..fsm import FsmSpec
from ._base import SelfSupervised
from ._directives import TERMINATE, EventLoopDirective, Trigger
from ._handle import SupervisorHandle
from ._records import Journal, RunOutcome, SupervisorError
from ._tree_context import ChildRun, TreeAction, TreeContext
from ._tree_spec import tree_spec
from ._tree_states import (
    Begin,
    ChildrenStopped,
    Escalating,
    Failed,
    RestartDue,
    Restarting,
    Running,
    Shutdown,
    ShuttingDown,
    Starting,
    Stopped,
    TreeEvent,
    TreeFault,
    TreeState,
)
from ._tree_values import (
    ChildSpec,
    ChildStatus,
    RestartBackoff,
    RestartIntensity,
    RestartIntensityExceeded,
    RestartRecord,
    RestartStrategy,
)
from ._watcher import StateWatcher

logger = logging.getLogger("fsmflow.supervisor")

# The defaults are frozen values, so one instance serves every tree.
_DEFAULT_INTENSITY = RestartIntensity()
_DEFAULT_BACKOFF = RestartBackoff()


class SupervisionTree(SelfSupervised[TreeState, TreeEvent, TreeContext, TreeAction]):
    """Run child supervisors and restart them when they exit.

    * ``children`` are started in order and stopped in reverse order (later children may
      depend on earlier ones); each :class:`ChildSpec`'s factory makes a fresh
      supervisor per run.
    * ``strategy`` picks which children restart together, each child's
      :class:`RestartType` whether its exit asks for a restart at all.
    * ``intensity`` bounds the restarts: one more than it allows, and the tree stops
      every child and its run raises :class:`RestartIntensityExceeded` (which a parent
      tree sees as a failed child). ``backoff`` spaces restarts out; its jitter draws
      from ``rng`` (pass a seeded ``random.Random`` for reproducible delays).
    * :meth:`shutdown` stops the children in reverse order, each within its
      ``shutdown_timeout``, and ends the run normally (``TERMINATED``). Cancelling the
      run instead cancels every child at once; their completion events are still
      written.

    No child outlives the tree's run: they live in the task group that ``run`` opens.
    A tree object serves one run at a time; a parent's factory makes a new one per start.
    """

    def __init__(
        self,
        name: str,
        children: Sequence[ChildSpec],
        *,
        strategy: RestartStrategy = RestartStrategy.ONE_FOR_ONE,
        intensity: RestartIntensity = _DEFAULT_INTENSITY,
        backoff: RestartBackoff = _DEFAULT_BACKOFF,
        rng: random.Random | None = None,
        history_limit: int = 100,
        journal: Journal | None = None,
    ) -> None:
        super().__init__(name, journal=journal)
        duplicates = sorted(i for i, n in Counter(c.id for c in children).items() if n > 1)
        if duplicates:
            raise ValueError(f"tree {name!r}: duplicate child ids {', '.join(duplicates)}")
        if history_limit < 1:
            raise ValueError(f"history_limit must be >= 1, not {history_limit}")
        self.children = tuple(children)
        self.strategy = strategy
        self.intensity = intensity
        self.backoff = backoff
        self.history_limit = history_limit
        self._rng = random.Random() if rng is None else rng
        self._context = self.initial_context()
        self._watcher: StateWatcher[TreeState] = StateWatcher(Starting())
        self._stop_requested = False

    @classmethod
    def fsm_spec(cls) -> FsmSpec[TreeState, TreeEvent, TreeContext, TreeAction]:
        return tree_spec()

    def initial_context(self) -> TreeContext:
        return TreeContext(
            self.children,
            strategy=self.strategy,
            intensity=self.intensity,
            backoff=self.backoff,
            rng=self._rng,
            history_limit=self.history_limit,
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
    def history(self) -> tuple[RestartRecord, ...]:
        """The restarts of the current (or last) run, oldest first, at most
        ``history_limit`` of them."""
        return tuple(self._context.history)

    def children_status(self) -> tuple[ChildStatus, ...]:
        """A snapshot of every child, in start order."""
        return tuple(child.status() for child in self._context.children.values())

    def child_status(self, child_id: str) -> ChildStatus:
        return self._context.children[child_id].status()

    def child_handle(self, child_id: str) -> SupervisorHandle[Any, Any] | None:
        """The handle of the child's current run (``None`` before its first start or when
        it could not be started). A restart makes a new handle: look it up again rather
        than keeping it."""
        run = self._context.children[child_id].run
        return None if run is None else run.handle

    # -- controlling ------------------------------------------------------------------

    def shutdown(self) -> None:
        """Ask for an orderly shutdown: children stop in reverse start order, each within
        its ``shutdown_timeout``, then the run returns ``TERMINATED``.

        Safe to call more than once, from any task, and also before the run has begun
        (the run then stops without starting any child).
        """
        if self._stop_requested:
            return
        self._stop_requested = True
        self._context.post(Shutdown())

    async def run(
        self, initial_state: TreeState | None = None, context: TreeContext | None = None
    ) -> RunOutcome[TreeState]:
        """Open the task group the children live in and drive the tree's FSM inside it.

        Returns ``TERMINATED`` after an orderly shutdown; raises
        :class:`RestartIntensityExceeded` (a :class:`SupervisorError`) once the tree gave
        up, and :class:`SupervisorError` for a fault of its own, in both cases after
        every child has ended. The error is raised as itself, never inside an exception
        group, so a parent tree (or ``start_supervisor``) recognises it.
        """
        state = self.initial_state() if initial_state is None else initial_state
        if not isinstance(state, Starting):
            raise ValueError(f"a supervision tree's run begins in Starting(), not {state!r}")
        ctx = self.initial_context() if context is None else context
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
                    # (a laggard past its deadline, or everything after a fault or a
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
        """Do the waiting work of each state: receive the next event, stop children."""
        self._watcher.publish(state)
        match state:
            case Starting():
                return Trigger(Shutdown() if self._stop_requested else Begin())
            case Running():
                return Trigger(await ctx.next_event())
            case Restarting(pending=pending, stopping=stopping):
                if stopping:
                    await self._stop(ctx, stopping)
                    return Trigger(ChildrenStopped())
                event = await ctx.next_event_before(min(p.due for p in pending))
                return Trigger(RestartDue() if event is None else event)
            case ShuttingDown() | Escalating():
                await self._stop(ctx, ctx.child_ids)
                return Trigger(ChildrenStopped())
            case Stopped() | Failed():
                return TERMINATE

    async def after_transition(self, state: TreeState, ctx: TreeContext) -> None:
        """Publish the new state; on entering ``Failed`` end the run with the error.

        Raising here is how the tree fails upward: the loop ends the run as ``FAILED``
        with this very error, writes the completion event and attaches the outcome.
        """
        self._watcher.publish(state)
        if isinstance(state, Failed):
            if ctx.gave_up:
                raise RestartIntensityExceeded(self.name, ctx.intensity, ctx.history)
            raise SupervisorError(self.name, "Failed", "TreeFault", state.reason)

    async def _stop(self, ctx: TreeContext, child_ids: Sequence[str]) -> None:
        """Stop the live children among ``child_ids``, one after the other, in reverse
        start order."""
        for spec, run in ctx.live_runs(child_ids):
            await _stop_run(self.name, spec, run)


async def _stop_run(tree: str, spec: ChildSpec, run: ChildRun) -> None:
    """Ask one run to stop and wait for it until its deadline.

    A child tree is asked for an orderly :meth:`SupervisionTree.shutdown` (so its own
    children stop in order too) and cancelled only if that misses the deadline; any
    other supervisor is cancelled at once (its loop still writes its completion event).
    A run that misses its deadline is left behind, logged; it still lives in the tree's
    task group, which waits for it before the tree's run ends. Calling this again for
    the same run only waits out what is left of the deadline.
    """
    handle = run.handle
    assert handle is not None, "only started runs are stopped"
    run.stopping = True
    first_request = run.deadline is None
    if run.deadline is None:
        run.deadline = anyio.current_time() + spec.shutdown_timeout
        if isinstance(run.supervisor, SupervisionTree):
            run.supervisor.shutdown()
        else:
            handle.cancel()
    with anyio.move_on_at(run.deadline):
        await handle.outcome()
    if first_request and not handle.done:
        handle.cancel()
        logger.warning(
            "%s: child %r did not stop within its shutdown_timeout of %gs; moving on",
            tree,
            spec.id,
            spec.shutdown_timeout,
        )
