"""Variants: the keys that transitions are registered under.

A state or event *type* is either an :class:`enum.Enum` (each member is a variant) or a
union of classes, usually frozen attrs classes (each class is a variant, and its
instances may carry data, like ``Failed(reason)``). The *variant of a value* is the member
itself for an enum and ``type(value)`` for a class instance, so one handler serves every
``Failed(...)``.
"""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Callable
from typing import Any

import attrs

from .._util import bounded_repr

#: A variant: an enum member or a class.
Variant = Any


@attrs.frozen
class VariantSet:
    """The declared variants of one state or event type, in declaration order."""

    #: What the user declared, for messages (``"DoorState"`` or ``"Running | Failed"``).
    label: str
    #: The variants themselves: enum members or classes.
    variants: tuple[Variant, ...]
    #: True when the variants are enum members (the value is its own variant).
    is_enum: bool
    #: Identities of the variants: membership by identity, without hashing user values
    #: (which may be unhashable, or equal to a variant without being one).
    _identities: frozenset[int] = attrs.field(init=False, repr=False, eq=False)

    @_identities.default
    def _identities_default(self) -> frozenset[int]:
        return frozenset(map(id, self.variants))

    def key_function(self) -> Callable[[Any], Variant]:
        """The cheapest function mapping a value to its variant."""
        if self.is_enum:
            return _identity
        return type

    def variant_of(self, value: object) -> Variant:
        return value if self.is_enum else type(value)

    def contains(self, variant: object) -> bool:
        """True when ``variant`` is one of the declared variants (by identity)."""
        return id(variant) in self._identities


def _identity(value: object) -> object:
    return value


def variant_name(variant: Variant) -> str:
    """The name used in messages and diagrams: the member name or the class name."""
    if isinstance(variant, enum.Enum):
        return variant.name
    if isinstance(variant, type):
        return variant.__name__
    return bounded_repr(variant)


def parse_declared_type(declared: object, role: str) -> VariantSet:
    """Turn what the user declared as a state/event type into a :class:`VariantSet`.

    Accepts an ``Enum`` subclass, a single class, a union of classes (``A | B`` or
    ``typing.Union[A, B]``) or a tuple of classes. Raises :class:`TypeError` naming the
    problem otherwise, because a spec whose variants cannot be listed cannot be validated.
    """
    if isinstance(declared, type) and issubclass(declared, enum.Enum):
        members = tuple(declared)
        if not members:
            raise TypeError(f"{role} type {declared.__name__} is an enum with no members")
        return VariantSet(declared.__name__, members, is_enum=True)
    if isinstance(declared, types.UnionType) or typing.get_origin(declared) is typing.Union:
        parts: tuple[object, ...] = typing.get_args(declared)
    elif isinstance(declared, tuple):
        parts = declared
    elif isinstance(declared, type):
        parts = (declared,)
    else:
        raise TypeError(
            f"{role} type must be an Enum, a class, a union of classes or a tuple of "
            f"classes, not {declared!r}"
        )
    classes: list[type] = []
    seen: set[type] = set()
    for part in parts:
        if not isinstance(part, type):
            raise TypeError(f"{role} type {declared!r}: {part!r} is not a class")
        if issubclass(part, enum.Enum):
            raise TypeError(
                f"{role} type {declared!r} mixes the enum {part.__name__} with classes; "
                "use an Enum alone or a union of classes"
            )
        if part in seen:
            raise TypeError(f"{role} type {declared!r} lists {part.__name__} twice")
        seen.add(part)
        classes.append(part)
    if not classes:
        raise TypeError(f"{role} type {declared!r} declares no variants")
    return VariantSet(" | ".join(c.__name__ for c in classes), tuple(classes), is_enum=False)
