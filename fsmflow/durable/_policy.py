"""Retry policies and queues: values a workflow or a worker is configured with."""

from __future__ import annotations

import math
import random

import attrs


def _positive(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{attribute.name} must be a positive number, not {value!r}")


def _non_negative(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"{attribute.name} must be >= 0, not {value!r}")


def _at_least_one(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be >= 1, not {value!r}")


@attrs.frozen
class RetryPolicy:
    """How often a step (or an undo) is tried before it fails for good.

    Attempt ``n`` (from 1) that fails with an exception listed in ``retry_on`` (and not in
    ``give_up_on``) is retried after ``min(max_delay, initial_delay * multiplier**(n-1))``
    seconds, scaled by a random factor in ``[1 - jitter, 1]``, until ``attempts`` tries
    were made. Attempts are counted durably: a crash does not give a step fresh tries.
    A wait longer than the worker's ``inline_wait`` is a durable timer: the run's lease is
    released and any worker picks the run up when it is due.
    """

    attempts: int = attrs.field(default=3, validator=_at_least_one)
    initial_delay: float = attrs.field(default=0.1, validator=_non_negative)
    multiplier: float = attrs.field(default=2.0, validator=_positive)
    max_delay: float = attrs.field(default=60.0, validator=_non_negative)
    #: Fraction of each delay that is random (0: none, 1: anywhere in [0, delay]).
    jitter: float = attrs.field(default=0.5)
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    give_up_on: tuple[type[BaseException], ...] = ()

    @jitter.validator
    def _check_jitter(self, _: object, value: float) -> None:
        if not 0 <= value <= 1:
            raise ValueError(f"jitter must be between 0 and 1, not {value!r}")

    def retries(self, error: BaseException) -> bool:
        """Whether ``error`` may be retried at all (attempts aside)."""
        return isinstance(error, self.retry_on) and not isinstance(error, self.give_up_on)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt`` (from 1)."""
        base = min(self.max_delay, self.initial_delay * self.multiplier ** (attempt - 1))
        draw = (rng or random).random()
        return base * (1 - self.jitter * draw)


#: Try once; a failure is final.
NO_RETRY = RetryPolicy(attempts=1)


@attrs.frozen
class Queue:
    """Where runs wait for workers, and the limits on how they leave it.

    * ``concurrency``: at most this many runs of the queue run at once across every
      worker (``None``: no global limit).
    * ``per_key``: at most this many runs with the same ``concurrency_key`` (say, one
      customer) run at once across every worker.
    * ``rate``: at most ``rate[0]`` runs start per ``rate[1]`` seconds across every worker
      (only first starts count; a resumed run is not a new start).
    * ``priorities``: how many priority levels the queue has; ``start_run(priority=p)``
      takes ``0 <= p < priorities`` and a higher level is claimed first.

    Limits are enforced with leases in the store (slots a worker claims and renews), so a
    worker that dies frees its slots when their leases expire.
    """

    name: str = attrs.field(default="default")
    concurrency: int | None = attrs.field(default=None)
    per_key: int | None = attrs.field(default=None)
    rate: tuple[int, float] | None = attrs.field(default=None)
    priorities: int = attrs.field(default=1, validator=_at_least_one)

    @name.validator
    def _check_name(self, _: object, value: str) -> None:
        if not value or "/" in value:
            raise ValueError(f"a queue name must be non-empty and contain no '/': {value!r}")

    @concurrency.validator
    def _check_concurrency(self, _: object, value: int | None) -> None:
        if value is not None and value < 1:
            raise ValueError(f"concurrency must be >= 1 or None, not {value!r}")

    @per_key.validator
    def _check_per_key(self, _: object, value: int | None) -> None:
        if value is not None and value < 1:
            raise ValueError(f"per_key must be >= 1 or None, not {value!r}")

    @rate.validator
    def _check_rate(self, _: object, value: tuple[int, float] | None) -> None:
        if value is not None and (value[0] < 1 or not value[1] > 0):
            raise ValueError(f"rate must be (starts >= 1, period > 0), not {value!r}")


DEFAULT_QUEUE = Queue()
