"""``StateMachine``: a spec plus a current state.

The machine decides; it never acts. :meth:`StateMachine.handle` returns the actions a
transition asks for and whoever drives the machine (usually the supervisor loop) runs
them, so that every action error can become an event the machine handles in turn.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar, final

import anyio
import attrs

from .._util import NoPublicConstructor
from ._errors import (
    ActionError,
    FsmError,
    HandlerError,
    UndeclaredTargetError,
    UnhandledEventError,
)
from ._spec import FsmSpec, HandlerSpec, HookSpec
from ._transition import STAY, FsmAction, Transition
from ._variants import Variant, variant_name

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
        return f"<StateMachine {self._spec.name!r} in {self._state!r}>"

    async def handle(self, event: E, ctx: C) -> list[A]:
        """Apply ``event`` and return the actions to run, in order: the left state's exit
        hooks' actions, the entered state's entry hooks' actions, the transition's own.

        An event no handler covers returns ``[]`` (or raises :class:`UnhandledEventError`
        in strict mode). Raises :class:`HandlerError` if a handler or hook raised and
        :class:`UndeclaredTargetError` for a target outside ``to=``; the state is then
        unchanged.
        """
        node = self._node
        route = node.routes.get(event if self._enum_events else type(event))
        if route is None:
            return await self._handle_unhandled(event, ctx)
        handler = route.handler
        try:
            result: Any = handler.function(self._state, event, ctx)
            if handler.is_async:
                result = await result
        except Exception as exc:
            raise HandlerError(
                self._spec.name, handler.name, variant_name(node.variant), _event_label(event)
            ) from exc
        # The common case, inlined to save a coroutine per event: a goto() along an allowed
        # edge that runs no hook. stay(), hooks, a result that is not a Transition and every
        # error go through _apply.
        if type(result) is Transition:
            target = result.next_state
            if target is not STAY:
                edge = route.edges.get(target if self._enum_states else type(target))
                if edge is not None and not edge.hooked:
                    self._state = target
                    self._node = edge.target
                    if edge.timed:
                        self._entered_at = anyio.current_time()
                    return list(result.actions)
        return await self._apply(route, result, event, ctx)

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
        if ekey not in spec.events.variants:
            raise FsmError(
                f"{spec.name}: {event!r} is not a value of the declared event type "
                f"{spec.events.label}"
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
        edge = route.edges.get(target if self._enum_states else type(target))
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

    def _undeclared_target(
        self, handler: HandlerSpec, target: object, event: object
    ) -> UndeclaredTargetError:
        spec = self._spec
        tkey = spec.states.variant_of(target)
        declared = tkey in spec._nodes
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
            variant_name(tkey) if declared else repr(target),
            allowed,
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
                f"handler {handler.name} returned {result!r}; it must return a Transition "
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
    if isinstance(event, str):
        return event
    return variant_name(event if isinstance(event, enum.Enum) else type(event))


# -- the compiled form of a spec ----------------------------------------------------------
#
# Handling an event costs two dict lookups on the hot path: the event's route in the
# current state's node, then the edge to the target variant the handler chose. Everything
# else a transition needs (declared-target check, hooks, whether the target has a timeout)
# is precomputed on the edge.


@final
class _Node:
    """One state variant: what may happen while the machine is in it."""

    __slots__ = ("variant", "routes", "timeout", "unhandled")

    def __init__(self, variant: Variant) -> None:
        self.variant = variant
        #: Event variant -> route; a specific handler takes precedence over ``from_any()``.
        self.routes: dict[Variant, _Route] = {}
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

    @hooked.default
    def _any_hooks(self) -> bool:
        return bool(self.exit_hooks or self.entry_hooks)


@attrs.frozen(slots=True, eq=False)
class _Route:
    """A handler as seen from one source state, with the edges it may take."""

    handler: HandlerSpec
    #: Allowed target variant -> edge: the ``to=`` variants, or every declared state.
    edges: Mapping[Variant, _Edge]


def compile_nodes(spec: FsmSpec[Any, Any, Any, Any]) -> dict[Variant, _Node]:
    """One node per state variant, built once with the spec and shared by its machines."""
    nodes = {variant: _Node(variant) for variant in spec.states.variants}

    def edges_from(exit_hooks: tuple[HookSpec, ...]) -> dict[Variant, _Edge]:
        return {
            variant: _Edge(
                exit_hooks, spec._entry.get(variant, ()), target, variant in spec._timeouts
            )
            for variant, target in nodes.items()
        }

    # An edge depends on its source only through the source's exit hooks, so the states
    # without any share one set of edges.
    without_exit_hooks = edges_from(())
    for source, node in nodes.items():
        exit_hooks = spec._exit.get(source)
        edges = without_exit_hooks if exit_hooks is None else edges_from(exit_hooks)
        node.routes = {event: _route(h, edges) for event, h in spec._wildcards.items()}
        node.routes.update(
            (event, _route(h, edges))
            for (state, event), h in spec._table.items()
            if state == source
        )
        timeout = spec._timeouts.get(source)
        node.timeout = None if timeout is None else _route(timeout, edges)
        node.unhandled = None if spec._unhandled is None else _route(spec._unhandled, edges)
    return nodes


def _route(handler: HandlerSpec, edges: dict[Variant, _Edge]) -> _Route:
    if handler.targets is None:
        return _Route(handler, edges)
    return _Route(handler, {target: edges[target] for target in handler.targets})
