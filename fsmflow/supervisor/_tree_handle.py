"""Handles: what you hold while a tree runs.

A handle is returned by ``await tree.start(task_group)`` once the tree has started. It
answers questions about the tree at once (``which_children()``, ``count_children()``,
``history``, ``flowchart()``) and changes the tree only through requests that the
tree's loop serves in order (``start_child``, ``terminate_child``, ...), so it is safe to
use from any task of the tree's event loop. A request is carried out even if the task
that made it is cancelled while waiting for the answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._handle import SupervisorHandle
from ._records import RunOutcome
from ._tree_errors import ChildNotFound
from ._tree_requests import DeleteChild, Reply, RestartChild, StartChild, TerminateChild
from ._tree_states import TreeEvent, TreeState
from ._tree_values import ChildCounts, ChildSpec, ChildStatus, RestartRecord
from ._watcher import StateWatcher

if TYPE_CHECKING:
    from .._flowchart import Flowchart
    from ._tree import SupervisionTree
    from ._tree_base import TreeBase
    from ._tree_pool import SupervisorPool

A = TypeVar("A")


class BaseTreeHandle:
    """What every tree handle offers; see :class:`TreeHandle` and :class:`PoolHandle`."""

    def __init__(self, tree: TreeBase, run: SupervisorHandle[TreeState, TreeEvent]) -> None:
        self._tree = tree
        self._run = run

    @property
    def name(self) -> str:
        return self._tree.name

    # -- the run --------------------------------------------------------------------------

    @property
    def watcher(self) -> StateWatcher[TreeState]:
        return self._tree.watcher

    @property
    def state(self) -> TreeState:
        return self._tree.state

    async def wait_for(self, predicate: Callable[[TreeState], bool]) -> TreeState:
        """Wait until the tree's state satisfies ``predicate`` (see
        :meth:`StateWatcher.wait_for`)."""
        return await self._tree.watcher.wait_for(predicate)

    def shutdown(self) -> None:
        """Ask for the tree's orderly shutdown (see ``SupervisionTree.shutdown``)."""
        self._tree.shutdown()

    def cancel(self) -> None:
        """Cancel the tree's run: every child is cancelled at once; their completion
        events are still written."""
        self._run.cancel()

    @property
    def done(self) -> bool:
        return self._run.done

    async def outcome(self) -> RunOutcome[TreeState]:
        """Wait for the tree's run to end and return how it ended."""
        return await self._run.outcome()

    # -- looking ----------------------------------------------------------------------------

    def which_children(self) -> tuple[ChildStatus, ...]:
        """Every child the tree holds, in start order: id, state, restart count, last
        outcome."""
        return self._tree.which_children()

    def count_children(self) -> ChildCounts:
        return self._tree.count_children()

    def child_status(self, child_id: str) -> ChildStatus:
        return self._tree.child_status(child_id)

    def child_handle(self, child_id: str) -> SupervisorHandle[Any, Any] | None:
        """The handle of the child's current run (see ``SupervisionTree.child_handle``)."""
        return self._tree.child_handle(child_id)

    def child_tree(self, child_id: str) -> TreeHandle:
        """The handle of a child that is itself a :class:`SupervisionTree`, in its current
        run. A restart of the child makes a new tree: look it up again rather than
        keeping it. Raises :class:`ChildNotFound`, and ``TypeError`` if the child is not
        a running tree."""
        from ._tree import SupervisionTree

        supervisor, run = self._child_run(child_id)
        if not isinstance(supervisor, SupervisionTree):
            raise TypeError(f"child {child_id!r} of {self.name!r} is not a running SupervisionTree")
        return TreeHandle(supervisor, run)

    def child_pool(self, child_id: str, args: type[A]) -> PoolHandle[A]:
        """The handle of a child that is a :class:`SupervisorPool` taking ``args``, in
        its current run (``args`` only tells the type checker what the pool's children
        are started with). Raises like :meth:`child_tree`."""
        from ._tree_pool import SupervisorPool

        supervisor, run = self._child_run(child_id)
        if not isinstance(supervisor, SupervisorPool):
            raise TypeError(f"child {child_id!r} of {self.name!r} is not a running SupervisorPool")
        return PoolHandle(supervisor, run)

    def _child_run(self, child_id: str) -> tuple[object, SupervisorHandle[TreeState, TreeEvent]]:
        child = self._tree.context.children.get(child_id)
        if child is None:
            raise ChildNotFound(self.name, child_id)
        run = child.run
        if run is None or not run.running or run.handle is None:
            raise TypeError(f"child {child_id!r} of {self.name!r} is not running")
        return run.supervisor, run.handle

    @property
    def history(self) -> tuple[RestartRecord, ...]:
        return self._tree.history

    def flowchart(self) -> Flowchart:
        """The tree as a picture, each child's current state highlighted."""
        return self._tree.flowchart()

    # -- requests ---------------------------------------------------------------------------

    async def terminate_child(self, child_id: str) -> None:
        """Stop the child's run (within its ``shutdown_timeout``; a child tree shuts down
        in order) and cancel a pending restart. The tree keeps the spec, so
        ``restart_child`` can start it again, except for a temporary child or a pool's
        child, which is forgotten. Stopping a child this way is never restarted and never
        counts as a significant child's end.

        Raises :class:`ChildNotFound`, or :class:`TreeNotRunning`.
        """
        reply: Reply[object] = Reply()
        self._tree.submit(TerminateChild(child_id, reply))
        await reply.wait()


