"""The three behaviours of the seed runtime's tests, ported first and kept verbatim in
spirit: dispatch errors drive the FSM's failure path; a closed external channel maps to an
error event without delegating; IGNORE leaves the channel alone and POLL takes from it."""

from __future__ import annotations

import enum

import attrs

from fsmflow import FsmBuilder, FsmSpec, Transition, stay
from fsmflow.supervisor import (
    CONTINUE,
    ChannelBuilder,
    Continue,
    EventLoopDirective,
    ExitKind,
    ExternalEventMode,
    ExternalEventPolicy,
    HandlerSupervised,
    HandlerSupervisedWithExternalEvents,
    SelfSupervised,
    SelfSupervisedWithExternalEvents,
    Trigger,
)

from ._models import Ctx, Failed, HandlerSup, SelfSup


async def test_dispatch_error_drives_failure_path_self_supervised() -> None:
    supervisor = SelfSup("test-self-supervisor")
    ctx = Ctx()
    outcome = await supervisor.run(None, ctx)
    assert outcome.exit is ExitKind.TERMINATED
    assert isinstance(outcome.final_state, Failed)
    assert "dispatch_state boom" in outcome.final_state.reason
    assert "Running" in outcome.final_state.reason
    assert ctx.failure_actions_executed == 1
    assert supervisor.completion_writes == 1


async def test_dispatch_error_drives_failure_path_handler_supervised() -> None:
    supervisor = HandlerSup("test-handler-supervisor")
    ctx = Ctx()
    outcome = await supervisor.run(None, ctx)
    assert outcome.exit is ExitKind.TERMINATED
    assert ctx.failure_actions_executed == 1
    assert supervisor.completion_writes == 1
    assert supervisor.writer_id == "stage:1"


class XState(enum.Enum):
    CREATED = "created"
    MATERIALIZING = "materializing"
    RUNNING = "running"
    DRAINED = "drained"


@attrs.frozen
class XFailed:
    reason: str


@attrs.frozen
class Initialize:
    pass


@attrs.frozen
class XError:
    message: str


XEvent = Initialize | XError


class Noop:
    async def execute(self, ctx: None) -> None:
        return None


def _ignore(state: XState, event: XEvent, ctx: None) -> Transition[XState, Noop]:
    return stay()


def x_spec() -> FsmSpec[XState, XEvent, None, Noop]:
    builder = FsmBuilder[XState, XEvent, None, Noop](
        states=XState, events=XEvent, initial=XState.CREATED, name="x"
    )
    builder.on_unhandled(_ignore)
    return builder.build()


class _Policy(ExternalEventPolicy[XState, XEvent]):
    def external_event_mode(self, state: XState) -> ExternalEventMode:
        match state:
            case XState.CREATED:
                return ExternalEventMode.BLOCK
            case XState.RUNNING:
                return ExternalEventMode.POLL
            case _:
                return ExternalEventMode.IGNORE

    def on_external_event_channel_closed(self, state: XState) -> XEvent | None:
        if state in (XState.DRAINED,):
            return None
        return XError("External control channel closed")


class XSelf(_Policy, SelfSupervised[XState, XEvent, None, Noop]):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.dispatch_calls = 0

    @classmethod
    def fsm_spec(cls) -> FsmSpec[XState, XEvent, None, Noop]:
        return x_spec()

    async def dispatch_state(self, state: XState, ctx: None) -> EventLoopDirective[XEvent]:
        self.dispatch_calls += 1
        return CONTINUE

    def event_for_action_error(self, msg: str) -> XEvent:
        return XError(msg)


class XHandler(_Policy, HandlerSupervised[XState, XEvent, None, Noop, None]):
    def __init__(self, name: str) -> None:
        super().__init__(name, None, "1")
        self.dispatch_calls = 0

    @classmethod
    def fsm_spec(cls) -> FsmSpec[XState, XEvent, None, Noop]:
        return x_spec()

    async def dispatch_state(self, state: XState, ctx: None) -> EventLoopDirective[XEvent]:
        self.dispatch_calls += 1
        return CONTINUE

    def event_for_action_error(self, msg: str) -> XEvent:
        return XError(msg)


async def test_disconnected_channel_maps_to_error_event() -> None:
    sender, receiver, watcher = ChannelBuilder[XEvent, XState]().build(XState.CREATED)
    sender.close()
    inner = XSelf("test-self-with-external-events")
    sup = SelfSupervisedWithExternalEvents(inner, receiver, watcher)
    created = await sup.dispatch_state(XState.CREATED, None)
    assert isinstance(created, Trigger) and isinstance(created.event, XError)
    running = await sup.dispatch_state(XState.RUNNING, None)
    assert isinstance(running, Trigger) and isinstance(running.event, XError)
    assert inner.dispatch_calls == 0

    sender2, receiver2, watcher2 = ChannelBuilder[XEvent, XState]().build(XState.CREATED)
    sender2.close()
    handler_inner = XHandler("test-handler-with-external-events")
    handler_sup = HandlerSupervisedWithExternalEvents(handler_inner, receiver2, watcher2)
    created = await handler_sup.dispatch_state(XState.CREATED, None)
    assert isinstance(created, Trigger) and isinstance(created.event, XError)
    running = await handler_sup.dispatch_state(XState.RUNNING, None)
    assert isinstance(running, Trigger) and isinstance(running.event, XError)
    assert handler_inner.dispatch_calls == 0
    assert handler_sup.stage_id == "1"
    receiver.close()
    receiver2.close()


async def test_ignore_mode_does_not_drain_channel() -> None:
    sender, receiver, watcher = ChannelBuilder[XEvent, XState]().build(XState.MATERIALIZING)
    await sender.send(Initialize())
    inner = XSelf("test-self-ignore-mode")
    sup = SelfSupervisedWithExternalEvents(inner, receiver, watcher)
    ignored = await sup.dispatch_state(XState.MATERIALIZING, None)
    assert isinstance(ignored, Continue)
    assert inner.dispatch_calls == 1
    queued = await sup.dispatch_state(XState.RUNNING, None)
    assert queued == Trigger(Initialize())
    assert inner.dispatch_calls == 1, "poll mode must not delegate when an event is ready"
    sender.close()
    receiver.close()
