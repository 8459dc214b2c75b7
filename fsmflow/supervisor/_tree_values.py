"""The values a supervision tree is configured with and reports: child specs and
templates, restart strategies and types, auto-shutdown, intensity and backoff, restart
records and child status.

They are frozen attrs classes, checked when they are made, so a configuration can be
shared between trees (and between the restarts of one tree) without anyone changing it
underneath, and a typo fails at construction naming the child, never at the first exit.
"""

from __future__ import annotations

import enum
import functools
import math
import random
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import attrs

from ._base import Supervisor
from ._records import ExitKind, RunOutcome

A = TypeVar("A")


class RestartStrategy(enum.Enum):
    """Which children a tree restarts when one of them has to be restarted.

    The grouped strategies exist for children that depend on each other: the ones
    listed later depend on the ones listed earlier, so a restart stops the group in
    reverse order and starts it again in order. As in Erlang/OTP, the group is every
    child whose spec the tree holds (a transient child that ended normally, or one
    stopped with ``terminate_child``, comes back with it); temporary children in the
    group are stopped and dropped.
    """

    #: Restart only the child that exited.
    ONE_FOR_ONE = "one_for_one"
    #: Stop every other live child, then start every child again, in order.
    ONE_FOR_ALL = "one_for_all"
    #: Stop the live children listed after the one that exited, then start it and every
    #: child after it again, in order.
    REST_FOR_ONE = "rest_for_one"


class RestartType(enum.Enum):
    """Whether a child's exit makes the tree restart it."""

    #: Always restarted, however the run ended.
    PERMANENT = "permanent"
    #: Restarted only when its run failed; a normal end (terminated, or cancelled by
    #: someone other than the tree) is final, though the tree keeps its spec.
    TRANSIENT = "transient"
    #: Never restarted; the tree forgets the child once its run ended.
    TEMPORARY = "temporary"

    def restarts_after(self, exit_kind: ExitKind) -> bool:
        """Whether a run that ended with ``exit_kind`` is restarted."""
        if self is RestartType.PERMANENT:
            return True
        return self is RestartType.TRANSIENT and exit_kind is ExitKind.FAILED


class AutoShutdown(enum.Enum):
    """When a tree shuts itself down because its *significant* children ended.

    A significant child "ends" when its run is over for good by its own doing: a
    transient child that ended normally, a temporary child that ended however it did.
    Stopping it with ``terminate_child``, in a group restart or in a shutdown does not
    count. The shutdown is orderly and the tree's run ends ``TERMINATED``.
    """

    #: Never: significant children are refused.
    NEVER = "never"
    #: As soon as any significant child ended.
    ANY_SIGNIFICANT = "any_significant"
    #: Once no significant child is running or waiting to restart.
    ALL_SIGNIFICANT = "all_significant"


class ChildState(enum.Enum):
    """Where one child of a tree is, as :class:`ChildStatus` reports it."""

    #: A run of the child is in progress.
    RUNNING = "running"
    #: The child will start again once its backoff has passed (or its group stopped).
    RESTARTING = "restarting"
    #: No run: not started yet, ended for good, or stopped with ``terminate_child``.
    STOPPED = "stopped"
    #: Asked to stop, its run missed its ``shutdown_timeout`` and still goes on; the
    #: tree no longer waits for it in order (see "A child that ignores shutdown").
    ABANDONED = "abandoned"