class TreeHandle(BaseTreeHandle):
    """The handle of a running :class:`SupervisionTree`: OTP's ``start_child``,
    ``terminate_child``, ``restart_child``, ``delete_child``, ``which_children`` and
    ``count_children``."""

    def __init__(self, tree: SupervisionTree, run: SupervisorHandle[TreeState, TreeEvent]) -> None:
        super().__init__(tree, run)
        self.tree = tree

    async def start_child(self, spec: ChildSpec) -> ChildStatus:
        """Add ``spec`` as the tree's last child and start it; return once it started.

        The child then belongs to the tree like the children of its spec: restarted by
        the strategy, stopped in reverse start order. Raises
        :class:`ChildAlreadyPresent` if the id is taken, :class:`ChildStartError` if the
        child could not start (the tree then keeps no spec for it), ``ValueError`` for a
        significant child in a tree whose ``auto_shutdown`` is ``NEVER``, and
        :class:`TreeNotRunning`.
        """
        if not isinstance(spec, ChildSpec):
            raise TypeError(f"start_child takes a ChildSpec, not {spec!r}")
        self.tree.check_significance(spec.id, spec.significant)
        reply: Reply[object] = Reply()
        self.tree.submit(StartChild(spec, reply))
        status = await reply.wait()
        assert isinstance(status, ChildStatus)
        return status

    async def restart_child(self, child_id: str) -> ChildStatus:
        """Start a stopped child again (one stopped with ``terminate_child``, or a
        transient child that ended normally); return once it started. Does not count
        toward the restart intensity.

        Raises :class:`ChildNotFound`, :class:`ChildNotStopped` (running, restarting or
        abandoned), :class:`ChildStartError` (the child stays stopped) and
        :class:`TreeNotRunning`.
        """
        reply: Reply[object] = Reply()
        self.tree.submit(RestartChild(child_id, reply))
        status = await reply.wait()
        assert isinstance(status, ChildStatus)
        return status

    async def delete_child(self, child_id: str) -> None:
        """Forget a stopped child's spec. Raises :class:`ChildNotFound`,
        :class:`ChildNotStopped` and :class:`TreeNotRunning`."""
        reply: Reply[object] = Reply()
        self.tree.submit(DeleteChild(child_id, reply))
        await reply.wait()


class PoolHandle(BaseTreeHandle, Generic[A]):
    """The handle of a running :class:`SupervisorPool`: start children from its
    template, each with its own arguments, and terminate them."""

    def __init__(
        self, pool: SupervisorPool[A], run: SupervisorHandle[TreeState, TreeEvent]
    ) -> None:
        super().__init__(pool, run)
        self.pool = pool

    async def start_child(self, args: A) -> ChildStatus:
        """Start a new child from the pool's template with ``args``; return once it
        started. Its id (``f"{template.name}-{n}"``) is in the returned status.

        Raises :class:`ChildStartError` if it could not start and :class:`TreeNotRunning`.
        """
        reply: Reply[object] = Reply()
        spec = self.pool.template.bind(self.pool.next_child_id(), args)
        self.pool.submit(StartChild(spec, reply))
        status = await reply.wait()
        assert isinstance(status, ChildStatus)
        return status
