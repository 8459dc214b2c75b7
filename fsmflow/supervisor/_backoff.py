"""``IdleBackoff``: how long a polling supervisor sleeps when it found nothing to do."""

from __future__ import annotations

import random

import anyio


class IdleBackoff:
    """Exponential idle backoff, capped, reset as soon as there is work.

    A polling ``dispatch_state`` calls :meth:`idle` when it found nothing (it sleeps
    ``initial``, then twice that, up to ``maximum``) and :meth:`reset` when it did work.
    ``jitter`` spreads the sleeps of many supervisors by up to that fraction.
    """

    def __init__(
        self,
        initial: float = 0.001,
        maximum: float = 1.0,
        factor: float = 2.0,
        jitter: float = 0.0,
    ) -> None:
        if not 0 < initial <= maximum:
            raise ValueError(f"need 0 < initial <= maximum, got {initial} and {maximum}")
        if factor < 1:
            raise ValueError(f"factor must be >= 1, not {factor}")
        if not 0 <= jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), not {jitter}")
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self._next = initial

    @property
    def next_delay(self) -> float:
        """The sleep the next :meth:`idle` takes, before jitter."""
        return self._next

    def reset(self) -> None:
        """There was work: the next idle sleep starts from ``initial`` again."""
        self._next = self.initial

    async def idle(self) -> None:
        """Sleep for the current delay, then grow it (cancellable)."""
        delay = self._next
        self._next = min(self._next * self.factor, self.maximum)
        if self.jitter:
            delay *= 1 + random.uniform(-self.jitter, self.jitter)
        await anyio.sleep(delay)
