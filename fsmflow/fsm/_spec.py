"""``FsmSpec``: a validated, immutable, introspectable description of a machine.

A spec is data. Diagrams, docs and the CLI read it without running anything, and every
:class:`StateMachine` created from it shares its lookup tables.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar, final

import attrs

from .._util import NoPublicConstructor, bounded_repr
from ._errors import InvalidDefinitionError
from ._variants import Variant, VariantSet, variant_name

if TYPE_CHECKING:
    from ._machine import StateMachine, _Node

S = TypeVar("S")
E = TypeVar("E")
C = TypeVar("C")
A = TypeVar("A")


class HandlerKind(enum.Enum):
    """Where a handler applies."""

    #: One (state variant, event variant) pair.
    EVENT = "event"
    #: One event variant in any state (``from_any()``); a specific handler wins.
    WILDCARD = "wildcard"
    #: A state that lasted longer than its timeout (``timeout(seconds, handler)``).
    TIMEOUT = "timeout"
    #: Any (state, event) pair no other handler covers (``on_unhandled``).
    UNHANDLED = "unhandled"


@attrs.frozen(slots=True)
class HandlerSpec:
    """One registered handler, as diagrams and validation see it."""

    kind: HandlerKind
    #: The state variant it applies in, or ``None`` for any state.
    source: Variant | None
    #: The event variant it handles, or ``None`` for timeouts and the unhandled handler.
    event: Variant | None
    function: Callable[..., Any] = attrs.field(repr=False)
    #: The handler's qualified name, used in every message about it.
    name: str
    #: Declared target variants (``to=``), or ``None`` when undeclared.
    targets: tuple[Variant, ...] | None
    is_async: bool
    #: For timeouts: seconds the state may last before the handler fires.
    seconds: float | None = None


class HookKind(enum.Enum):
    ENTRY = "entry"
    EXIT = "exit"


@attrs.frozen(slots=True)
class HookSpec:
    """An entry or exit hook of one state variant."""

    kind: HookKind
    state: Variant
    function: Callable[..., Any] = attrs.field(repr=False)
    name: str
    is_async: bool


@final
@attrs.frozen(slots=True, repr=False, eq=False)
class FsmSpec(Generic[S, E, C, A], metaclass=NoPublicConstructor):
    """A validated machine definition; create it with :meth:`FsmBuilder.build`.

    Everything here is read-only. ``handlers`` lists every handler in registration order
    (timeouts and the unhandled handler included); ``entry_hooks`` and ``exit_hooks`` list
    the hooks. Create running machines with :meth:`new_machine`.

    A spec compares and hashes by identity, so it can key a cache (of diagrams, say).
    """

    _factory_hint = "FsmBuilder(...).build()"

    name: str
    states: VariantSet
    events: VariantSet
    #: The variant diagrams mark as initial and reachability is computed from.
    initial: Variant
    handlers: tuple[HandlerSpec, ...]
    entry_hooks: tuple[HookSpec, ...]
    exit_hooks: tuple[HookSpec, ...]
    #: In strict mode an unhandled (state, event) pair raises and unreachable states are
    #: build errors rather than warnings.
    strict: bool
    # Lookup tables shared by every machine built from this spec.
    _table: Mapping[tuple[Variant, Variant], HandlerSpec]
    _wildcards: Mapping[Variant, HandlerSpec]
    _timeouts: Mapping[Variant, HandlerSpec]
    _entry: Mapping[Variant, tuple[HookSpec, ...]]
    _exit: Mapping[Variant, tuple[HookSpec, ...]]
    _unhandled: HandlerSpec | None
    #: The tables above compiled into one node per state variant, for the machine's hot
    #: path (see ``_machine.compile_nodes``).
    _nodes: Mapping[Variant, _Node] = attrs.field(init=False, repr=False)

    @_nodes.default
    def _compile_nodes(self) -> Mapping[Variant, _Node]:
        from ._machine import compile_nodes

        return compile_nodes(self)

    def __repr__(self) -> str:
        return (
            f"<FsmSpec {self.name!r}: {len(self.states.variants)} states, "
            f"{len(self.events.variants)} events, {len(self.handlers)} handlers>"
        )

    def new_machine(self, initial_state: S) -> StateMachine[S, E, C, A]:
        """A fresh machine in ``initial_state``, which may be any declared variant (a
        machine restored from storage starts where it left off).

        Raises :class:`InvalidDefinitionError` when the state is not a declared variant.
        """
        from ._machine import StateMachine

        if not self.states.contains(self.states.variant_of(initial_state)):
            raise InvalidDefinitionError(
                self.name,
                [
                    f"initial state {bounded_repr(initial_state)} is not a variant of the declared "
                    f"state type {self.states.label}"
                ],
            )
        machine: StateMachine[S, E, C, A] = StateMachine._create(self, initial_state)
        return machine

    def handler_for(self, state: Variant, event: Variant) -> HandlerSpec | None:
        """The handler that would run for (state variant, event variant), if any."""
        return self._table.get((state, event)) or self._wildcards.get(event) or self._unhandled

    def timeout_for(self, state: Variant) -> HandlerSpec | None:
        return self._timeouts.get(state)

    def state_names(self) -> tuple[str, ...]:
        return tuple(variant_name(v) for v in self.states.variants)
