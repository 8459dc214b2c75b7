"""``FsmBuilder``: the one way to define a machine.

Registration is typed: ``builder.when(Running).on(Error, handler)`` makes mypy check that
``handler`` accepts a ``Running`` and an ``Error``. Problems are collected while you
register and reported together, naming the variants and handlers, when :meth:`build`
validates the whole definition.
"""

from __future__ import annotations

import enum
import inspect
import numbers
import warnings
from collections.abc import Callable, Iterable
from typing import Any, Generic, Self, TypeVar, overload

from ._errors import InvalidDefinitionError
from ._spec import FsmSpec, HandlerKind, HandlerSpec, HookKind, HookSpec
from ._transition import HookResult, TransitionResult
from ._variants import Variant, VariantSet, parse_declared_type, variant_name

S = TypeVar("S")
E = TypeVar("E")
C = TypeVar("C")
A = TypeVar("A")
SV = TypeVar("SV")
EV = TypeVar("EV")


class UnreachableStateWarning(UserWarning):
    """A declared state cannot be reached from the spec's initial variant."""


def _callable_name(function: Callable[..., Any]) -> str:
    name = getattr(function, "__qualname__", None) or getattr(function, "__name__", None)
    if isinstance(name, str):
        return name
    # A callable object: its own repr if its class defines one (attrs classes do), else its
    # class name, which unlike the default repr stays the same from one run to the next.
    if any("__repr__" in vars(cls) for cls in type(function).__mro__[:-1]):
        return repr(function)
    return f"{type(function).__qualname__} instance"


def _is_async(function: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        getattr(function, "__call__", None)  # noqa: B004 - async __call__ of callable objects
    )


