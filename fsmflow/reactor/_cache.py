"""The input cache a graph reads, the dirty flags that decide when to fire, and the codec
that turns a source's boundaries into bytes and back as the source's registered type."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar, cast

from ..store import Codec, DecodeError
from ._types import Source, runtime_class

T = TypeVar("T")


class BoundaryCodec:
    """Encodes and decodes boundaries by source: a source's bytes always decode into the
    type its :class:`Source` declares, never into a type named by the bytes."""

    def __init__(self, codec: Codec, sources: Mapping[str, Source[Any]]) -> None:
        self.codec = codec
        self.sources = sources
        for source in sources.values():
            if not codec.is_registered(source.type):
                codec.register(source.type)

    def encode(self, source: str, value: object) -> bytes:
        return self.codec.encode(value, self.sources[source].type)

    def decode(self, source: str, data: bytes, key: str) -> object:
        """Decode ``data`` (read from ``key``) as ``source``'s type; raises
        :class:`DecodeError` naming ``key`` for bad bytes or an unknown source."""
        registered = self.sources.get(source)
        if registered is None:
            raise DecodeError(
                key,
                "a boundary",
                f"unknown source {source!r} (sources: {', '.join(sorted(self.sources))})",
            )
        value: object = self.codec.decode(data, registered.type, key)
        return value


class InputCache:
    """An immutable snapshot of a reactor's inputs: the newest boundary of each source.

    A graph reads a boundary through its :class:`Source`, so it comes back as the
    source's type: ``cache[QUOTES]`` is a ``Quote`` (``KeyError`` while the source has
    delivered nothing), ``cache.get(QUOTES)`` a ``Quote | None``. Reading a source that is
    not one of the reactor's, or naming it with another type, raises. :meth:`updated`
    says whether a source's boundary is new in this firing.

    Build one by hand to test a graph: ``InputCache.of({QUOTES: quote})``.
    """

    __slots__ = ("_values", "_sources", "_updated")

    def __init__(
        self,
        values: Mapping[str, object],
        sources: Mapping[str, Source[Any]],
        updated: frozenset[str] = frozenset(),
    ) -> None:
        self._values = values
        self._sources = sources
        self._updated = updated

    @classmethod
    def of(cls, boundaries: Mapping[Source[Any], object]) -> InputCache:
        """A cache holding ``boundaries``, every one of them marked as updated.

        Raises :class:`TypeError` when a boundary is not of its source's type.
        """
        sources = {source.name: source for source in boundaries}
        values = {source.name: check_boundary(source, v) for source, v in boundaries.items()}
        return cls(values, sources, frozenset(values))

    def _check(self, source: Source[Any]) -> None:
        registered = self._sources.get(source.name)
        if registered is None:
            raise KeyError(
                f"{source.name!r} is not a source of this reactor "
                f"(sources: {', '.join(sorted(self._sources)) or 'none'})"
            )
        if registered != source:
            raise TypeError(
                f"source {source.name!r} is registered with type {registered.type!r}, "
                f"not {source.type!r}"
            )

    def get(self, source: Source[T]) -> T | None:
        """The newest boundary of ``source``, or ``None`` if it has delivered none."""
        self._check(source)
        return cast("T | None", self._values.get(source.name))

    def __getitem__(self, source: Source[T]) -> T:
        self._check(source)
        try:
            return cast(T, self._values[source.name])
        except KeyError:
            raise KeyError(f"source {source.name!r} has delivered no boundary yet") from None

    def __contains__(self, source: Source[Any]) -> bool:
        return source.name in self._values

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, InputCache):
            return NotImplemented
        return self._values == other._values and self._updated == other._updated

    __hash__ = None  # type: ignore[assignment]

    def as_dict(self) -> dict[str, object]:
        """Source name -> boundary, for logging and inspection."""
        return dict(self._values)

    def updated(self, source: Source[Any]) -> bool:
        """Whether ``source``'s boundary arrived since the previous firing."""
        return source.name in self._updated

    def __repr__(self) -> str:
        fresh = ", ".join(sorted(self._updated))
        return f"<InputCache {dict(self._values)!r} updated: {fresh or '-'}>"


def check_boundary(source: Source[T], value: object) -> T:
    """``value`` if it is of ``source``'s type (as far as ``isinstance`` can tell)."""
    cls = runtime_class(source)
    if cls is not None and not isinstance(value, cls):
        raise TypeError(
            f"boundary for source {source.name!r} must be a {cls.__name__}, "
            f"not {type(value).__name__}"
        )
    return cast(T, value)


class DirtyFlags:
    """One flag per source: set when the source delivers, cleared when a firing uses it.

    Seeded with every expected source (all clear), so :meth:`all_set` stays false until
    each of them has delivered, not merely the ones seen so far. With no source at all,
    :meth:`all_set` is false. Every operation costs the same however many sources there
    are (:attr:`dirty`: as many as are set).
    """

    __slots__ = ("_sources", "_set")

    def __init__(self, sources: Iterable[str] = ()) -> None:
        self._sources = set(sources)
        #: The sources whose flag is set (a dict as an ordered set).
        self._set: dict[str, None] = {}

    def set(self, source: str) -> None:
        """Mark ``source`` dirty (adding a flag for a source not seeded)."""
        if source not in self._set:
            self._set[source] = None
            self._sources.add(source)

    def any_set(self) -> bool:
        return bool(self._set)

    def all_set(self) -> bool:
        return 0 < len(self._sources) == len(self._set)

    def clear(self, sources: Iterable[str]) -> None:
        """Clear the flags of ``sources``."""
        for source in sources:
            self._set.pop(source, None)

    def clear_all(self) -> None:
        self._set.clear()

    @property
    def dirty(self) -> frozenset[str]:
        """The sources whose flag is set."""
        return frozenset(self._set) if self._set else frozenset()
