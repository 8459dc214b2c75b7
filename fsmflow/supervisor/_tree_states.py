"""The states and events of a supervision tree's own FSM.

A tree is a supervisor like any other, so what it is doing is a state you can watch
(``tree.watcher``) and draw (``fsmflow diagram fsmflow.supervisor:SupervisionTree``),
and everything that happens to it is an event its FSM decides about: a child's exit, a
backoff that passed, a request made through its handle, a shutdown.
"""

from __future__ import annotations

from typing import TypeAlias

import attrs

from ._records import RunOutcome
from ._tree_requests import DeleteChild, RestartChild, StartChild, TerminateChild
from ._tree_values import PendingRestart

# -- states -----------------------------------------------------------------------------


@attrs.frozen
class Starting:
    """The run has begun: the children are being started, in order, each once the one
    before it reported that it started."""


@attrs.frozen
class Running:
    """Every child that should run has been started; waiting for exits, requests or a
    shutdown."""


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
    """An orderly shutdown: children are being stopped in reverse start order.

    ``reason`` says why: asked for (``shutdown()``), or an auto-shutdown.
    """

    reason: str = "shutdown requested"


@attrs.frozen
class Escalating:
    """The tree gave up (or could not start): it stops every child before it fails."""

    reason: str


@attrs.frozen
class Stopped:
    """Every child was stopped after a shutdown; the run ends normally.

    ``abandoned`` names the children that missed their shutdown deadline: the tree
    stopped waiting for them in order, and its run returns once their tasks ended.
    """

    reason: str = "shutdown requested"
    abandoned: tuple[str, ...] = ()


@attrs.frozen
class Failed:
    """The tree failed; its run raises. Entered only once every child was stopped (or
    abandoned, see :class:`Stopped`)."""

    reason: str
    abandoned: tuple[str, ...] = ()


TreeState: TypeAlias = (
    Starting | Running | Restarting | ShuttingDown | Escalating | Stopped | Failed
)

# -- events -----------------------------------------------------------------------------


@attrs.frozen
class ChildrenStarted:
    """Every child of the tree's spec started: the tree is up."""


@attrs.frozen(eq=False)
class StartFailed:
    """Child ``child_id`` could not start while the tree was starting; ``error`` says
    why (``None`` when nothing more is known)."""

    child_id: str
    error: BaseException | None = attrs.field(repr=False)


@attrs.frozen
class ChildExited:
    """A run of child ``child_id`` ended; ``run`` numbers the tree's child runs from 1,
    so a late report about an earlier run is recognised and ignored."""

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


TreeEvent: TypeAlias = (
    ChildrenStarted
    | StartFailed
    | ChildExited
    | RestartDue
    | StartChild
    | TerminateChild
    | RestartChild
    | DeleteChild
    | Shutdown
    | ChildrenStopped
    | TreeFault
)