class FsmBuilder(Generic[S, E, C, A]):
    """Collects states, events, handlers and hooks, then :meth:`build` s an :class:`FsmSpec`.

    ``states`` and ``events`` are the declared types: an ``Enum`` or a union of classes
    (``Running | Failed``). ``initial`` is the variant diagrams mark as initial and from
    which reachability is checked. Parametrise the builder so mypy checks handlers::

        builder = FsmBuilder[State, Event, Ctx, Action](
            states=State, events=Event, initial=Idle, name="door"
        )
    """

    def __init__(
        self,
        *,
        states: object,
        events: object,
        initial: object,
        name: str | None = None,
    ) -> None:
        self._states: VariantSet = parse_declared_type(states, "state")
        self._events: VariantSet = parse_declared_type(events, "event")
        self._name = name or f"{self._states.label} machine"
        self._initial: Variant = initial
        self._handlers: list[HandlerSpec] = []
        self._hooks: list[HookSpec] = []
        self._problems: list[str] = []
        self._strict = False

    # -- registration -------------------------------------------------------------------

    @overload
    def when(self, state: type[SV]) -> StateScope[S, E, C, A, SV]: ...
    @overload
    def when(self, state: S) -> StateScope[S, E, C, A, S]: ...
    def when(self, state: object) -> StateScope[S, E, C, A, Any]:
        """Handlers, hooks and the timeout of one state variant (a class or enum member)."""
        self._check_variant(state, self._states, "state", "when()")
        return StateScope(self, state)

    def from_any(self) -> AnyStateScope[S, E, C, A]:
        """Handlers that apply in every state; a handler for the exact state wins."""
        return AnyStateScope(self)

    @overload
    def on_entry(self, state: type[SV], hook: Callable[[SV, C], HookResult[A]]) -> Self: ...
    @overload
    def on_entry(self, state: S, hook: Callable[[S, C], HookResult[A]]) -> Self: ...
    def on_entry(self, state: object, hook: Callable[..., Any]) -> Self:
        """Run ``hook(state, ctx)`` whenever ``state``'s variant is entered; the actions it
        returns run before the transition's own."""
        self._check_variant(state, self._states, "state", "on_entry()")
        self._add_hook(HookKind.ENTRY, state, hook)
        return self

    @overload
    def on_exit(self, state: type[SV], hook: Callable[[SV, C], HookResult[A]]) -> Self: ...
    @overload
    def on_exit(self, state: S, hook: Callable[[S, C], HookResult[A]]) -> Self: ...
    def on_exit(self, state: object, hook: Callable[..., Any]) -> Self:
        """Run ``hook(state, ctx)`` whenever ``state``'s variant is left; its actions run
        first."""
        self._check_variant(state, self._states, "state", "on_exit()")
        self._add_hook(HookKind.EXIT, state, hook)
        return self

    def on_unhandled(
        self,
        handler: Callable[[S, E, C], TransitionResult[S, A]],
        *,
        to: Iterable[type[S] | S] | None = None,
    ) -> Self:
        """Handle every (state, event) pair that no other handler covers.

        Without it, an unhandled event is ignored (or raises in :meth:`strict` mode).
        """
        first = next((h for h in self._handlers if h.kind is HandlerKind.UNHANDLED), None)
        if first is not None:
            self._problems.append(
                f"on_unhandled() registered twice: {first.name} and {_callable_name(handler)}"
            )
        self._add_handler(HandlerKind.UNHANDLED, None, None, handler, to)
        return self

    def strict(self) -> Self:
        """Make unhandled events raise :class:`UnhandledEventError` and unreachable states
        build errors."""
        self._strict = True
        return self

    # -- internals used by the scopes ---------------------------------------------------

    def _check_variant(self, value: object, declared: VariantSet, role: str, where: str) -> bool:
        if declared.contains(value):
            return True
        self._problems.append(
            f"{where}: {variant_name(value)} is not a variant of the declared {role} type "
            f"{declared.label} (variants: {', '.join(map(variant_name, declared.variants))})"
        )
        return False

    def _add_handler(
        self,
        kind: HandlerKind,
        source: Variant | None,
        event: Variant | None,
        function: Callable[..., Any],
        to: Iterable[object] | None,
        seconds: float | None = None,
    ) -> None:
        if not callable(function):
            raise TypeError(f"handler {function!r} is not callable")
        targets = None
        if to is not None:
            if _is_single_value(to):
                name = _callable_name(function)
                self._problems.append(
                    f"{_handler_label(kind, source, event, name)}: to= must be a sequence of "
                    f"target states, such as to=[{variant_name(to)}], not the single value "
                    f"{variant_name(to)}"
                )
            else:
                targets = tuple(to)
        self._handlers.append(
            HandlerSpec(
                kind=kind,
                source=source,
                event=event,
                function=function,
                name=_callable_name(function),
                targets=targets,
                is_async=_is_async(function),
                seconds=seconds,
            )
        )

    def _add_hook(self, kind: HookKind, state: Variant, hook: Callable[..., Any]) -> None:
        if not callable(hook):
            raise TypeError(f"{kind.value} hook {hook!r} is not callable")
        self._hooks.append(HookSpec(kind, state, hook, _callable_name(hook), _is_async(hook)))

    # -- build ----------------------------------------------------------------------------

    def build(self) -> FsmSpec[S, E, C, A]:
        """Validate everything registered and return the immutable spec.

        Raises :class:`InvalidDefinitionError` listing every problem: undeclared variants,
        duplicate handlers, ``to=`` naming unknown variants, a bad initial variant, bad
        timeouts, and (in strict mode) unreachable states. Outside strict mode unreachable
        states emit an :class:`UnreachableStateWarning`.
        """
        problems = list(self._problems)
        if not self._states.contains(self._initial):
            problems.append(
                f"initial variant {variant_name(self._initial)} is not a variant of the "
                f"declared state type {self._states.label}"
            )
        table: dict[tuple[Variant, Variant], HandlerSpec] = {}
        wildcards: dict[Variant, HandlerSpec] = {}
        timeouts: dict[Variant, HandlerSpec] = {}
        unhandled: HandlerSpec | None = None
        for handler in self._handlers:
            problems.extend(self._target_problems(handler))
            if not self._is_declared(handler):
                # Already reported at registration; the value may not even be hashable.
                continue
            if handler.kind is HandlerKind.EVENT:
                key = (handler.source, handler.event)
                if key in table:
                    problems.append(
                        f"duplicate handler for ({variant_name(handler.source)}, "
                        f"{variant_name(handler.event)}): {table[key].name} and {handler.name}"
                    )
                else:
                    table[key] = handler
            elif handler.kind is HandlerKind.WILDCARD:
                if handler.event in wildcards:
                    problems.append(
                        f"duplicate from_any() handler for {variant_name(handler.event)}: "
                        f"{wildcards[handler.event].name} and {handler.name}"
                    )
                else:
                    wildcards[handler.event] = handler
            elif handler.kind is HandlerKind.TIMEOUT:
                seconds = handler.seconds
                if isinstance(seconds, bool) or not (
                    isinstance(seconds, numbers.Real) and seconds > 0
                ):
                    problems.append(
                        f"timeout of {variant_name(handler.source)} must be a positive number "
                        f"of seconds, not {handler.seconds!r} (handler {handler.name})"
                    )
                if handler.source in timeouts:
                    problems.append(
                        f"duplicate timeout for {variant_name(handler.source)}: "
                        f"{timeouts[handler.source].name} and {handler.name}"
                    )
                else:
                    timeouts[handler.source] = handler
            else:
                unhandled = handler
        if not problems:
            unreachable = self._unreachable(self._handlers)
            if unreachable:
                message = (
                    f"state(s) {', '.join(map(variant_name, unreachable))} cannot be reached "
                    f"from the initial variant {variant_name(self._initial)}"
                )
                if self._strict:
                    problems.append(message + " (strict mode)")
                else:
                    warnings.warn(f"{self._name}: {message}", UnreachableStateWarning, stacklevel=2)
        if problems:
            raise InvalidDefinitionError(self._name, problems)
        entry: dict[Variant, list[HookSpec]] = {}
        exit_: dict[Variant, list[HookSpec]] = {}
        for hook in self._hooks:
            (entry if hook.kind is HookKind.ENTRY else exit_).setdefault(hook.state, []).append(
                hook
            )
        spec: FsmSpec[S, E, C, A] = FsmSpec._create(
            name=self._name,
            states=self._states,
            events=self._events,
            initial=self._initial,
            handlers=tuple(self._handlers),
            entry_hooks=tuple(h for h in self._hooks if h.kind is HookKind.ENTRY),
            exit_hooks=tuple(h for h in self._hooks if h.kind is HookKind.EXIT),
            strict=self._strict,
            table=table,
            wildcards=wildcards,
            timeouts=timeouts,
            entry={k: tuple(v) for k, v in entry.items()},
            exit={k: tuple(v) for k, v in exit_.items()},
            unhandled=unhandled,
        )
        return spec

    def _is_declared(self, handler: HandlerSpec) -> bool:
        """Whether the handler's state and event (where it has them) are declared."""
        return (handler.source is None or self._states.contains(handler.source)) and (
            handler.event is None or self._events.contains(handler.event)
        )

    def _target_problems(self, handler: HandlerSpec) -> list[str]:
        if handler.targets is None:
            return []
        where = f"handler {handler.name}"
        if handler.kind is HandlerKind.EVENT or handler.kind is HandlerKind.TIMEOUT:
            where += f" of {variant_name(handler.source)}"
        problems = [
            f"{where}: to= names {variant_name(t)}, which is not a variant of the declared "
            f"state type {self._states.label}"
            for t in handler.targets
            if not self._states.contains(t)
        ]
        return problems

    def _unreachable(self, handlers: list[HandlerSpec]) -> list[Variant]:
        """States no path of declared targets reaches from the initial variant.

        A handler without ``to=`` may go anywhere, so it reaches every state; the check
        never reports a state that might be reachable. Linear in states plus handlers
        plus declared targets: each state is visited once, variants compared by identity.
        """
        by_source: dict[int, list[HandlerSpec]] = {}
        anywhere: list[HandlerSpec] = []
        for handler in handlers:
            if handler.source is None:
                anywhere.append(handler)
            else:
                by_source.setdefault(id(handler.source), []).append(handler)
        reached = {id(self._initial)}
        frontier = [self._initial]

        def reach(handler: HandlerSpec) -> bool:
            """Mark the handler's targets reached; True when it may go anywhere."""
            if handler.targets is None:
                return True
            for target in handler.targets:
                if id(target) not in reached:
                    reached.add(id(target))
                    frontier.append(target)
            return False

        # Handlers for any state apply as soon as the initial state is reached.
        everything = any(reach(handler) for handler in anywhere)
        while frontier and not everything:
            state = frontier.pop()
            for handler in by_source.get(id(state), ()):
                if reach(handler):
                    everything = True
                    break
        if everything:
            return []
        return [v for v in self._states.variants if id(v) not in reached]