def check_member(owner: str, field: str, value: object, kind: type[enum.Enum]) -> None:
    """Raise ``TypeError`` naming ``owner`` unless ``value`` is a member of ``kind``."""
    if not isinstance(value, kind):
        members = ", ".join(f"{kind.__name__}.{m.name}" for m in kind)
        raise TypeError(f"{owner}: {field} must be one of {members}, not {value!r}")


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_child(
    owner: str,
    factory: object,
    restart: object,
    shutdown_timeout: object,
    context_factory: object,
    significant: object,
) -> None:
    """The checks :class:`ChildSpec` and :class:`ChildTemplate` share."""
    if not callable(factory):
        raise TypeError(f"{owner}: factory must be callable, not {factory!r}")
    check_member(owner, "restart", restart, RestartType)
    if not (
        isinstance(shutdown_timeout, int | float)
        and not isinstance(shutdown_timeout, bool)
        and shutdown_timeout >= 0
    ):
        raise ValueError(
            f"{owner}: shutdown_timeout must be a number >= 0, not {shutdown_timeout!r}"
        )
    if context_factory is not None and not callable(context_factory):
        raise TypeError(
            f"{owner}: context_factory must be callable or None, not {context_factory!r}"
        )
    if not isinstance(significant, bool):
        raise TypeError(f"{owner}: significant must be a bool, not {significant!r}")
    if significant and restart is RestartType.PERMANENT:
        raise ValueError(
            f"{owner}: a significant child must be TRANSIENT or TEMPORARY; a PERMANENT one "
            "is always restarted, so it never ends for good"
        )


@attrs.frozen
class ChildSpec:
    """How a tree runs one child.

    ``factory`` makes a fresh supervisor for every (re)start, so no state leaks from a
    crashed run into the next. ``initial_state`` and ``context_factory`` are passed on
    to the run (``None``: the supervisor's own ``initial_state()`` / ``initial_context()``).
    ``shutdown_timeout`` is how long the tree waits, after asking the child to stop,
    before it abandons it (``math.inf``: as long as it takes, as OTP advises for a child
    that is itself a tree). ``significant`` children decide the tree's
    :class:`AutoShutdown`; they must be transient or temporary.

    Every field is checked here: a wrong type or value raises naming the child.
    """

    id: str
    factory: Callable[[], Supervisor[Any, Any, Any, Any]]
    restart: RestartType = RestartType.PERMANENT
    shutdown_timeout: float = 5.0
    initial_state: object | None = None
    context_factory: Callable[[], object] | None = None
    significant: bool = False

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise TypeError(f"a child id must be a non-empty str, not {self.id!r}")
        _check_child(
            f"child {self.id!r}",
            self.factory,
            self.restart,
            self.shutdown_timeout,
            self.context_factory,
            self.significant,
        )


@attrs.frozen
class ChildTemplate(Generic[A]):
    """The one spec of a :class:`~fsmflow.supervisor.SupervisorPool` (OTP's
    ``simple_one_for_one``): every child is made from it with its own arguments.

    ``factory(args)`` makes the supervisor for each (re)start of a child started with
    ``args``; ``context_factory(args)``, if given, its context. Children are named
    ``f"{name}-{n}"``, ``n`` counting from 1 for each pool. The other fields mean what
    they mean in :class:`ChildSpec` and are checked the same way.
    """

    name: str
    factory: Callable[[A], Supervisor[Any, Any, Any, Any]]
    restart: RestartType = RestartType.PERMANENT
    shutdown_timeout: float = 5.0
    context_factory: Callable[[A], object] | None = None
    significant: bool = False

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"a template name must be a non-empty str, not {self.name!r}")
        _check_child(
            f"template {self.name!r}",
            self.factory,
            self.restart,
            self.shutdown_timeout,
            self.context_factory,
            self.significant,
        )

    def bind(self, child_id: str, args: A) -> ChildSpec:
        """The spec of one child of the pool, started with ``args``."""
        context_factory = (
            None if self.context_factory is None else functools.partial(self.context_factory, args)
        )
        return ChildSpec(
            child_id,
            functools.partial(self.factory, args),
            restart=self.restart,
            shutdown_timeout=self.shutdown_timeout,
            context_factory=context_factory,
            significant=self.significant,
        )


