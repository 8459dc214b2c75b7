"""The states and events of a supervision tree's own FSM.

A tree is a supervisor like any other, so what it is doing is a state you can watch
(``tree.watcher``) and draw (``fsmflow diagram fsmflow.supervisor:SupervisionTree``),
and everything that happens to it is an event its FSM decides about.
"""

from __future__ import annotations

from typing import TypeAlias

import attrs

from ._records import RunOutcome
from ._tree_values import PendingRestart

# -- states -----------------------------------------------------------------------------


@attrs.frozen
class Starting:
    """The run has begun; no child has been started yet."""


@attrs.frozen
class Running:
    """Every child that should run has been started; waiting for exits or a shutdown."""


@attrs.frozen
class Restarting:
    """Children are waiting for their backoff to pass before they start again.

    ``stopping`` names live children a grouped strategy must stop first (the next
    dispatch stops them, in reverse start order); ``pending`` says when each child
    waiting to restart is due.
    """

    pending: tuple[PendingRestart, ...]
    stopping: tuple[str, ...] = ()


@attrs.frozen
class ShuttingDown:
    """An orderly shutdown: children are being stopped in reverse start order."""


@attrs.frozen
class Escalating:
    """The tree gave up: it stops every child before it fails."""

    reason: str


@attrs.frozen
class Stopped:
    """Every child was stopped after a shutdown; the run ends normally."""


@attrs.frozen
class Failed:
    """The tree failed; its run raises. Entered only once every child was stopped."""

    reason: str


TreeState: TypeAlias = (
    Starting | Running | Restarting | ShuttingDown | Escalating | Stopped | Failed
)

# -- events -----------------------------------------------------------------------------


@attrs.frozen
class Begin:
    """The tree's first step: start every child, in order."""


@attrs.frozen
class ChildExited:
    """A run of child ``child_id`` ended; ``run`` numbers the child's runs from 1, so a
    late report about an earlier run is recognised and ignored."""

    child_id: str
    run: int
    outcome: RunOutcome[object]


@attrs.frozen
class RestartDue:
    """The earliest pending restart's backoff has passed."""


@attrs.frozen
class Shutdown:
    """Stop every child in reverse start order, then end the run normally."""


@attrs.frozen
class ChildrenStopped:
    """The children the current state had to stop have stopped (or had their chance)."""


@attrs.frozen
class TreeFault:
    """The tree's own dispatch or an action failed (a bug, never a child's failure)."""

    message: str


TreeEvent: TypeAlias = Begin | ChildExited | RestartDue | Shutdown | ChildrenStopped | TreeFault
