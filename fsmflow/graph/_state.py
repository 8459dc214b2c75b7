"""Typed state and the reducers that merge deltas into it.

A run's state is an attrs class or a ``TypedDict``; nodes never mutate it but return a
*delta*, a mapping of keys to updates. Each key has a reducer deciding how an update
combines with the current value: :data:`replace` (the default), :data:`append`,
:data:`add`, :data:`merge` (mappings), or your own via :func:`reducer`. Applying a delta
builds a new state value, so the state a node was given is never changed under it.
"""

from __future__ import annotations

import copy
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, TypeAlias, TypeVar

import attrs

from ._errors import MergeConflict, StateUpdateError

S = TypeVar("S")

#: A node's update: key -> update, combined with the current value by the key's reducer.
Delta: TypeAlias = Mapping[str, Any]


@attrs.frozen(slots=True)
class Reducer:
    """How an update combines with a key's current value: ``fn(current, update)``.

    ``update_type`` is the type of an update when it differs from the key's type (it is
    used to decode deltas stored in checkpoints); ``None`` means the key's own type.
    """

    name: str
    fn: Callable[[Any, Any], Any] = attrs.field(eq=False)
    update_type: Any = None
    #: Whether branches of a parallel node may write the key concurrently; for
    #: :data:`replace` they must agree on the value.
    combines: bool = True


def _replace(current: Any, update: Any) -> Any:
    return update


def _append(current: Any, update: Any) -> Any:
    return [*current, *update]


def _add(current: Any, update: Any) -> Any:
    return current + update


def _merge(current: Any, update: Any) -> Any:
    return {**current, **update}


#: The update replaces the value (the default for every key).
replace = Reducer("replace", _replace, combines=False)
#: The update (a sequence) is appended to the list.
append = Reducer("append", _append)
#: The update is added to the value (numbers, or anything with ``+``).
add = Reducer("add", _add)
#: The update (a mapping) is merged into the mapping, its keys winning.
merge = Reducer("merge", _merge)


def reducer(
    fn: Callable[[Any, Any], Any], *, name: str | None = None, update_type: Any = None
) -> Reducer:
    """A custom reducer ``fn(current, update) -> new``; it must not mutate ``current``."""
    return Reducer(name or str(getattr(fn, "__name__", "custom")), fn, update_type)


class StateSchema(Generic[S]):
    """What the executor knows about a state type: its keys, their types, their reducers."""

    def __init__(self, state_type: type[S], reducers: Mapping[str, Reducer]) -> None:
        self.state_type = state_type
        if attrs.has(state_type):
            attrs.resolve_types(state_type)
            self.is_attrs = True
            self.types: dict[str, Any] = {f.name: f.type for f in attrs.fields(state_type)}
        elif typing.is_typeddict(state_type):
            self.is_attrs = False
            self.types = typing.get_type_hints(state_type)
        else:
            raise TypeError(
                f"graph state must be an attrs class or a TypedDict, not {state_type!r}"
            )
        unknown = sorted(set(reducers) - set(self.types))
        if unknown:
            raise TypeError(
                f"reducers for unknown key(s) {', '.join(map(repr, unknown))} of "
                f"{state_type.__name__}"
            )
        self.reducers: dict[str, Reducer] = dict(reducers)

    def reducer_for(self, key: str) -> Reducer:
        return self.reducers.get(key, replace)

    def update_type(self, key: str) -> Any:
        """The type of an update of ``key`` (for decoding stored deltas)."""
        found = self.reducers.get(key)
        if found is not None and found.update_type is not None:
            return found.update_type
        return self.types[key]

    def get(self, state: S, key: str) -> Any:
        if self.is_attrs:
            return getattr(state, key)
        return state[key]  # type: ignore[index]

    def copy(self, state: S) -> S:
        """An independent copy, for a parallel branch to read without seeing others."""
        return copy.deepcopy(state)

    def apply(self, state: S, delta: Delta, node: str) -> S:
        """The state after ``delta``; raises :class:`StateUpdateError` naming ``node``."""
        if not delta:
            return state
        types = self.types
        reducers = self.reducers
        changes: dict[str, Any] = {}
        for key, update in delta.items():
            if key not in types:
                raise StateUpdateError(node, f"{key!r} is not a key of {self.state_type.__name__}")
            found = reducers.get(key)
            if found is None:
                changes[key] = update
                continue
            current = changes[key] if key in changes else self.get(state, key)
            try:
                changes[key] = found.fn(current, update)
            except Exception as exc:
                raise StateUpdateError(
                    node, f"reducer {found.name!r} of {key!r} failed: {type(exc).__name__}: {exc}"
                ) from exc
        if self.is_attrs:
            try:
                return attrs.evolve(state, **changes)  # type: ignore[misc]
            except Exception as exc:
                raise StateUpdateError(node, f"{type(exc).__name__}: {exc}") from exc
        new: dict[str, Any] = dict(state)  # type: ignore[call-overload]
        new.update(changes)
        return new  # type: ignore[return-value]

    def check_parallel(self, node: str, deltas: Sequence[tuple[str, Delta]]) -> None:
        """Raise :class:`MergeConflict` when two branches set a non-combining key to
        different values."""
        seen: dict[str, tuple[str, Any]] = {}
        for branch, delta in deltas:
            for key, update in delta.items():
                if self.reducer_for(key).combines:
                    continue
                if key in seen and seen[key][1] != update:
                    raise MergeConflict(node, key, [seen[key][0], branch])
                seen.setdefault(key, (branch, update))

    def keys(self) -> Iterable[str]:
        return self.types.keys()
