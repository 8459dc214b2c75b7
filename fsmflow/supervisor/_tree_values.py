"""The values a supervision tree is configured with and reports: child specs, restart
strategies and types, intensity and backoff, restart records and child status.

They are frozen attrs classes so a configuration can be shared between trees (and
between the restarts of one tree) without anyone changing it underneath.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from ._base import Supervisor
from ._records import ExitKind, RunOutcome, SupervisorError


class RestartStrategy(enum.Enum):
    """Which children a tree restarts when one of them has to be restarted.

    The grouped strategies exist for children that depend on each other: the ones
    listed later depend on the ones listed earlier, so a restart stops the group in
    reverse order and starts it again in order.
    """

    #: Restart only the child that exited.
    ONE_FOR_ONE = "one_for_one"
    #: Stop every other live child, then restart them all.
    ONE_FOR_ALL = "one_for_all"
    #: Stop the live children listed after the one that exited, then restart it and them.
    REST_FOR_ONE = "rest_for_one"


class RestartType(enum.Enum):
    """Whether a child's exit makes the tree restart it."""

    #: Always restarted, however the run ended.
    PERMANENT = "permanent"
    #: Restarted only when its run failed; a normal end (terminated, or cancelled by
    #: someone other than the tree) is final.
    TRANSIENT = "transient"
    #: Never restarted; a grouped restart stops it without starting it again.
    TEMPORARY = "temporary"

    def restarts_after(self, exit_kind: ExitKind) -> bool:
        """Whether a run that ended with ``exit_kind`` is restarted."""
        if self is RestartType.PERMANENT:
            return True
        return self is RestartType.TRANSIENT and exit_kind is ExitKind.FAILED


def _not_negative(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value >= 0:
        raise ValueError(f"{attribute.name} must be >= 0, not {value!r}")


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be > 0, not {value!r}")


@attrs.frozen
class ChildSpec:
    """How a tree runs one child.

    ``factory`` makes a fresh supervisor for every (re)start, so no state leaks from a
    crashed run into the next. ``initial_state`` and ``context_factory`` are passed on
    to the run (``None``: the supervisor's own ``initial_state()`` / ``initial_context()``).
    ``shutdown_timeout`` is how long the tree waits, after asking the child to stop,
    before it moves on without it.
    """

    id: str
    factory: Callable[[], Supervisor[Any, Any, Any, Any]]
    restart: RestartType = RestartType.PERMANENT
    shutdown_timeout: float = attrs.field(default=5.0, validator=_not_negative)
    initial_state: object | None = None
    context_factory: Callable[[], object] | None = None


@attrs.frozen
class RestartIntensity:
    """At most ``max_restarts`` restarts within any ``period`` seconds.

    The window slides on the loop's clock (``anyio.current_time()``), so it counts the
    same under trio's ``MockClock``. One exit that restarts a whole group counts once.
    """

    max_restarts: int = attrs.field(default=3, validator=attrs.validators.ge(0))
    period: float = attrs.field(default=5.0, validator=_positive)


@attrs.frozen
class RestartBackoff:
    """The delay before a restart: ``initial * factor ** n``, capped at ``maximum``.

    ``n`` counts the child's earlier restarts still inside the intensity window, so a
    child that keeps crashing backs off further and further, and one that has been
    stable for a whole window starts from ``initial`` again. ``jitter`` then spreads the
    delay by up to that fraction either way, drawn from the tree's ``random.Random``
    (inject a seeded one for reproducible delays). ``initial=0`` restarts at once.
    """

    initial: float = attrs.field(default=0.1, validator=_not_negative)
    maximum: float = 10.0
    factor: float = 2.0
    jitter: float = 0.1

    def __attrs_post_init__(self) -> None:
        if not self.initial <= self.maximum:
            raise ValueError(f"need initial <= maximum, got {self.initial} and {self.maximum}")
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
    """A snapshot of one child of a tree."""

    child_id: str
    #: True while a run of the child is in progress.
    running: bool
    #: How many times the tree started it again after its first start.
    restarts: int
    #: How its most recent finished run ended, if one has.
    last_outcome: RunOutcome[object] | None


class RestartIntensityExceeded(SupervisorError):
    """A tree gave up: one more restart would have exceeded its restart intensity.

    Raised by the tree's run after it stopped every child. ``history`` holds the
    restart records, oldest first; the last one is the exit that was one too many.
    """

    def __init__(
        self, tree: str, intensity: RestartIntensity, history: Sequence[RestartRecord]
    ) -> None:
        self.intensity = intensity
        self.history = tuple(history)
        last = self.history[-1]
        lines = "".join(f"\n  {_describe_record(r)}" for r in self.history)
        super().__init__(
            tree,
            "Escalating",
            "ChildrenStopped",
            f"restart intensity exceeded: child {last.child_id!r} ended "
            f"({last.exit.value}) after {intensity.max_restarts} restart(s) within "
            f"{intensity.period:g}s; restart history:{lines}",
        )


def _describe_record(record: RestartRecord) -> str:
    """One history line, with the child's error (often several lines) indented below."""
    line = f"at {record.at:.3f}: {record.child_id!r} {record.exit.value}"
    if record.restarted:
        line += f" -> restarted {', '.join(record.restarted)} after {record.delay:.3f}s"
    else:
        line += " -> not restarted"
    if record.error is not None:
        line += "".join(f"\n      {part}" for part in record.error.splitlines())
    return line
