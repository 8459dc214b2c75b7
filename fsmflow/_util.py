"""Small internal helpers shared by every layer."""

from __future__ import annotations

from typing import Any, NoReturn


class NoPublicConstructor(type):
    """Metaclass for classes that only a factory may create.

    Calling the class raises :class:`TypeError` naming the factory to use; the factory calls
    ``cls._create(...)``. This keeps invariants that the factory establishes (a validated
    spec, a checked initial state) impossible to bypass by accident.
    """

    _factory_hint: str = "its factory"

    def __call__(cls, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError(
            f"{cls.__module__}.{cls.__qualname__} has no public constructor; "
            f"create it with {cls._factory_hint}"
        )

    def _create(cls, *args: Any, **kwargs: Any) -> Any:
        """Create an instance; only the class's documented factory calls this. The result
        is ``Any`` so that the factory can state the parametrised type it returns."""
        return super().__call__(*args, **kwargs)


#: How many characters of a value's repr an error message quotes.
REPR_LIMIT = 200


def bounded_repr(value: object, limit: int = REPR_LIMIT) -> str:
    """``repr(value)``, cut to ``limit`` characters: error messages and log lines quote
    values (a failing action, a stray event) without carrying a multi-KB payload each.
    A repr that itself raises is reported rather than propagated."""
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not hide the error being reported
        return f"<{type(value).__qualname__} (repr failed: {type(exc).__name__})>"
    return bounded(text, limit)


def bounded(text: str, limit: int = REPR_LIMIT) -> str:
    """``text``, or its first ``limit`` characters and how many more there were."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"
