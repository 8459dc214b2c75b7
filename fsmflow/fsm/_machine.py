"""``StateMachine``: a spec plus a current state.

The machine decides; it never acts. :meth:`StateMachine.handle` returns the actions a
transition asks for and whoever drives the machine (usually the supervisor loop) runs
them, so that every action error can become an event the machine handles in turn.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Generic, TypeVar, final

import anyio
import attrs

from .._util import NoPublicConstructor, bounded_repr
from ._errors import (
    ActionError,
    FsmError,
    HandlerError,
    UndeclaredTargetError,
    UnhandledEventError,
)
from ._spec import FsmSpec, HandlerSpec, HookSpec
from ._transition import STAY, FsmAction, Transition
from ._variants import Variant, VariantSet, variant_name

S = TypeVar("S")
E = TypeVar("E")
C = TypeVar("C")
A = TypeVar("A")


@final
class StateMachine(Generic[S, E, C, A], metaclass=NoPublicConstructor):
    """A running instance of an :class:`FsmSpec`; create it with ``spec.new_machine(s)``.

    Not safe to share between tasks: one driver calls :meth:`handle` at a time (the
    supervisor loop is that single gateway). When a handler, hook or target check raises,
    the state is left unchanged.
    """

    _factory_hint = "FsmSpec.new_machine(initial_state)"

    __slots__ = (
        "_spec",
        "_state",
        "_node",
        "_enum_states",
        "_enum_events",
        "_entered_at",
    )

    def __init__(self, spec: FsmSpec[S, E, C, A], initial_state: S) -> None:
        self._spec = spec
        self._state = initial_state
        #: Always the node of ``_state``'s variant: moved only together with ``_state``.
        self._node = spec._nodes[spec.states.variant_of(initial_state)]
        # An enum member is its own variant, any other value's variant is its class: the
        # hot path inlines that choice rather than calling VariantSet.key_function().
        self._enum_states = spec.states.is_enum
        self._enum_events = spec.events.is_enum
        self._entered_at: float | None = None

    @property
    def spec(self) -> FsmSpec[S, E, C, A]:
        return self._spec

    @property
    def state(self) -> S:
        """The current state value."""
        return self._state

    @property
    def state_variant(self) -> Variant:
        return self._node.variant

    def __repr__(self) -> str:
        return f"<StateMachine {self._spec.name!r} in {bounded_repr(self._state)}>"

    async def handle(self, event: E, ctx: C) -> list[A]:
        """Apply ``event`` and return the actions to run, in order: the left state's exit
        hooks' actions, the entered state's entry hooks' actions, the transition's own.

        An event no handler covers returns ``[]`` (or raises :class:`UnhandledEventError`
        in strict mode). Raises :class:`HandlerError` if a handler or hook raised and
        :class:`UndeclaredTargetError` for a target outside ``to=``; the state is then
        unchanged.
        """
        # The body of _handle_now(), repeated (each call saved is a tenth of a transition),
        # except that the actions come back as a new list.
        node = self._node
        route = node.routes.get(id(event) if self._enum_events else type(event))
        if route is None:
            return await self._handle_unhandled(event, ctx)
        if route.is_async:
            return await self._handle_async(route, event, ctx)
        try:
            result: Any = route.function(self._state, event, ctx)
        except Exception as exc:
            raise self._handler_error(route, event) from exc
        if type(result) is Transition:
            target = result.next_state
            if target is STAY:
                return list(result.actions)
            edge = route.edges.get(id(target) if self._enum_states else type(target))
            if edge is not None and edge.plain:
                self._state = target
                self._node = edge.target
                return list(result.actions)
        return await self._apply(route, result, event, ctx)

    def _handle_now(self, event: E, ctx: C) -> tuple[A, ...] | list[A] | Awaitable[list[A]]:
        """:meth:`handle` without a coroutine where none is needed: the actions (a tuple
        or a list, not to be changed) when the transition completes without awaiting
        anything (a sync handler returning ``stay()``, or ``goto()`` along an edge without
        hooks or timer), else an awaitable of a list of them. Raises as :meth:`handle`
        does. The supervisor loop calls this directly.
        """
        node = self._node
        # Enum members are keyed by identity: an enum's hash is computed in Python (the
        # dearest step of a lookup), and a raw value equal to a member (``"a"`` for a str
        # enum) or an unhashable value must not find the member's route.
        route = node.routes.get(id(event) if self._enum_events else type(event))
        if route is None:
            return self._handle_unhandled(event, ctx)
        if route.is_async:
            return self._handle_async(route, event, ctx)
        try:
            result: Any = route.function(self._state, event, ctx)
        except Exception as exc:
            raise self._handler_error(route, event) from exc
        if type(result) is Transition:
            target = result.next_state
            if target is STAY:
                return result.actions
            edge = route.edges.get(id(target) if self._enum_states else type(target))
            if edge is not None and edge.plain:
                self._state = target
                self._node = edge.target
                return result.actions
        # Hooks, timers, a result that is not a Transition, every error.
        return self._apply(route, result, event, ctx)

    async def _handle_async(self, route: _Route, event: object, ctx: C) -> list[A]:
        try:
            result = await route.function(self._state, event, ctx)
        except Exception as exc:
            raise self._handler_error(route, event) from exc
        return await self._apply(route, result, event, ctx)

    def _handler_error(self, route: _Route, event: object) -> HandlerError:
        return HandlerError(
            self._spec.name,
            route.handler.name,
            variant_name(self._node.variant),
            _event_label(event),
        )

    async def check_timeout(self, ctx: C) -> list[A]:
        """Fire the current state's timeout if it has lasted long enough.

        Returns the transition's actions, or ``[]`` when the state has no timeout or it is
        not due yet. The clock is the running loop's (``anyio.current_time()``); a state's
        timer starts when it is entered, or at the first call for the initial state.
        Firing restarts the timer even when the handler, a hook or the target check
        raises, so a failing timeout fires again a full period later, not at once.
        """
        route = self._node.timeout
        if route is None:
            return []
        handler = route.handler
        now = anyio.current_time()
        if self._entered_at is None:
            self._entered_at = now
        assert handler.seconds is not None
        # Compare against the same sum timeout_deadline() returns: ``now - entered`` can
        # round below ``seconds`` at exactly the deadline, and a driver that slept until
        # the deadline would then never see the timeout fire.
        if now < self._entered_at + handler.seconds:
            return []
        self._entered_at = now
        try:
            result: Any = handler.function(self._state, ctx)
            if handler.is_async:
                result = await result
        except Exception as exc:
            raise HandlerError(
                self._spec.name, handler.name, variant_name(self._node.variant), "timeout"
            ) from exc
        return await self._apply(route, result, "timeout", ctx)

    def timeout_deadline(self) -> float | None:
        """When the current state's timeout falls due on the loop's clock, or ``None``."""
        route = self._node.timeout
        if route is None:
            return None
        assert route.handler.seconds is not None
        if self._entered_at is None:
            self._entered_at = anyio.current_time()
        return self._entered_at + route.handler.seconds

    async def execute_actions(self, actions: Iterable[FsmAction[C]], ctx: C) -> None:
        """Run ``actions`` in order; the first failure raises :class:`ActionError` and the
        rest are skipped."""
        index = 0
        for action in actions:
            try:
                await action.execute(ctx)
            except Exception as exc:
                raise ActionError(action, index, exc) from exc
            index += 1  # noqa: SIM113 - enumerate() would cost more than a typical action

    # -- internals -------------------------------------------------------------------------

    async def _handle_unhandled(self, event: E, ctx: C) -> list[A]:
        spec = self._spec
        ekey = spec.events.variant_of(event)
        if not spec.events.contains(ekey):
            raise FsmError(
                f"{spec.name}: {bounded_repr(event)} is not a value of the declared event "
                f"type {spec.events.label}"
            )
        route = self._node.unhandled
        if route is None:
            if spec.strict:
                raise UnhandledEventError(
                    spec.name, variant_name(self._node.variant), variant_name(ekey)
                )
            return []
        handler = route.handler
        try:
            result: Any = handler.function(self._state, event, ctx)
            if handler.is_async:
                result = await result
        except Exception as exc:
            raise HandlerError(
                spec.name, handler.name, variant_name(self._node.variant), _event_label(event)
            ) from exc
        return await self._apply(route, result, event, ctx)

    async def _apply(self, route: _Route, result: Any, event: object, ctx: C) -> list[A]:
        if type(result) is not Transition:
            result = await self._coerce(route.handler, result, event)
        target = result.next_state
        if target is STAY:
            return list(result.actions)
        edge = route.edges.get(id(target) if self._enum_states else type(target))
        if edge is None:
            edge = self._open_edge(route, target)
            if edge is None:
                raise self._undeclared_target(route.handler, target, event)
        if edge.hooked:
            actions: list[A] = []
            await self._run_hooks(edge.exit_hooks, self._state, ctx, actions, event)
            await self._run_hooks(edge.entry_hooks, target, ctx, actions, event)
            actions.extend(result.actions)
        else:
            actions = list(result.actions)
        self._state = target
        self._node = edge.target
        if edge.timed:
            self._entered_at = anyio.current_time()
        return actions

    def _open_edge(self, route: _Route, target: object) -> _Edge | None:
        """The edge to ``target`` of a route whose handler may go anywhere (no ``to=``)
        but whose edges are made on first use (see ``compile_nodes``), or ``None`` when
        ``target`` may not be reached along ``route``."""
        spec = self._spec
        variant = spec.states.variant_of(target)
        if route.exit_hooks is None or not spec.states.contains(variant):
            return None
        edge = _edge(spec, route.exit_hooks, variant)
        route.edges[_key(spec.states, variant)] = edge
        return edge

    def _undeclared_target(
        self, handler: HandlerSpec, target: object, event: object
    ) -> UndeclaredTargetError:
        spec = self._spec
        tkey = spec.states.variant_of(target)
        declared = spec.states.contains(tkey)
        allowed = (
            spec.states.label
            if handler.targets is None or not declared
            else " | ".join(map(variant_name, handler.targets))
        )
        return UndeclaredTargetError(
            spec.name,
            handler.name,
            variant_name(self._node.variant),
            _event_label(event),
            variant_name(tkey) if declared else bounded_repr(target),
            allowed,
            declared=declared,
        )

    async def _coerce(self, handler: HandlerSpec, result: Any, event: object) -> Transition[S, A]:
        source = variant_name(self._node.variant)
        if inspect.isawaitable(result):
            try:
                result = await result
            except Exception as exc:
                raise HandlerError(
                    self._spec.name, handler.name, source, _event_label(event)
                ) from exc
        if not isinstance(result, Transition):
            raise HandlerError(
                self._spec.name, handler.name, source, _event_label(event)
            ) from TypeError(
                f"handler {handler.name} returned {bounded_repr(result)}; it must return a "
                "Transition "
                "(use goto(state, *actions) or stay(*actions))"
            )
        return result

    async def _run_hooks(
        self,
        hooks: Sequence[HookSpec],
        state: object,
        ctx: C,
        into: list[A],
        event: object,
    ) -> None:
        for hook in hooks:
            try:
                produced: Any = hook.function(state, ctx)
                if hook.is_async or isinstance(produced, Awaitable):
                    produced = await produced
            except Exception as exc:
                raise HandlerError(
                    self._spec.name,
                    f"{hook.kind.value} hook {hook.name}",
                    variant_name(hook.state),
                    _event_label(event),
                ) from exc
            if produced is not None:
                into.extend(produced)


def _event_label(event: object) -> str:
    """The event's variant name; ``"timeout"`` for a timeout."""
    if isinstance(event, enum.Enum):
        return event.name
    if isinstance(event, str):
        return event
    return variant_name(type(event))


