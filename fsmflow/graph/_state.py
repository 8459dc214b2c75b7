"""Typed state and the reducers that merge deltas into it.

A run's state is an attrs class or a ``TypedDict``; nodes never mutate it but return a
*delta*, a mapping of keys to updates. Each key has a reducer deciding how an update
combines with the current value: :data:`replace` (the default), :data:`append`,
:data:`add`, :data:`merge` (mappings), or your own via :func:`reducer`.

Cost grows with the update, not with the state: a run owns the lists, dicts and
``TypedDict`` states it built itself, and extends them in place between steps instead of
copying them. A value the run did not build (the initial state you passed, an update a
node returned) is copied the first time it changes, and everything the run hands out
(results, failed and cancelled states, the ``values`` stream) is given up so later steps
copy again. What a caller may rely on: the state a node is given does not change while the
node runs, and a value handed out in an event or a result never changes afterwards. A node
that keeps a reference to a part of its state *after it returned* may see that part grow;
copy what you keep.
"""

from __future__ import annotations

import copy
import inspect
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, TypeAlias, TypeVar

import attrs

from ._errors import MergeConflict, StateUpdateError

S = TypeVar("S")

#: A node's update: key -> update, combined with the current value by the key's reducer.
Delta: TypeAlias = Mapping[str, Any]


def _no_inplace(current: Any, update: Any) -> Any:  # pragma: no cover - never called
    raise AssertionError("reducer has no in-place form")


@attrs.frozen(slots=True)
class Reducer:
    """How an update combines with a key's current value: ``fn(current, update)``.

    ``update_type`` is the type of an update when it differs from the key's type (it is
    used to decode deltas stored in checkpoints); ``None`` means the key's own type.
    ``empty`` builds the value a key absent from a partial ``TypedDict`` state starts
    from; ``None`` derives it from the key's type (``list`` -> ``[]``, ``int`` -> ``0``).
    """

    name: str
    fn: Callable[[Any, Any], Any] = attrs.field(eq=False)
    update_type: Any = None
    #: Whether branches of a parallel node may write the key concurrently; for
    #: :data:`replace` they must agree on the value.
    combines: bool = True
    empty: Callable[[], Any] | None = attrs.field(default=None, eq=False)
    #: ``fn`` returns a value it built itself (never ``current`` or ``update``), which the
    #: run may then change in place with ``inplace``.
    fresh: bool = False
    #: The in-place form of ``fn`` for a value the run owns: a list or dict changed and
    #: returned. ``None``: the reducer always builds a new value.
    inplace: Callable[[Any, Any], Any] | None = attrs.field(default=None, eq=False)


def _replace(current: Any, update: Any) -> Any:
    return update


def _append(current: Any, update: Any) -> Any:
    return [*current, *update]


def _append_inplace(current: Any, update: Any) -> Any:
    current.extend(update)
    return current


def _add(current: Any, update: Any) -> Any:
    return current + update


def _merge(current: Any, update: Any) -> Any:
    return {**current, **update}


def _merge_inplace(current: Any, update: Any) -> Any:
    current.update(update)
    return current


#: The update replaces the value (the default for every key).
replace = Reducer("replace", _replace, combines=False)
#: The update (a sequence) is appended to the list.
append = Reducer("append", _append, empty=list, fresh=True, inplace=_append_inplace)
#: The update is added to the value (numbers, or anything with ``+``).
add = Reducer("add", _add)
#: The update (a mapping) is merged into the mapping, its keys winning.
merge = Reducer("merge", _merge, empty=dict, fresh=True, inplace=_merge_inplace)


def _takes_two_arguments(fn: Callable[..., Any]) -> str | None:
    """``None`` when ``fn(current, update)`` can be called, else why not."""
    if not callable(fn):
        return f"{fn!r} is not callable"
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # no signature to check (some builtins)
        return None
    try:
        signature.bind(None, None)
    except TypeError:
        return f"it cannot be called as fn(current, update): its signature is {signature}"
    return None


def reducer(
    fn: Callable[[Any, Any], Any],
    *,
    name: str | None = None,
    update_type: Any = None,
    empty: Callable[[], Any] | None = None,
) -> Reducer:
    """A custom reducer ``fn(current, update) -> new``; it must not mutate ``current``.

    ``empty()`` is the value a key absent from a partial state starts from (default:
    derived from the key's type). A ``fn`` that cannot take two arguments is reported
    when the graph is built.
    """
    return Reducer(name or str(getattr(fn, "__name__", "custom")), fn, update_type, empty=empty)


_EMPTY_BY_ORIGIN: dict[Any, Callable[[], Any]] = {
    list: list,
    dict: dict,
    set: set,
    tuple: tuple,
    int: int,
    float: float,
    str: str,
    frozenset: frozenset,
}


def _empty_for(reducer_: Reducer, key_type: Any) -> Callable[[], Any] | None:
    if reducer_.empty is not None:
        return reducer_.empty
    origin = typing.get_origin(key_type) or key_type
    if origin in (typing.Required, typing.NotRequired):
        (inner,) = typing.get_args(key_type)
        origin = typing.get_origin(inner) or inner
    for base, factory in _EMPTY_BY_ORIGIN.items():
        if isinstance(origin, type) and issubclass(origin, base):
            return factory
    return None


