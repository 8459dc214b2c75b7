"""What ``dispatch_state`` answers: continue, trigger an event, or terminate."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeAlias, TypeVar

import attrs

E_co = TypeVar("E_co", covariant=True)
_E = TypeVar("_E")


@attrs.frozen(slots=True)
class Continue:
    """Nothing to do now: the loop yields to the scheduler and asks again."""


@attrs.frozen(slots=True)
class Trigger(Generic[E_co]):
    """Feed ``event`` to the FSM; its actions run before the loop asks again."""

    event: E_co


@attrs.frozen(slots=True)
class Terminate:
    """Leave the loop; the completion event is written and ``run`` returns."""


#: The union of directives ``dispatch_state`` may return.
EventLoopDirective: TypeAlias = Continue | Trigger[E_co] | Terminate

#: Shared instances; directives are immutable values, so one of each is enough.
CONTINUE = Continue()
TERMINATE = Terminate()

_new_trigger = object.__new__
_set_event: Callable[[object, object], None] = vars(Trigger)["event"].__set__


def trigger(event: _E) -> Trigger[_E]:
    """``Trigger(event)``, made by filling its slot directly: a frozen attrs class's
    ``__init__`` costs more than the rest of a handled external event's bookkeeping."""
    made: Trigger[_E] = _new_trigger(Trigger)
    _set_event(made, event)
    return made
