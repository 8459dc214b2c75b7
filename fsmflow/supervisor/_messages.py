"""The words of the loop's failure messages: labels of states and events, exceptions
described down to their root cause, bounded quotes of the failing action."""

from __future__ import annotations

import enum

from .._util import bounded, bounded_repr
from ..fsm import variant_name


def label(value: object) -> str:
    """The variant name of a state or event value (a plain string is shown as is)."""
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, str):
        return value
    return variant_name(type(value))


def shown(value: object) -> str:
    """A state or event as a message shows it: an enum member by name, any other value
    by its (bounded) repr, so the data it carries shows too."""
    if isinstance(value, enum.Enum):
        return value.name
    return bounded_repr(value)


def describe(exc: BaseException) -> str:
    """``Type: text`` of ``exc``, followed by its root cause when it has one (the end of
    its ``__cause__`` chain): a ``HandlerError`` is described with the exception the
    handler raised. Bounded in length."""
    text = _one(exc)
    root = root_cause(exc)
    if root is not exc:
        text += f" (caused by {_one(root)})"
    return text


def root_cause(exc: BaseException) -> BaseException:
    """The last exception of ``exc``'s ``__cause__`` chain (``exc`` itself if none)."""
    seen = {id(exc)}
    while exc.__cause__ is not None and id(exc.__cause__) not in seen:
        exc = exc.__cause__
        seen.add(id(exc))
    return exc


def _one(exc: BaseException) -> str:
    return bounded(f"{type(exc).__name__}: {exc}")


def dispatch_failure(state: object, exc: BaseException) -> str:
    return f"dispatch_state failed in state {label(state)}: {describe(exc)}"


def action_failure(action: object, state: object, exc: BaseException) -> str:
    return f"action {bounded_repr(action)} failed in state {label(state)}: {describe(exc)}"
