"""What a handler returns, and what an action is."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, Literal, NoReturn, Protocol, TypeAlias, TypeVar

import attrs

S_co = TypeVar("S_co", covariant=True)
A_co = TypeVar("A_co", covariant=True)
C_contra = TypeVar("C_contra", contravariant=True)
_S = TypeVar("_S")
_A = TypeVar("_A")


class _Stay(enum.Enum):
    STAY = "stay"

    def __repr__(self) -> str:
        return "STAY"


#: The ``next_state`` of a transition that keeps the current state without leaving it.
STAY: Literal[_Stay.STAY] = _Stay.STAY


@attrs.frozen(slots=True)
class Transition(Generic[S_co, A_co]):
    """The result of a handler: the next state and the actions the caller must run.

    The engine never runs actions itself; :meth:`StateMachine.handle` returns them, in the
    order exit hooks' actions, entry hooks' actions, then these.

    ``next_state`` is :data:`STAY` for an *internal* transition (see :func:`stay`): the
    state value is kept and no exit or entry hook runs. Returning the current state (or
    any state of the same variant) with :func:`goto` is a *self-transition*: the state is
    left and re-entered, so its exit and entry hooks run.
    """

    next_state: S_co | Literal[_Stay.STAY]
    actions: tuple[A_co, ...] = ()


# goto() and stay() are called once per transition, and a frozen attrs class's __init__
# sets each field through an indirection that costs more than the rest of the call: they
# fill the two slots directly, which makes the same value (equal to Transition(s, a)).
_new_transition = object.__new__
_SLOTS: dict[str, Any] = {name: getattr(Transition, name) for name in ("next_state", "actions")}
_set_next_state: Callable[[object, object], None] = _SLOTS["next_state"].__set__
_set_actions: Callable[[object, object], None] = _SLOTS["actions"].__set__


def goto(next_state: _S, *actions: _A) -> Transition[_S, _A]:
    """Go to ``next_state`` (running exit/entry hooks) and then run ``actions``."""
    transition: Transition[_S, _A] = _new_transition(Transition)
    _set_next_state(transition, next_state)
    _set_actions(transition, actions)
    return transition


def stay(*actions: _A) -> Transition[NoReturn, _A]:
    """Keep the current state (no exit/entry hooks) and run ``actions``."""
    transition: Transition[NoReturn, _A] = _new_transition(Transition)
    _set_next_state(transition, STAY)
    _set_actions(transition, actions)
    return transition


class FsmAction(Protocol[C_contra]):
    """An effect a transition asks for, run by whoever drives the machine.

    ``execute`` may raise; the supervisor loop turns that error into a failure event.
    """

    async def execute(self, ctx: C_contra) -> None: ...


#: What a handler may return: a transition, or an awaitable of one (async handlers).
TransitionResult: TypeAlias = Transition[_S, _A] | Awaitable[Transition[_S, _A]]

#: What an entry or exit hook may return: actions or nothing, possibly awaited.
HookResult: TypeAlias = Sequence[_A] | Awaitable[Sequence[_A] | None] | None
