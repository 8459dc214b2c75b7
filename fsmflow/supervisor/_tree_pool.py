"""``SupervisorPool``: a tree of identical children started on demand (OTP's
``simple_one_for_one``)."""

from __future__ import annotations

import itertools
import random
from typing import Generic, TypeVar

from ._handle import TaskSpawner
from ._records import Journal
from ._tree_base import DEFAULT_BACKOFF, DEFAULT_INTENSITY, TreeBase
from ._tree_handle import PoolHandle
from ._tree_values import (
    AutoShutdown,
    ChildTemplate,
    RestartBackoff,
    RestartIntensity,
    RestartStrategy,
)

A = TypeVar("A")


class SupervisorPool(TreeBase, Generic[A]):
    """A tree whose children all come from one :class:`ChildTemplate`, each started with
    its own arguments through :meth:`PoolHandle.start_child` (OTP's
    ``simple_one_for_one``).

    It starts empty. Each child restarts on its own (one-for-one) with the arguments it
    was started with, within the pool's ``intensity`` and ``backoff``. A child that ended
    for good, or was stopped with ``terminate_child``, is forgotten, so a pool that
    serves many short-lived children holds only the live ones. On shutdown every child
    is asked to stop at the same moment (they do not depend on each other) and each is
    given the template's ``shutdown_timeout``. ``A`` is the type of the arguments, so
    ``start_child`` is checked by mypy.
    """

    def __init__(
        self,
        name: str,
        template: ChildTemplate[A],
        *,
        intensity: RestartIntensity = DEFAULT_INTENSITY,
        backoff: RestartBackoff = DEFAULT_BACKOFF,
        rng: random.Random | None = None,
        history_limit: int = 100,
        auto_shutdown: AutoShutdown = AutoShutdown.NEVER,
        journal: Journal | None = None,
    ) -> None:
        if not isinstance(template, ChildTemplate):
            raise TypeError(f"pool {name!r}: template must be a ChildTemplate, not {template!r}")
        super().__init__(
            name,
            (),
            strategy=RestartStrategy.ONE_FOR_ONE,
            intensity=intensity,
            backoff=backoff,
            rng=rng,
            history_limit=history_limit,
            auto_shutdown=auto_shutdown,
            journal=journal,
            pooled=True,
        )
        self.template = template
        self.check_significance(f"{template.name}-*", template.significant)
        self._numbers = itertools.count(1)

    @property
    def strategy_label(self) -> str:
        return "simple_one_for_one"

    def next_child_id(self) -> str:
        """A fresh child id: ``f"{template.name}-{n}"``."""
        return f"{self.template.name}-{next(self._numbers)}"

    async def start(self, spawner: TaskSpawner, *, raise_on_failure: bool = True) -> PoolHandle[A]:
        """Run the pool in ``spawner`` and return its handle at once (a pool has no
        children to start). ``raise_on_failure`` as for ``SupervisionTree.start``."""
        run = await self.start_run(spawner, raise_on_failure=raise_on_failure)
        return PoolHandle(self, run)