# -- the compiled form of a spec ----------------------------------------------------------
#
# Handling an event costs two dict lookups on the hot path: the event's route in the
# current state's node, then the edge to the target variant the handler chose. Everything
# else a transition needs (declared-target check, hooks, whether the target has a timeout)
# is precomputed on the edge. Enum members are keyed by ``id()``, classes by themselves
# (see ``_key``).
#
# Compiling costs time in proportion to the spec (states, handlers and declared targets),
# never states x states: the states without exit hooks share one set of edges, and a
# state with exit hooks gets its edges for declared targets only; the edges of a handler
# without ``to=`` leaving such a state are made on first use.


def _key(variants: VariantSet, variant: Variant) -> object:
    """The key a variant is looked up by in nodes' routes and routes' edges."""
    return id(variant) if variants.is_enum else variant


@final
class _Node:
    """One state variant: what may happen while the machine is in it."""

    __slots__ = ("variant", "routes", "timeout", "unhandled")

    def __init__(self, variant: Variant) -> None:
        self.variant = variant
        #: Event key -> route; a specific handler takes precedence over ``from_any()``.
        self.routes: dict[object, _Route] = {}
        self.timeout: _Route | None = None
        self.unhandled: _Route | None = None


@attrs.frozen(slots=True, eq=False)
class _Edge:
    """Leaving one state variant for another: the hooks to run and the node reached."""

    exit_hooks: tuple[HookSpec, ...]
    entry_hooks: tuple[HookSpec, ...]
    target: _Node
    #: Whether the target has a timeout, whose timer entering it restarts.
    timed: bool
    #: Whether any hook runs; if none does, the handler's actions are all the actions.
    hooked: bool = attrs.field(init=False)
    #: Neither hooked nor timed: taking the edge is moving to ``target``, nothing more.
    plain: bool = attrs.field(init=False)

    @hooked.default
    def _any_hooks(self) -> bool:
        return bool(self.exit_hooks or self.entry_hooks)

    @plain.default
    def _is_plain(self) -> bool:
        return not (self.hooked or self.timed)


