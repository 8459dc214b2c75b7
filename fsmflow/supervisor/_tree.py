"""``SupervisionTree``: a supervisor whose work is to keep other supervisors running.

After Erlang/OTP. The tree starts its children in a task group it owns, in order and
each once the one before reported that it started; learns of every exit as a
:class:`ChildExited` event; and restarts children by strategy, restart type, intensity
and backoff. Through its handle, children can be added, stopped, restarted and removed
while it runs.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from ._handle import TaskSpawner
from ._records import Journal
from ._tree_base import DEFAULT_BACKOFF, DEFAULT_INTENSITY, TreeBase
from ._tree_handle import TreeHandle
from ._tree_values import AutoShutdown, ChildSpec, RestartBackoff, RestartIntensity, RestartStrategy


class SupervisionTree(TreeBase):
    """Run child supervisors and restart them when they exit.

    * ``children`` start in order, each once the one before reported that it started
      (like ``nursery.start``); one that cannot start fails the tree's start with
      :class:`FailedToStartChild`, after the ones already started were stopped in
      reverse order. They stop in reverse order (later children may depend on earlier
      ones). Each :class:`ChildSpec`'s factory makes a fresh supervisor per run.
    * ``strategy`` picks which children restart together, each child's
      :class:`RestartType` whether its exit asks for a restart at all.
    * ``intensity`` bounds the restarts: one more than it allows, and the tree stops
      every child and its run raises :class:`RestartIntensityExceeded` (which a parent
      tree sees as a failed child). ``backoff`` spaces restarts out; its jitter draws
      from ``rng`` (pass a seeded ``random.Random`` for reproducible delays). A restart
      whose child cannot start counts like any failed run.
    * ``auto_shutdown`` shuts the tree down once any or all of its significant children
      ended for good.
    * :meth:`shutdown` stops the children in reverse order, each within its
      ``shutdown_timeout``, and ends the run normally (``TERMINATED``). Cancelling the
      run instead cancels every child at once; their completion events are still
      written.
    * ``await tree.start(task_group)`` runs the tree in ``task_group`` and returns a
      :class:`TreeHandle` once it started: add, stop, restart and remove children while
      it runs, from any task.

    No child outlives the tree's run: they live in the task group that ``run`` opens.
    A tree object serves one run at a time; a parent's factory makes a new one per start.
    Every argument is checked here: a wrong strategy, restart type or intensity raises
    naming the tree or the child.
    """

    def __init__(
        self,
        name: str,
        children: Sequence[ChildSpec],
        *,
        strategy: RestartStrategy = RestartStrategy.ONE_FOR_ONE,
        intensity: RestartIntensity = DEFAULT_INTENSITY,
        backoff: RestartBackoff = DEFAULT_BACKOFF,
        rng: random.Random | None = None,
        history_limit: int = 100,
        auto_shutdown: AutoShutdown = AutoShutdown.NEVER,
        journal: Journal | None = None,
    ) -> None:
        super().__init__(
            name,
            children,
            strategy=strategy,
            intensity=intensity,
            backoff=backoff,
            rng=rng,
            history_limit=history_limit,
            auto_shutdown=auto_shutdown,
            journal=journal,
            pooled=False,
        )

    async def start(self, spawner: TaskSpawner, *, raise_on_failure: bool = True) -> TreeHandle:
        """Run the tree in ``spawner`` (a nursery or task group) and return its handle
        once every child of its spec started.

        Raises :class:`FailedToStartChild` if one could not start (nothing of the tree
        is left running then). With ``raise_on_failure`` (the default) a later failure of
        the tree propagates into ``spawner``, so it is never silent; without it, it is
        only reported through :meth:`TreeHandle.outcome`.
        """
        run = await self.start_run(spawner, raise_on_failure=raise_on_failure)
        return TreeHandle(self, run)