@attrs.frozen
class RestartIntensity:
    """At most ``max_restarts`` restarts within any ``period`` seconds.

    The window slides on the loop's clock (``anyio.current_time()``), so it counts the
    same under trio's ``MockClock``. One exit that restarts a whole group counts once.
    Both values must be finite (an int >= 0 and a number > 0), so a tree can always give
    up.
    """

    max_restarts: int = 3
    period: float = 5.0

    def __attrs_post_init__(self) -> None:
        if not (
            isinstance(self.max_restarts, int)
            and not isinstance(self.max_restarts, bool)
            and self.max_restarts >= 0
        ):
            raise ValueError(
                "max_restarts must be an int >= 0 (finite, so the tree can give up), "
                f"not {self.max_restarts!r}"
            )
        if not (_finite(self.period) and self.period > 0):
            raise ValueError(f"period must be a finite number > 0, not {self.period!r}")


@attrs.frozen
class RestartBackoff:
    """The delay before a restart: ``initial * factor ** n``, capped at ``maximum``.

    ``n`` counts the child's earlier restarts still inside the intensity window, so a
    child that keeps crashing backs off further and further, and one that has been
    stable for a whole window starts from ``initial`` again. ``jitter`` then spreads the
    delay by up to that fraction either way, drawn from the tree's ``random.Random``
    (inject a seeded one for reproducible delays). ``initial=0`` restarts at once. Every
    value must be finite, so every restart is due at some point.
    """

    initial: float = 0.1
    maximum: float = 10.0
    factor: float = 2.0
    jitter: float = 0.1

    def __attrs_post_init__(self) -> None:
        for name in ("initial", "maximum", "factor", "jitter"):
            if not _finite(getattr(self, name)):
                raise ValueError(f"{name} must be a finite number, not {getattr(self, name)!r}")
        if not 0 <= self.initial <= self.maximum:
            raise ValueError(f"need 0 <= initial <= maximum, got {self.initial} and {self.maximum}")
        if not self.factor >= 1:
            raise ValueError(f"factor must be >= 1, not {self.factor}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), not {self.jitter}")

    def delay(self, earlier_restarts: int, rng: random.Random) -> float:
        """The delay before a restart that follows ``earlier_restarts`` recent ones."""
        delay = self.initial
        for _ in range(earlier_restarts):  # a loop, not a power: it stops at the cap
            if delay >= self.maximum:
                break
            delay *= self.factor
        delay = min(delay, self.maximum)
        if self.jitter:
            delay *= 1 + rng.uniform(-self.jitter, self.jitter)
        return delay


@attrs.frozen
class PendingRestart:
    """A child the tree will start again at ``due`` (on the loop's clock)."""

    child_id: str
    due: float


@attrs.frozen
class RestartRecord:
    """One child exit that asked for a restart, as the tree's history keeps it.

    ``restarted`` lists the children restarted because of it, in start order, and
    ``delay`` the backoff they waited. The exit that exceeded the restart intensity is
    recorded too, with nothing restarted.
    """

    child_id: str
    exit: ExitKind
    error: str | None
    #: The loop's clock when the tree handled the exit.
    at: float
    restarted: tuple[str, ...]
    delay: float


@attrs.frozen
class ChildStatus:
    """A snapshot of one child of a tree (``which_children()``)."""

    child_id: str
    state: ChildState
    #: How many times the tree started it again after its first start.
    restarts: int
    #: How its most recent finished run ended, if one has.
    last_outcome: RunOutcome[object] | None
    restart: RestartType = RestartType.PERMANENT
    significant: bool = False

    @property
    def running(self) -> bool:
        """True while a run of the child is in progress (an abandoned run included)."""
        return self.state is ChildState.RUNNING or self.state is ChildState.ABANDONED


@attrs.frozen
class ChildCounts:
    """How many children a tree holds, by :class:`ChildState` (``count_children()``)."""

    #: Every child whose spec the tree holds.
    specs: int
    running: int
    restarting: int
    stopped: int
    abandoned: int
