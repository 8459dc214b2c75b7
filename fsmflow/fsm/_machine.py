"""``StateMachine``: a spec plus a current state.

The machine decides; it never acts. :meth:`StateMachine.handle` returns the actions a
transition asks for and whoever drives the machine (usually the supervisor loop) runs
them, so that every action error can become an event the machine handles in turn.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any, Generic, TypeVar, final

import anyio

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
        "_state_key",
        "_event_key",
        "_table",
        "_wildcards",
        "_entry",
        "_exit",
        "_timeouts",
        "_declared_states",
        "_entered_at",
    )

    def __init__(self, spec: FsmSpec[S, E, C, A], initial_state: S) -> None:
        self._spec = spec
        self._state = initial_state
        self._state_key = spec.states.key_function()
        self._event_key = spec.events.key_function()
        self._table = spec._table
        self._wildcards = spec._wildcards
        self._entry = spec._entry
        self._exit = spec._exit
        self._timeouts = spec._timeouts
        self._declared_states = frozenset(spec.states.variants)
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
        return self._state_key(self._state)

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
        state = self._state
        skey = self._state_key(state)
        handler = self._table.get((skey, self._event_key(event)))
        if handler is None:
            handler = self._wildcards.get(self._event_key(event))
            if handler is None:
                return await self._handle_unhandled(state, event, ctx)
        try:
            result: Any = handler.function(state, event, ctx)
            if handler.is_async:
                result = await result
        except Exception as exc:
            raise HandlerError(
                self._spec.name, handler.name, variant_name(skey), _event_label(event)
            ) from exc
        return await self._apply(handler, result, skey, event, ctx)

    async def check_timeout(self, ctx: C) -> list[A]:
        """Fire the current state's timeout if it has lasted long enough.

        Returns the transition's actions, or ``[]`` when the state has no timeout or it is
        not due yet. The clock is the running loop's (``anyio.current_time()``); a state's
        timer starts when it is entered, or at the first call for the initial state.
        Firing restarts the timer even when the handler, a hook or the target check
        raises, so a failing timeout fires again a full period later, not at once.
        """
        handler = self._timeouts.get(self._state_key(self._state))
        if handler is None:
            return []
        now = anyio.current_time()
        if self._entered_at is None:
            self._entered_at = now
        assert handler.seconds is not None
        # Compare against the same sum timeout_deadline() returns: ``now - entered`` can
        # round below ``seconds`` at exactly the deadline, and a driver that slept until
        # the deadline would then never see the timeout fire.
        if now < self._entered_at + handler.seconds:
            return []
        state = self._state
        skey = self._state_key(state)
        self._entered_at = now
        try:
            result: Any = handler.function(state, ctx)
            if handler.is_async:
                result = await result
        except Exception as exc:
            raise HandlerError(
                self._spec.name, handler.name, variant_name(skey), "timeout"
            ) from exc
        return await self._apply(handler, result, skey, "timeout", ctx)

    def timeout_deadline(self) -> float | None:
        """When the current state's timeout falls due on the loop's clock, or ``None``."""
        handler = self._timeouts.get(self._state_key(self._state))
        if handler is None:
            return None
        assert handler.seconds is not None
        if self._entered_at is None:
            self._entered_at = anyio.current_time()
        return self._entered_at + handler.seconds

    async def execute_actions(self, actions: Iterable[FsmAction[C]], ctx: C) -> None:
        """Run ``actions`` in order; the first failure raises :class:`ActionError` and the
        rest are skipped."""
        for index, action in enumerate(actions):
            try:
                await action.execute(ctx)
            except Exception as exc:
                raise ActionError(action, index, exc) from exc

    # -- internals -------------------------------------------------------------------------

    async def _handle_unhandled(self, state: S, event: E, ctx: C) -> list[A]:
        spec = self._spec
        ekey = self._event_key(event)
        if ekey not in spec.events.variants:
            raise FsmError(
                f"{spec.name}: {event!r} is not a value of the declared event type "
                f"{spec.events.label}"
            )
        handler = spec._unhandled
        if handler is None:
            if spec.strict:
                raise UnhandledEventError(
                    spec.name, variant_name(self._state_key(state)), variant_name(ekey)
                )
            return []
        skey = self._state_key(state)
        try:
            result: Any = handler.function(state, event, ctx)
            if handler.is_async:
                result = await result
        except Exception as exc:
            raise HandlerError(
                spec.name, handler.name, variant_name(skey), _event_label(event)
            ) from exc
        return await self._apply(handler, result, skey, event, ctx)

    async def _apply(
        self, handler: HandlerSpec, result: Any, skey: Variant, event: object, ctx: C
    ) -> list[A]:
        if type(result) is not Transition:
            result = await self._coerce(handler, result, skey, event)
        target = result.next_state
        if target is STAY:
            return list(result.actions)
        tkey = self._state_key(target)
        if tkey not in self._declared_states or (
            handler.target_set is not None and tkey not in handler.target_set
        ):
            allowed = (
                self._spec.states.label
                if handler.targets is None or tkey not in self._declared_states
                else " | ".join(map(variant_name, handler.targets))
            )
            raise UndeclaredTargetError(
                self._spec.name,
                handler.name,
                variant_name(skey),
                _event_label(event),
                variant_name(tkey) if tkey in self._declared_states else repr(target),
                allowed,
            )
        exits = self._exit.get(skey)
        entries = self._entry.get(tkey)
        if exits is None and entries is None:
            actions: list[A] = list(result.actions)
        else:
            actions = []
            if exits is not None:
                await self._run_hooks(exits, self._state, ctx, actions, event)
            if entries is not None:
                await self._run_hooks(entries, target, ctx, actions, event)
            actions.extend(result.actions)
        self._state = target
        if tkey in self._timeouts:
            self._entered_at = anyio.current_time()
        return actions

    async def _coerce(
        self, handler: HandlerSpec, result: Any, skey: Variant, event: object
    ) -> Transition[S, A]:
        if inspect.isawaitable(result):
            try:
                result = await result
            except Exception as exc:
                raise HandlerError(
                    self._spec.name, handler.name, variant_name(skey), _event_label(event)
                ) from exc
        if not isinstance(result, Transition):
            raise HandlerError(
                self._spec.name, handler.name, variant_name(skey), _event_label(event)
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
