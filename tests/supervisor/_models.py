"""Shared test models: the seed's Running/Failed machine and the external-events machine."""

from __future__ import annotations

import attrs

from fsmflow import FsmBuilder, FsmSpec, Transition, goto, stay
from fsmflow.supervisor import (
    TERMINATE,
    EventLoopDirective,
    HandlerSupervised,
    SelfSupervised,
    Supervisor,
)


@attrs.frozen
class Running:
    pass


@attrs.frozen
class Failed:
    reason: str


TestState = Running | Failed


@attrs.frozen
class Error:
    message: str


@attrs.define
class Ctx:
    failure_actions_executed: int = 0


@attrs.frozen
class MarkFailed:
    async def execute(self, ctx: Ctx) -> None:
        ctx.failure_actions_executed += 1


def _fail(state: Running, event: Error, ctx: Ctx) -> Transition[TestState, MarkFailed]:
    return goto(Failed(event.message), MarkFailed())


def _stay_failed(state: Failed, event: Error, ctx: Ctx) -> Transition[TestState, MarkFailed]:
    return stay()


_SPEC: FsmSpec[TestState, Error, Ctx, MarkFailed] | None = None


def test_spec() -> FsmSpec[TestState, Error, Ctx, MarkFailed]:
    global _SPEC
    if _SPEC is None:
        builder = FsmBuilder[TestState, Error, Ctx, MarkFailed](
            states=TestState, events=Error, initial=Running, name="seed-test"
        )
        builder.when(Running).on(Error, _fail, to=[Failed])
        builder.when(Failed).on(Error, _stay_failed)
        _SPEC = builder.build()
    return _SPEC


class _SeedBehaviour(Supervisor[TestState, Error, Ctx, MarkFailed]):
    """What both seed supervisors do: fail in Running, stop in Failed, count completions.

    The seed tests the same behaviour under both supervisor kinds; only identity differs.
    """

    completion_writes = 0

    @classmethod
    def fsm_spec(cls) -> FsmSpec[TestState, Error, Ctx, MarkFailed]:
        return test_spec()

    async def dispatch_state(self, state: TestState, ctx: Ctx) -> EventLoopDirective[Error]:
        match state:
            case Running():
                raise RuntimeError("dispatch_state boom")
            case Failed():
                return TERMINATE

    def event_for_action_error(self, msg: str) -> Error:
        return Error(msg)

    async def write_completion_event(self) -> None:
        self.completion_writes += 1


class SelfSup(_SeedBehaviour, SelfSupervised[TestState, Error, Ctx, MarkFailed]):
    pass


class HandlerSup(_SeedBehaviour, HandlerSupervised[TestState, Error, Ctx, MarkFailed, None]):
    def __init__(self, name: str) -> None:
        super().__init__(name, None, "1")
