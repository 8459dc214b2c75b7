"""What ``dispatch_state`` answers: continue, trigger an event, or terminate."""

from __future__ import annotations

from typing import Generic, TypeAlias, TypeVar

import attrs

E_co = TypeVar("E_co", covariant=True)


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