@attrs.define(slots=True)
class Ownership:
    """Which values of a run's state the run built itself and may change in place."""

    #: Keys whose current value the run built (a list, dict...).
    keys: set[str] = attrs.field(factory=set)
    #: Whether the run built the ``TypedDict`` state itself.
    top: bool = False

    def release(self) -> None:
        """Give everything up: the state is being handed out."""
        self.keys.clear()
        self.top = False


#: What undoes one in-place change: ``(kind, target, data)``.
Undo: TypeAlias = tuple[str, Any, Any]
_MISSING: Any = object()


def rollback(undo: list[Undo]) -> None:
    """Undo in-place changes recorded by :meth:`StateSchema.apply`, newest first."""
    for kind, target, data in reversed(undo):
        if kind == "list":
            del target[data:]
        elif kind == "dict":
            for key, old in data.items():
                if old is _MISSING:
                    target.pop(key, None)
                else:
                    target[key] = old
        else:  # "key": a top-level key of a TypedDict state
            key, old = data
            if old is _MISSING:
                target.pop(key, None)
            else:
                target[key] = old
    undo.clear()


class StateSchema(Generic[S]):
    """What the executor knows about a state type: its keys, their types, their reducers.

    Problems with the reducers (unknown keys, functions that cannot take two arguments)
    are listed by :meth:`problems`, which the builder reports when the graph is built.
    """

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
        self.reducers: dict[str, Reducer] = {k: r for k, r in reducers.items() if k in self.types}
        self._problems: list[str] = []
        unknown = sorted(set(reducers) - set(self.types))
        if unknown:
            self._problems.append(
                f"reducers for unknown key(s) {', '.join(map(repr, unknown))} of "
                f"{state_type.__name__}"
            )
        for key, found in sorted(reducers.items()):
            why = _takes_two_arguments(found.fn)
            if why is not None:
                self._problems.append(f"reducer {found.name!r} of {key!r}: {why}")
        self._empties: dict[str, Callable[[], Any] | None] = {
            k: _empty_for(r, self.types[k]) for k, r in self.reducers.items()
        }

    def problems(self) -> list[str]:
        """Everything wrong with the reducers, one line each."""
        return list(self._problems)

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

    def _current(self, state: Any, key: str, found: Reducer, node: str) -> Any:
        """The value ``found`` combines an update with; for a key missing from a partial
        ``TypedDict`` state, the reducer's empty value."""
        if self.is_attrs:
            return getattr(state, key)
        try:
            return state[key]
        except KeyError:
            factory = self._empties.get(key)
            if factory is None:
                raise StateUpdateError(
                    node,
                    f"{key!r} is missing from the state and reducer {found.name!r} has no "
                    "empty value to start from; give the initial state the key, or declare "
                    "the reducer with reducer(fn, empty=...)",
                ) from None
            return factory()

    def apply(
        self,
        state: S,
        delta: Delta,
        node: str,
        own: Ownership | None = None,
        undo: list[Undo] | None = None,
    ) -> S:
        """The state after ``delta``; raises :class:`StateUpdateError` naming ``node``.

        Without ``own`` nothing is changed in place. With it, values the run owns are
        changed in place (each change recorded in ``undo``, when given, so that
        :func:`rollback` can restore them) and ``own`` learns which values are new.
        """
        if not delta:
            return state
        types = self.types
        reducers = self.reducers
        in_place = own is not None and own.top and not self.is_attrs
        changes: dict[str, Any] = {}
        for key, update in delta.items():
            if key not in types:
                raise StateUpdateError(node, f"{key!r} is not a key of {self.state_type.__name__}")
            found = reducers.get(key)
            if found is None:
                changes[key] = update
                if own is not None:
                    own.keys.discard(key)
                continue
            current = changes[key] if key in changes else self._current(state, key, found, node)
            try:
                if own is not None and found.inplace is not None and key in own.keys:
                    if undo is not None:
                        if isinstance(current, list):
                            undo.append(("list", current, len(current)))
                        else:
                            undo.append(
                                ("dict", current, {k: current.get(k, _MISSING) for k in update})
                            )
                    changes[key] = found.inplace(current, update)
                    continue
                changes[key] = found.fn(current, update)
            except Exception as exc:
                raise StateUpdateError(
                    node, f"reducer {found.name!r} of {key!r} failed: {type(exc).__name__}: {exc}"
                ) from exc
            if own is not None:
                if found.fresh:
                    own.keys.add(key)
                else:
                    own.keys.discard(key)
        if self.is_attrs:
            try:
                return attrs.evolve(state, **changes)  # type: ignore[misc]
            except Exception as exc:
                raise StateUpdateError(node, f"{type(exc).__name__}: {exc}") from exc
        if in_place:
            target: dict[str, Any] = state  # type: ignore[assignment]
            if undo is not None:
                for key, value in changes.items():
                    undo.append(("key", target, (key, target.get(key, _MISSING))))
                    target[key] = value
            else:
                target.update(changes)
            return state
        new: dict[str, Any] = dict(state)  # type: ignore[call-overload]
        new.update(changes)
        if own is not None:
            own.top = True
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
