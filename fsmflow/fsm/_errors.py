"""The typed errors of the FSM engine.

Every error names what a reader needs to fix it: the variants, the event and the handler
involved. Build-time problems are collected and reported together in one
:class:`InvalidDefinitionError`, so a user fixes a spec in one pass rather than one error
at a time.
"""

from __future__ import annotations

from collections.abc import Sequence

from .._util import bounded, bounded_repr


class FsmError(Exception):
    """Base class of every error raised by :mod:`fsmflow.fsm`."""


class InvalidDefinitionError(FsmError):
    """A spec failed validation in :meth:`FsmBuilder.build` or a machine's initial state is
    not a declared variant.

    ``problems`` lists every problem found, each a complete sentence.
    """

    def __init__(self, spec_name: str, problems: Sequence[str]) -> None:
        self.spec_name = spec_name
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid FSM definition {spec_name!r}:\n{lines}")


class UnhandledEventError(FsmError):
    """A strict machine received an event that no handler covers in its current state."""

    def __init__(self, spec_name: str, state: str, event: str) -> None:
        self.spec_name = spec_name
        self.state = state
        self.event = event
        super().__init__(
            f"{spec_name}: no handler for event {event} in state {state} (strict mode); "
            f"register one with .when({state}).on({event}, ...) or .from_any().on({event}, ...)"
        )


class UndeclaredTargetError(FsmError):
    """A handler returned a state outside the targets it declared with ``to=``, or a value
    that is not a state of the declared type at all (``declared`` is then false: a raw
    ``"a"`` or ``1`` is not a member of a ``str`` or ``int`` enum, even if equal to one)."""

    def __init__(
        self,
        spec_name: str,
        handler: str,
        state: str,
        event: str,
        target: str,
        allowed: str,
        *,
        declared: bool = True,
    ) -> None:
        self.spec_name = spec_name
        self.handler = handler
        self.state = state
        self.event = event
        self.target = target
        self.declared = declared
        where = f"{spec_name}: handler {handler} for ({state}, {event})"
        if declared:
            message = (
                f"{where} returned a {target} state, but it may only go to {allowed}; "
                f"add {target} to its to= or fix the handler"
            )
        else:
            message = (
                f"{where} returned {target}, which is not a value of the declared state "
                f"type {allowed}; return one of its variants"
            )
        super().__init__(message)


class HandlerError(FsmError):
    """A handler or hook raised; the original exception is ``__cause__``."""

    def __init__(self, spec_name: str, handler: str, state: str, event: str) -> None:
        self.spec_name = spec_name
        self.handler = handler
        self.state = state
        self.event = event
        super().__init__(f"{spec_name}: handler {handler} failed in state {state} on {event}")


class ActionError(FsmError):
    """An action raised while :meth:`StateMachine.execute_actions` ran it.

    ``index`` is the action's position in the sequence; the actions after it were not run.
    The original exception is ``__cause__``.
    """

    def __init__(self, action: object, index: int, cause: BaseException) -> None:
        self.action = action
        self.index = index
        super().__init__(
            f"action #{index} {bounded_repr(action)} failed: "
            f"{bounded(f'{type(cause).__name__}: {cause}')}"
        )
