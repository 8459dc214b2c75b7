"""The reactor's health, derived from its accumulators' in constant time per change.

A reactor with a thousand sources sees a thousand health changes while it starts; each
one must not rescan every accumulator. :class:`HealthTally` keeps the counts the rules
need (how many are still waiting to become healthy, which are down) up to date as the
changes arrive, so deriving the reactor's health is O(1) while warming and O(down) after.
"""

from __future__ import annotations

from collections.abc import Iterable

from ._accumulator_fsm import DISCONNECTED, STARTING, STOPPED, AccumulatorHealth
from ._fsm import Degraded, Live, Warming


def _waiting(health: AccumulatorHealth) -> bool:
    """Holds a warming reactor back: neither healthy nor stopped."""
    return not (health.healthy or health is STOPPED)


def _down(health: AccumulatorHealth) -> bool:
    """Makes a running reactor ``Degraded``: disconnected, or still (re)starting."""
    return health is DISCONNECTED or health is STARTING


class HealthTally:
    """Every accumulator's health, and the counts the reactor's health follows from.

    * While warming, the reactor is ``Warming(healthy, waiting)`` (counts of accumulators)
      until none is waiting (every one healthy or stopped), then ``Live``.
    * After that, it is ``Degraded(disconnected)`` while any is disconnected or
      restarting (named in the order they went down), and ``Live`` once all recovered.
    """

    __slots__ = ("healths", "_healthy", "_waiting", "_down")

    def __init__(self, names: Iterable[str]) -> None:
        self.healths: dict[str, AccumulatorHealth] = dict.fromkeys(names, STARTING)
        self._healthy = 0
        self._waiting = len(self.healths)
        #: The accumulators that are down, in the order they went down (a dict as an
        #: ordered set).
        self._down: dict[str, None] = dict.fromkeys(self.healths)

    def record(self, source: str, health: AccumulatorHealth) -> None:
        """``source`` is now ``health``."""
        before = self.healths.get(source)
        self.healths[source] = health
        if before is not None:
            self._healthy -= before.healthy
            self._waiting -= _waiting(before)
        self._healthy += health.healthy
        self._waiting += _waiting(health)
        if _down(health):
            self._down.setdefault(source)
        else:
            self._down.pop(source, None)

    def derive(
        self, warming: bool, source: str | None = None, health: AccumulatorHealth | None = None
    ) -> Warming | Live | Degraded:
        """The reactor's health; with ``source`` and ``health``, as it would be once that
        change is recorded (nothing is changed)."""
        healthy, waiting = self._healthy, self._waiting
        before = None if source is None else self.healths.get(source)
        if health is not None:
            if before is not None:
                healthy -= before.healthy
                waiting -= _waiting(before)
            healthy += health.healthy
            waiting += _waiting(health)
        if warming:
            return Warming(healthy, waiting) if waiting else Live()
        down = self._down
        if source is None or health is None or _down(health) == (source in down):
            return Degraded(tuple(down)) if down else Live()
        if _down(health):
            return Degraded((*down, source))
        rest = tuple(name for name in down if name != source)
        return Degraded(rest) if rest else Live()
