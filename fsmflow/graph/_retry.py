"""Per-node retry policies: how many attempts, which errors, and how long to wait.

A :class:`RetryPolicy` given to a node (``builder.node(name, fn, retry=...)``) re-runs the
node's function when it raises an error the policy accepts, waiting a capped exponential
backoff with jitter between attempts. The waits run on the event loop's clock (trio's
``MockClock`` drives them in tests) and are cancelled with the run. Interrupts and
cancellation are never retried.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import attrs


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
        raise ValueError(f"RetryPolicy.{attribute.name} must be a finite number >= 0, not {value}")


def _retry_on_converter(
    value: type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool],
) -> tuple[type[BaseException], ...] | Callable[[BaseException], bool]:
    if isinstance(value, type):
        return (value,)
    return value


@attrs.frozen(slots=True)
class RetryPolicy:
    """Retry a node's function on the errors ``retry_on`` accepts.

    ``max_attempts`` counts the first try (``3``: two retries). Before retry ``n`` (1 for
    the first) the node waits ``min(max_interval, initial_interval * backoff_factor **
    (n - 1))`` seconds, computed so that it can never overflow however many attempts are
    allowed, plus up to a quarter of it at random when ``jitter`` is on. ``retry_on`` is an
    exception class, a tuple of them, or a predicate on the error.
    """

    max_attempts: int = attrs.field(default=3)
    initial_interval: float = attrs.field(default=0.5, validator=_positive)
    backoff_factor: float = attrs.field(default=2.0, validator=_positive)
    max_interval: float = attrs.field(default=60.0, validator=_positive)
    jitter: bool = True
    retry_on: tuple[type[BaseException], ...] | Callable[[BaseException], bool] = attrs.field(
        default=(Exception,), converter=_retry_on_converter
    )

    @max_attempts.validator
    def _check_attempts(self, attribute: attrs.Attribute[int], value: int) -> None:
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"RetryPolicy.max_attempts must be an int >= 1, not {value!r}")

    def accepts(self, error: BaseException) -> bool:
        """Whether ``error`` is one to retry."""
        if isinstance(self.retry_on, tuple):
            return isinstance(error, self.retry_on)
        return bool(self.retry_on(error))

    def delay(self, retry: int, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first)."""
        base = self.initial_interval
        if base == 0 or self.max_interval == 0:
            return 0.0
        if self.backoff_factor > 1:
            # Cap the exponent before exponentiating: past it the cap applies anyway.
            limit = math.log(self.max_interval / base, self.backoff_factor) + 1
            exponent = min(retry - 1, max(0.0, limit))
            delay = min(self.max_interval, base * self.backoff_factor**exponent)
        else:
            delay = min(self.max_interval, base * self.backoff_factor ** min(retry - 1, 64))
        if self.jitter:
            delay += delay * 0.25 * rng()
        return float(delay)
