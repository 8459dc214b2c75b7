"""A programmable supervisor for the loop, external-event and handle tests.

``Scripted`` answers ``dispatch_state`` from a script: each step is a directive to return,
an exception to raise, or an async callable producing a directive; when the script runs
out it keeps answering ``default`` (``TERMINATE`` unless told otherwise). The FSM:

* ``Go(target, acts)`` from any state: go to ``target``, then run the named actions;
* ``Hold(acts)`` from any state: stay, running the named actions;
* ``Fault(message)`` (the failure event): IDLE/WORKING go to FAILED running
  ``mark-failed``; FAILED stays running ``ctx.fault_acts``; DONE stays.

An action appends its name to ``ctx.log`` and raises when its name is in ``ctx.failing``.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TypeAlias

import attrs

from fsmflow import FsmBuilder, FsmSpec, Transition, goto, stay
from fsmflow.supervisor import (
    TERMINATE,
    EventLoopDirective,
    ExternalEventMode,
    ExternalEventPolicy,
    HandlerSupervised,
    Journal,
    SelfSupervised,
)


class Phase(enum.Enum):
    IDLE = "idle"
    WORKING = "working"
    FAILED = "failed"
    DONE = "done"


@attrs.frozen
class Go:
    target: Phase
    acts: tuple[str, ...] = ()


@attrs.frozen
class Hold:
    acts: tuple[str, ...] = ()


@attrs.frozen
class Fault:
    message: str


Ev: TypeAlias = Go | Hold | Fault


class ActFailed(Exception):
    pass


@attrs.define
class Ctx:
    log: list[str] = attrs.Factory(list)
    failing: set[str] = attrs.Factory(set)
    fault_acts: tuple[str, ...] = ()


@attrs.frozen
class Act:
    name: str

    async def execute(self, ctx: Ctx) -> None:
        ctx.log.append(self.name)
        if self.name in ctx.failing:
            raise ActFailed(self.name)


def _acts(names: Iterable[str]) -> tuple[Act, ...]:
    return tuple(Act(n) for n in names)


def _go(state: Phase, event: Go, ctx: Ctx) -> Transition[Phase, Act]:
    return goto(event.target, *_acts(event.acts))


def _hold(state: Phase, event: Hold, ctx: Ctx) -> Transition[Phase, Act]:
    return stay(*_acts(event.acts))


def _fail(state: Phase, event: Fault, ctx: Ctx) -> Transition[Phase, Act]:
    return goto(Phase.FAILED, Act("mark-failed"))


def _fault_in_failed(state: Phase, event: Fault, ctx: Ctx) -> Transition[Phase, Act]:
    return stay(*_acts(ctx.fault_acts))


def _fault_in_done(state: Phase, event: Fault, ctx: Ctx) -> Transition[Phase, Act]:
    return stay()


_SPEC: list[FsmSpec[Phase, Ev, Ctx, Act]] = []


def scripted_spec() -> FsmSpec[Phase, Ev, Ctx, Act]:
    if not _SPEC:
        b = FsmBuilder[Phase, Ev, Ctx, Act](
            states=Phase, events=Ev, initial=Phase.IDLE, name="scripted"
        )
        b.from_any().on(Go, _go).on(Hold, _hold)
        b.when(Phase.IDLE).on(Fault, _fail, to=[Phase.FAILED])
        b.when(Phase.WORKING).on(Fault, _fail, to=[Phase.FAILED])
        b.when(Phase.FAILED).on(Fault, _fault_in_failed)
        b.when(Phase.DONE).on(Fault, _fault_in_done)
        _SPEC.append(b.build())
    return _SPEC[0]


Step: TypeAlias = (
    EventLoopDirective[Ev] | BaseException | Callable[[], Awaitable[EventLoopDirective[Ev]]]
)


class Scripted(SelfSupervised[Phase, Ev, Ctx, Act]):
    def __init__(
        self,
        name: str = "scripted",
        script: Iterable[Step] = (),
        *,
        default: Step = TERMINATE,
        journal: Journal | None = None,
    ) -> None:
        super().__init__(name, journal=journal)
        self.script: deque[Step] = deque(script)
        self.default = default
        #: The state of every dispatch_state call, in order.
        self.dispatched: list[Phase] = []
        #: The state passed to every after_transition call, in order.
        self.after: list[Phase] = []
        self.completion_calls = 0

    @classmethod
    def fsm_spec(cls) -> FsmSpec[Phase, Ev, Ctx, Act]:
        return scripted_spec()

    def initial_context(self) -> Ctx:
        return Ctx()

    def event_for_action_error(self, msg: str) -> Ev:
        return Fault(msg)

    async def dispatch_state(self, state: Phase, ctx: Ctx) -> EventLoopDirective[Ev]:
        self.dispatched.append(state)
        step = self.script.popleft() if self.script else self.default
        if isinstance(step, BaseException):
            raise step
        if callable(step):
            return await step()
        return step

    async def after_transition(self, state: Phase, ctx: Ctx) -> None:
        self.after.append(state)

    async def write_completion_event(self) -> None:
        self.completion_calls += 1
        await super().write_completion_event()


class _Policy(ExternalEventPolicy[Phase, Ev]):
    modes: Mapping[Phase, ExternalEventMode]
    on_closed: Mapping[Phase, Ev | None]
    closed_queries: list[Phase]

    def external_event_mode(self, state: Phase) -> ExternalEventMode:
        return self.modes.get(state, ExternalEventMode.IGNORE)

    def on_external_event_channel_closed(self, state: Phase) -> Ev | None:
        self.closed_queries.append(state)
        return self.on_closed.get(state)


class ScriptedWithPolicy(_Policy, Scripted):
    """``Scripted`` plus an external-event policy given per state (``IGNORE`` when not
    listed; a closed channel maps to ``on_closed.get(state)``)."""

    def __init__(
        self,
        name: str = "scripted",
        script: Iterable[Step] = (),
        *,
        modes: Mapping[Phase, ExternalEventMode],
        on_closed: Mapping[Phase, Ev | None] | None = None,
        default: Step = TERMINATE,
        journal: Journal | None = None,
    ) -> None:
        Scripted.__init__(self, name, script, default=default, journal=journal)
        self.modes = modes
        self.on_closed = {} if on_closed is None else on_closed
        self.closed_queries = []


class HandlerScripted(_Policy, HandlerSupervised[Phase, Ev, Ctx, Act, str]):
    """A handler-supervised twin with a policy: BLOCK in IDLE, terminate elsewhere."""

    def __init__(self, name: str, handler: str, stage_id: str) -> None:
        super().__init__(name, handler, stage_id)
        self.modes = {Phase.IDLE: ExternalEventMode.BLOCK}
        self.on_closed = {Phase.IDLE: Go(Phase.DONE)}
        self.closed_queries = []

    @classmethod
    def fsm_spec(cls) -> FsmSpec[Phase, Ev, Ctx, Act]:
        return scripted_spec()

    def initial_context(self) -> Ctx:
        return Ctx()

    def event_for_action_error(self, msg: str) -> Ev:
        return Fault(msg)

    async def dispatch_state(self, state: Phase, ctx: Ctx) -> EventLoopDirective[Ev]:
        return TERMINATE
