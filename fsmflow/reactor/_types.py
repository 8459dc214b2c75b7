"""The values a reactor is configured with and reports: sources, criteria, strategies,
graph results, retry policy and dead letters."""

from __future__ import annotations

import enum
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar

import attrs

if TYPE_CHECKING:
    from ._cache import InputCache

T = TypeVar("T")
Out = TypeVar("Out")
Out_co = TypeVar("Out_co", covariant=True)


def _valid_source_name(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not value or "\n" in value or "/" in value:
        raise ValueError(f"a source name must be non-empty, without '/' or newlines: {value!r}")


@attrs.frozen
class Source(Generic[T]):
    """A named input of a reactor and the type of its boundaries.

    Declare one per input and use it everywhere the input is named: an accumulator feeds
    it, the graph reads it (``cache[QUOTES]`` is a ``Quote``), and the store encodes and
    decodes its boundaries as ``type``, which the reactor registers with its codec::

        QUOTES = Source("quotes", Quote)
    """

    name: str = attrs.field(validator=_valid_source_name)
    #: The boundary type: a class, or a type such as ``tuple[Trade, ...]``.
    type: type[T]


class Criteria(enum.Enum):
    """When a ``LATEST`` reactor fires (and when a ``SEQUENTIAL`` one starts firing)."""

    #: Fire as soon as any source has a new boundary.
    WHEN_ANY = "when_any"
    #: Fire once every expected source has a new boundary (``LATEST``), or once every
    #: source has delivered at least once (``SEQUENTIAL``).
    WHEN_ALL = "when_all"


class InputStrategy(enum.Enum):
    """What the reactor keeps between firings."""

    #: One slot per source, newest wins; a firing sees a snapshot of every slot. Memory
    #: is bounded by the number of sources.
    LATEST = "latest"
    #: Every boundary, in arrival order, one firing each; with a store, each is persisted
    #: when accepted and removed when its firing completes.
    SEQUENTIAL = "sequential"


@attrs.frozen
class Completed(Generic[Out_co]):
    """A firing that succeeded, with whatever the graph produced."""

    outputs: Out_co


@attrs.frozen
class GraphError:
    """A firing that failed; the reactor records it and carries on."""

    message: str


#: What a graph returns.
GraphResult: TypeAlias = Completed[Out] | GraphError

#: The computation a reactor fires: an async callable from a snapshot of the inputs to a
#: result. Raising is the same as returning ``GraphError``.
Graph: TypeAlias = Callable[["InputCache"], Awaitable[Completed[Out] | GraphError]]


def _finite_non_negative(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0 <= value < math.inf:  # also refuses NaN
        raise ValueError(f"{attribute.name} must be a finite number >= 0, not {value!r}")


def _finite_factor(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 1 <= value < math.inf:
        raise ValueError(f"{attribute.name} must be a finite number >= 1, not {value!r}")


@attrs.frozen
class RetryPolicy:
    """How a failed ``SEQUENTIAL`` firing is retried before it becomes a dead letter.

    The firing runs at most ``max_attempts`` times; before attempt ``n + 1`` the reactor
    waits ``initial_delay * factor ** (n - 1)`` seconds, capped at ``max_delay``, on the
    loop's clock (so ``MockClock`` drives it in tests). The same delays space out retries
    after the reactor's own failures (a store that refuses a write, say), for as long as
    they last. Every delay is finite and at most ``max_delay``, however many failures
    came before it: the cap is applied to the exponent before the power is computed.
    """

    max_attempts: int = attrs.field(default=3, validator=attrs.validators.ge(1))
    initial_delay: float = attrs.field(default=0.1, validator=_finite_non_negative)
    max_delay: float = attrs.field(default=10.0, validator=_finite_non_negative)
    factor: float = attrs.field(default=2.0, validator=_finite_factor)
    #: The exponent from which ``initial_delay * factor ** exponent`` reaches
    #: ``max_delay``: larger exponents are never computed.
    _last_exponent: int = attrs.field(init=False, repr=False, eq=False)

    @_last_exponent.default
    def _exponent_at_the_cap(self) -> int:
        numbers = (self.initial_delay, self.max_delay, self.factor)
        if not all(0 < n < math.inf for n in numbers):
            return 0  # zero delays; or invalid ones, which the validators refuse next
        if self.factor == 1 or self.max_delay <= self.initial_delay:
            return 0
        span = math.log(self.max_delay) - math.log(self.initial_delay)
        return math.ceil(span / math.log(self.factor))

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failure in a row (1 for the first)."""
        exponent = min(max(failures - 1, 0), self._last_exponent)
        try:
            grown = self.initial_delay * self.factor**exponent
        except OverflowError:  # the power alone overflows, a tiny initial_delay does not
            grown = math.exp(math.log(self.initial_delay) + exponent * math.log(self.factor))
        return float(min(grown, self.max_delay))


@attrs.frozen
class DeadLetter:
    """A ``SEQUENTIAL`` boundary whose firing kept failing, kept until replayed.

    ``id`` is stable (its position in the persisted dead-letter log); pass it to
    ``ReactorHandle.replay`` to queue the boundary again.
    """

    id: int
    source: str
    boundary: object
    #: The last failure.
    error: str
    attempts: int


def runtime_class(source: Source[Any]) -> type | None:
    """The class ``isinstance`` can check a boundary of ``source`` against; ``None`` for
    types that are not plain classes (``tuple[Trade, ...]``)."""
    tp: object = source.type
    return tp if isinstance(tp, type) else None