@attrs.frozen(slots=True, eq=False)
class _Route:
    """A handler as seen from one source state, with the edges it may take."""

    handler: HandlerSpec
    #: Allowed target key -> edge: the ``to=`` variants, or every declared state.
    edges: dict[object, _Edge]
    #: For a handler without ``to=`` leaving a state with exit hooks: those hooks, and
    #: ``edges`` starts empty and fills on first use of each target. Otherwise ``None``.
    exit_hooks: tuple[HookSpec, ...] | None = None
    #: The handler's function and whether it is async, one lookup closer.
    function: Callable[..., Any] = attrs.field(init=False)
    is_async: bool = attrs.field(init=False)

    @function.default
    def _function(self) -> Callable[..., Any]:
        return self.handler.function

    @is_async.default
    def _is_async(self) -> bool:
        return self.handler.is_async


def _edge(
    spec: FsmSpec[Any, Any, Any, Any], exit_hooks: tuple[HookSpec, ...], target: Variant
) -> _Edge:
    """The edge into ``target`` leaving a state with ``exit_hooks``."""
    return _Edge(
        exit_hooks, spec._entry.get(target, ()), spec._nodes[target], target in spec._timeouts
    )


def compile_nodes(spec: FsmSpec[Any, Any, Any, Any]) -> dict[Variant, _Node]:
    """One node per state variant, built once with the spec and shared by its machines."""
    states, events = spec.states, spec.events
    nodes = {variant: _Node(variant) for variant in states.variants}
    # Entering a state depends on the source only through the source's exit hooks, so
    # the states without any share one set of edges (and one route per handler).

    def edge(exit_hooks: tuple[HookSpec, ...], target: Variant) -> _Edge:
        return _Edge(
            exit_hooks, spec._entry.get(target, ()), nodes[target], target in spec._timeouts
        )

    shared = {_key(states, variant): edge((), variant) for variant in nodes}
    shared_routes: dict[int, _Route] = {}

    def route(handler: HandlerSpec, exit_hooks: tuple[HookSpec, ...] | None) -> _Route:
        if exit_hooks is None:
            made = shared_routes.get(id(handler))
            if made is None:
                if handler.targets is None:
                    made = _Route(handler, shared)
                else:
                    keys = [_key(states, target) for target in handler.targets]
                    made = _Route(handler, {key: shared[key] for key in keys})
                shared_routes[id(handler)] = made
            return made
        if handler.targets is None:
            return _Route(handler, {}, exit_hooks)
        return _Route(
            handler, {_key(states, target): edge(exit_hooks, target) for target in handler.targets}
        )

    by_source: dict[Variant, list[HandlerSpec]] = {}
    for (source, _), handler in spec._table.items():
        by_source.setdefault(source, []).append(handler)
    for source, node in nodes.items():
        exit_hooks = spec._exit.get(source)
        node.routes = {
            _key(events, event): route(h, exit_hooks) for event, h in spec._wildcards.items()
        }
        node.routes.update(
            (_key(events, h.event), route(h, exit_hooks)) for h in by_source.get(source, ())
        )
        timeout = spec._timeouts.get(source)
        node.timeout = None if timeout is None else route(timeout, exit_hooks)
        node.unhandled = None if spec._unhandled is None else route(spec._unhandled, exit_hooks)
    return nodes