def _is_single_value(to: object) -> bool:
    """Whether ``to=`` got one state where a sequence of states belongs (a str enum
    member or a string is iterable, but its characters are not states)."""
    if isinstance(to, str | bytes | enum.Enum | type):
        return True
    return not isinstance(to, Iterable)


def _handler_label(
    kind: HandlerKind, source: Variant | None, event: Variant | None, name: str
) -> str:
    """How problems name a handler: ``handler h of S on E``."""
    label = f"handler {name}"
    if source is not None:
        label += f" of {variant_name(source)}"
    if kind is HandlerKind.EVENT or kind is HandlerKind.WILDCARD:
        label += f" on {variant_name(event)}"
    elif kind is HandlerKind.TIMEOUT:
        label += " (timeout)"
    return label


class StateScope(Generic[S, E, C, A, SV]):
    """Registration for one state variant; returned by :meth:`FsmBuilder.when`.

    Every method returns the scope, so registrations chain.
    """

    def __init__(self, builder: FsmBuilder[S, E, C, A], state: Variant) -> None:
        self._builder = builder
        self._state = state

    @overload
    def on(
        self,
        event: type[EV],
        handler: Callable[[SV, EV, C], TransitionResult[S, A]],
        *,
        to: Iterable[type[S] | S] | None = None,
    ) -> Self: ...
    @overload
    def on(
        self,
        event: E,
        handler: Callable[[SV, E, C], TransitionResult[S, A]],
        *,
        to: Iterable[type[S] | S] | None = None,
    ) -> Self: ...
    def on(
        self,
        event: object,
        handler: Callable[..., Any],
        *,
        to: Iterable[object] | None = None,
    ) -> Self:
        """Handle ``event`` in this state with ``handler(state, event, ctx)``.

        ``to`` declares the variants the handler may go to: the diagram shows exactly
        those edges and the machine raises :class:`UndeclaredTargetError` on any other.
        """
        builder = self._builder
        builder._check_variant(
            event, builder._events, "event", f"when({variant_name(self._state)}).on()"
        )
        builder._add_handler(HandlerKind.EVENT, self._state, event, handler, to)
        return self

    def timeout(
        self,
        seconds: float,
        handler: Callable[[SV, C], TransitionResult[S, A]],
        *,
        to: Iterable[type[S] | S] | None = None,
    ) -> Self:
        """Call ``handler(state, ctx)`` once this state has lasted ``seconds``.

        Timeouts are cooperative: :meth:`StateMachine.check_timeout` fires them, using the
        running event loop's clock (so trio's ``MockClock`` drives them in tests). Firing
        restarts the timer, also when the handler stays.
        """
        self._builder._add_handler(
            HandlerKind.TIMEOUT, self._state, None, handler, to, seconds=seconds
        )
        return self

    def on_entry(self, hook: Callable[[SV, C], HookResult[A]]) -> Self:
        """Same as :meth:`FsmBuilder.on_entry` for this state."""
        self._builder._add_hook(HookKind.ENTRY, self._state, hook)
        return self

    def on_exit(self, hook: Callable[[SV, C], HookResult[A]]) -> Self:
        """Same as :meth:`FsmBuilder.on_exit` for this state."""
        self._builder._add_hook(HookKind.EXIT, self._state, hook)
        return self


class AnyStateScope(Generic[S, E, C, A]):
    """Wildcard registration; returned by :meth:`FsmBuilder.from_any`."""

    def __init__(self, builder: FsmBuilder[S, E, C, A]) -> None:
        self._builder = builder

    @overload
    def on(
        self,
        event: type[EV],
        handler: Callable[[S, EV, C], TransitionResult[S, A]],
        *,
        to: Iterable[type[S] | S] | None = None,
    ) -> Self: ...
    @overload
    def on(
        self,
        event: E,
        handler: Callable[[S, E, C], TransitionResult[S, A]],
        *,
        to: Iterable[type[S] | S] | None = None,
    ) -> Self: ...
    def on(
        self,
        event: object,
        handler: Callable[..., Any],
        *,
        to: Iterable[object] | None = None,
    ) -> Self:
        """Handle ``event`` in any state that has no handler of its own for it."""
        builder = self._builder
        builder._check_variant(event, builder._events, "event", "from_any().on()")
        builder._add_handler(HandlerKind.WILDCARD, None, event, handler, to)
        return self
