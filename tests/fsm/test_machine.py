"""StateMachine behaviour: dispatch, hooks and the order of actions, the unhandled-event
policy, and every way a handler can fail while leaving the state untouched."""

from __future__ import annotations

import enum
import re
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeAlias, TypeVar

import attrs
import pytest

from fsmflow.fsm import (
    STAY,
    ActionError,
    FsmBuilder,
    FsmError,
    HandlerError,
    StateMachine,
    Transition,
    UndeclaredTargetError,
    UnhandledEventError,
    VariantSet,
    goto,
    stay,
    variant_name,
)

# -- the domain: a job runner with data-carrying states and events ------------------------


@attrs.frozen
class Idle:
    pass


@attrs.frozen
class Running:
    job: str


@attrs.frozen
class Failed:
    reason: str


@attrs.frozen
class Paused:
    """Not a declared state."""


@attrs.frozen
class Start:
    job: str


@attrs.frozen
class Finish:
    pass


@attrs.frozen
class Crash:
    reason: str


@attrs.frozen
class Reset:
    pass


@attrs.frozen
class Poke:
    """Declared, but no handler covers it."""


@attrs.frozen
class Stranger:
    """Not a declared event."""


Job: TypeAlias = Idle | Running | Failed
JobEvent: TypeAlias = Start | Finish | Crash | Reset | Poke


@attrs.define
class Ctx:
    #: What the engine called, in order.
    calls: list[str] = attrs.Factory(list)
    #: What executed actions did, in order.
    log: list[str] = attrs.Factory(list)


@attrs.frozen
class Note:
    text: str

    async def execute(self, ctx: Ctx) -> None:
        ctx.log.append(self.text)


@attrs.frozen
class Explode:
    text: str

    async def execute(self, ctx: Ctx) -> None:
        raise RuntimeError(self.text)


Act: TypeAlias = Note | Explode
S = TypeVar("S")
JobResult: TypeAlias = Transition[Job, Act]
JobBuilder: TypeAlias = FsmBuilder[Job, JobEvent, Ctx, Act]
JobMachine: TypeAlias = StateMachine[Job, JobEvent, Ctx, Act]


def state_of(machine: StateMachine[S, Any, Any, Any]) -> S:
    """The current state, read through a call so that mypy does not narrow it."""
    return machine.state


def untyped(value: object) -> Any:
    """Pass a deliberately wrong value past mypy to test runtime checks."""
    return value


def job_builder() -> JobBuilder:
    return FsmBuilder[Job, JobEvent, Ctx, Act](
        states=Job, events=JobEvent, initial=Idle, name="jobs"
    )


def start(state: Idle, event: Start, ctx: Ctx) -> JobResult:
    ctx.calls.append(f"start {event.job}")
    return goto(Running(event.job), Note(f"started {event.job}"))


def finish(state: Running, event: Finish, ctx: Ctx) -> JobResult:
    ctx.calls.append("finish")
    return goto(Idle(), Note("own 1"), Note("own 2"))


def crash(state: Job, event: Crash, ctx: Ctx) -> JobResult:
    ctx.calls.append(f"crash in {type(state).__name__}")
    return goto(Failed(event.reason), Note(f"crashed: {event.reason}"))


def reset(state: Failed, event: Reset, ctx: Ctx) -> JobResult:
    ctx.calls.append(f"reset {state.reason}")
    return goto(Idle(), Note(f"cleared {state.reason}"))


def basic_builder() -> JobBuilder:
    """Idle -Start-> Running -Finish-> Idle; Crash anywhere -> Failed -Reset-> Idle."""
    builder = job_builder()
    builder.when(Idle).on(Start, start, to=[Running])
    builder.when(Running).on(Finish, finish, to=[Idle])
    builder.when(Failed).on(Reset, reset, to=[Idle])
    builder.from_any().on(Crash, crash, to=[Failed])
    return builder


# -- basic dispatch -----------------------------------------------------------------------


class Light(enum.Enum):
    OFF = "off"
    ON = "on"


class Switch(enum.Enum):
    FLIP = "flip"
    BREAK = "break"


def flip(state: Light, event: Switch, ctx: Ctx) -> Transition[Light, Act]:
    ctx.calls.append(f"flip {state.name}")
    target = Light.ON if state is Light.OFF else Light.OFF
    return goto(target, Note(f"now {target.name}"))


def light_machine(*, strict: bool = False) -> StateMachine[Light, Switch, Ctx, Act]:
    builder = FsmBuilder[Light, Switch, Ctx, Act](
        states=Light, events=Switch, initial=Light.OFF, name="light"
    )
    builder.when(Light.OFF).on(Switch.FLIP, flip, to=[Light.ON])
    builder.when(Light.ON).on(Switch.FLIP, flip, to=[Light.OFF])
    if strict:
        builder.strict()
    return builder.build().new_machine(Light.OFF)


async def test_enum_machine_transitions_and_returns_actions() -> None:
    machine = light_machine()
    ctx = Ctx()
    assert state_of(machine) is Light.OFF
    assert await machine.handle(Switch.FLIP, ctx) == [Note("now ON")]
    assert state_of(machine) is Light.ON
    assert machine.state_variant is Light.ON
    assert await machine.handle(Switch.FLIP, ctx) == [Note("now OFF")]
    assert state_of(machine) is Light.OFF
    assert ctx.calls == ["flip OFF", "flip ON"]
    assert ctx.log == []  # the machine never runs actions itself


async def test_one_handler_serves_every_value_of_a_data_carrying_variant() -> None:
    spec = basic_builder().build()
    for reason in ("disk full", "network down"):
        machine = spec.new_machine(Failed(reason))
        ctx = Ctx()
        assert await machine.handle(Reset(), ctx) == [Note(f"cleared {reason}")]
        assert machine.state == Idle()
        assert ctx.calls == [f"reset {reason}"]


async def test_handlers_receive_the_state_and_event_values() -> None:
    machine = basic_builder().build().new_machine(Idle())
    ctx = Ctx()
    assert await machine.handle(Start("build"), ctx) == [Note("started build")]
    assert state_of(machine) == Running("build")
    assert machine.state_variant is Running
    assert await machine.handle(Crash("oom"), ctx) == [Note("crashed: oom")]
    assert state_of(machine) == Failed("oom")
    assert ctx.calls == ["start build", "crash in Running"]


# -- sync and async handlers and hooks ----------------------------------------------------


async def start_async(state: Idle, event: Start, ctx: Ctx) -> JobResult:
    return start(state, event, ctx)


class StartObject:
    def __call__(self, state: Idle, event: Start, ctx: Ctx) -> JobResult:
        return start(state, event, ctx)


class StartAsyncObject:
    async def __call__(self, state: Idle, event: Start, ctx: Ctx) -> JobResult:
        return start(state, event, ctx)


def start_returning_awaitable(state: Idle, event: Start, ctx: Ctx) -> Awaitable[JobResult]:
    """Sync to look at, async in effect: the engine must still await its result."""
    return start_async(state, event, ctx)


def enter_running(state: Running, ctx: Ctx) -> list[Act]:
    ctx.calls.append(f"enter {state.job}")
    return [Note(f"enter {state.job}")]


async def enter_running_async(state: Running, ctx: Ctx) -> list[Act]:
    return enter_running(state, ctx)


class EnterObject:
    def __call__(self, state: Running, ctx: Ctx) -> list[Act]:
        return enter_running(state, ctx)


class EnterAsyncObject:
    async def __call__(self, state: Running, ctx: Ctx) -> list[Act]:
        return enter_running(state, ctx)


def enter_returning_awaitable(state: Running, ctx: Ctx) -> Awaitable[list[Act]]:
    return enter_running_async(state, ctx)


HANDLER_FLAVOURS: dict[str, Callable[[Idle, Start, Ctx], Any]] = {
    "sync function": start,
    "async function": start_async,
    "sync callable object": StartObject(),
    "async callable object": StartAsyncObject(),
    "sync function returning an awaitable": start_returning_awaitable,
}
HOOK_FLAVOURS: dict[str, Callable[[Running, Ctx], Any]] = {
    "sync function": enter_running,
    "async function": enter_running_async,
    "sync callable object": EnterObject(),
    "async callable object": EnterAsyncObject(),
    "sync function returning an awaitable": enter_returning_awaitable,
}


@pytest.mark.parametrize("handler_flavour", list(HANDLER_FLAVOURS))
@pytest.mark.parametrize("hook_flavour", list(HOOK_FLAVOURS))
async def test_every_flavour_of_handler_and_hook_behaves_the_same(
    handler_flavour: str, hook_flavour: str
) -> None:
    builder = job_builder()
    builder.when(Idle).on(Start, HANDLER_FLAVOURS[handler_flavour], to=[Running])
    builder.when(Running).on_entry(HOOK_FLAVOURS[hook_flavour])
    builder.from_any().on(Finish, lambda s, e, c: goto(Idle()))
    builder.from_any().on(Crash, crash)
    machine = builder.build().new_machine(Idle())
    ctx = Ctx()
    actions = await machine.handle(Start("lint"), ctx)
    assert actions == [Note("enter lint"), Note("started lint")]
    assert machine.state == Running("lint")
    assert ctx.calls == ["start lint", "enter lint"]


# -- hooks and the order of actions ---------------------------------------------------------


def order_builder() -> JobBuilder:
    """Two exit hooks on Running, two entry hooks on Idle and two on Running."""

    def exit_first(state: Running, ctx: Ctx) -> list[Act]:
        ctx.calls.append(f"exit first {state.job}")
        return [Note(f"exit 1 {state.job}")]

    async def exit_second(state: Running, ctx: Ctx) -> list[Act]:
        ctx.calls.append(f"exit second {state.job}")
        return [Note(f"exit 2a {state.job}"), Note(f"exit 2b {state.job}")]

    def enter_idle(state: Idle, ctx: Ctx) -> list[Act]:
        ctx.calls.append("enter idle")
        return [Note("enter idle")]

    def enter_idle_quietly(state: Idle, ctx: Ctx) -> None:
        ctx.calls.append("enter idle quietly")

    async def enter_running_first(state: Running, ctx: Ctx) -> None:
        ctx.calls.append(f"enter first {state.job}")

    def restart(state: Running, event: Start, ctx: Ctx) -> JobResult:
        ctx.calls.append(f"restart {state.job} as {event.job}")
        return goto(Running(event.job), Note("own restart"))

    def keep(state: Running, event: Poke, ctx: Ctx) -> JobResult:
        ctx.calls.append("keep")
        return stay(Note("own keep 1"), Note("own keep 2"))

    builder = basic_builder()
    builder.when(Running).on_exit(exit_first).on_exit(exit_second)
    builder.on_entry(Idle, enter_idle)
    builder.on_entry(Idle, enter_idle_quietly)
    builder.when(Running).on_entry(enter_running_first).on_entry(enter_running)
    builder.when(Running).on(Start, restart, to=[Running]).on(Poke, keep)
    return builder


async def test_actions_are_exit_hooks_then_entry_hooks_then_the_transitions_own() -> None:
    machine = order_builder().build().new_machine(Running("a"))
    ctx = Ctx()
    actions = await machine.handle(Finish(), ctx)
    assert actions == [
        Note("exit 1 a"),
        Note("exit 2a a"),
        Note("exit 2b a"),
        Note("enter idle"),
        Note("own 1"),
        Note("own 2"),
    ]
    # The handler decides first; hooks run in registration order, exits before entries.
    assert ctx.calls == [
        "finish",
        "exit first a",
        "exit second a",
        "enter idle",
        "enter idle quietly",
    ]
    assert machine.state == Idle()
    await machine.execute_actions(actions, ctx)
    assert ctx.log == ["exit 1 a", "exit 2a a", "exit 2b a", "enter idle", "own 1", "own 2"]


async def test_a_self_transition_leaves_and_reenters_the_state() -> None:
    machine = order_builder().build().new_machine(Running("a"))
    ctx = Ctx()
    actions = await machine.handle(Start("b"), ctx)
    assert actions == [
        Note("exit 1 a"),
        Note("exit 2a a"),
        Note("exit 2b a"),
        Note("enter b"),
        Note("own restart"),
    ]
    # Exit hooks see the state being left, entry hooks the state being entered.
    assert ctx.calls == [
        "restart a as b",
        "exit first a",
        "exit second a",
        "enter first b",
        "enter b",
    ]
    assert machine.state == Running("b")


async def test_a_self_transition_to_the_identical_value_still_runs_hooks() -> None:
    builder = job_builder()
    builder.from_any().on(Reset, lambda s, e, c: goto(s, Note("own")))
    builder.on_exit(Idle, lambda s, c: [Note("exit")])
    builder.on_entry(Idle, lambda s, c: [Note("enter")])
    builder.from_any().on(Start, lambda s, e, c: goto(Running(e.job)))
    builder.from_any().on(Crash, crash)
    idle = Idle()
    machine = builder.build().new_machine(idle)
    assert await machine.handle(Reset(), Ctx()) == [Note("exit"), Note("enter"), Note("own")]
    assert machine.state is idle


async def test_stay_runs_no_hooks_and_keeps_the_state_value() -> None:
    running = Running("a")
    machine = order_builder().build().new_machine(running)
    ctx = Ctx()
    assert await machine.handle(Poke(), ctx) == [Note("own keep 1"), Note("own keep 2")]
    assert ctx.calls == ["keep"]
    assert machine.state is running


async def test_hooks_of_states_not_involved_do_not_run() -> None:
    machine = order_builder().build().new_machine(Idle())
    ctx = Ctx()
    # Idle has entry hooks only (nothing on exit); Failed has none.
    assert await machine.handle(Crash("x"), ctx) == [Note("crashed: x")]
    assert ctx.calls == ["crash in Idle"]


# -- wildcards and the unhandled-event policy ----------------------------------------------


async def test_wildcard_handlers_apply_in_every_state_and_specific_handlers_win() -> None:
    def crash_while_failed(state: Failed, event: Crash, ctx: Ctx) -> JobResult:
        ctx.calls.append("already failed")
        return stay(Note(f"also {event.reason}"))

    builder = basic_builder()
    builder.when(Failed).on(Crash, crash_while_failed)
    spec = builder.build()
    for initial in (Idle(), Running("j")):
        machine = spec.new_machine(initial)
        ctx = Ctx()
        assert await machine.handle(Crash("boom"), ctx) == [Note("crashed: boom")]
        assert machine.state == Failed("boom")
        assert ctx.calls == [f"crash in {type(initial).__name__}"]
    ctx = Ctx()
    machine = spec.new_machine(Failed("first"))
    assert await machine.handle(Crash("second"), ctx) == [Note("also second")]
    assert machine.state == Failed("first")
    assert ctx.calls == ["already failed"]


async def test_unhandled_events_are_ignored_by_default() -> None:
    idle = Idle()
    machine = basic_builder().build().new_machine(idle)
    ctx = Ctx()
    assert await machine.handle(Finish(), ctx) == []
    assert await machine.handle(Poke(), ctx) == []
    assert machine.state is idle
    assert ctx.calls == []


async def test_unhandled_events_raise_in_strict_mode() -> None:
    machine = basic_builder().strict().build().new_machine(Running("j"))
    with pytest.raises(UnhandledEventError) as info:
        await machine.handle(Reset(), Ctx())
    error = info.value
    assert (error.spec_name, error.state, error.event) == ("jobs", "Running", "Reset")
    assert str(error) == (
        "jobs: no handler for event Reset in state Running (strict mode); register one with "
        ".when(Running).on(Reset, ...) or .from_any().on(Reset, ...)"
    )
    assert machine.state == Running("j")

    light = light_machine(strict=True)
    with pytest.raises(UnhandledEventError, match="no handler for event BREAK in state OFF"):
        await light.handle(Switch.BREAK, Ctx())


@pytest.mark.parametrize("strict", [False, True])
async def test_on_unhandled_handles_every_uncovered_pair(strict: bool) -> None:
    def fallback(state: Job, event: JobEvent, ctx: Ctx) -> JobResult:
        ctx.calls.append(f"fallback {type(state).__name__} {type(event).__name__}")
        return goto(Failed(f"unexpected {type(event).__name__}"), Note("fallback"))

    builder = basic_builder().on_unhandled(fallback, to=[Failed])
    builder.on_exit(Idle, lambda s, c: [Note("exit idle")])
    if strict:
        builder.strict()
    machine = builder.build().new_machine(Idle())
    ctx = Ctx()
    assert await machine.handle(Poke(), ctx) == [Note("exit idle"), Note("fallback")]
    assert machine.state == Failed("unexpected Poke")
    # Covered pairs still go to their own handlers.
    assert await machine.handle(Reset(), ctx) == [Note("cleared unexpected Poke")]
    assert ctx.calls == ["fallback Idle Poke", "reset unexpected Poke"]


async def test_on_unhandled_targets_are_checked() -> None:
    builder = basic_builder().on_unhandled(lambda s, e, c: goto(Idle()), to=[Failed])
    machine = builder.build().new_machine(Running("j"))
    with pytest.raises(UndeclaredTargetError, match="may only go to Failed"):
        await machine.handle(Poke(), Ctx())
    assert machine.state == Running("j")


@pytest.mark.parametrize("policy", ["ignore", "strict", "handler"])
@pytest.mark.parametrize("event", [Stranger(), Paused(), Light.ON, "Start", None])
async def test_an_event_of_an_undeclared_type_is_an_error(policy: str, event: object) -> None:
    called: list[object] = []

    def fallback(state: Job, event: JobEvent, ctx: Ctx) -> JobResult:
        called.append(event)
        return stay()

    builder = basic_builder()
    if policy == "strict":
        builder.strict()
    elif policy == "handler":
        builder.on_unhandled(fallback)
    machine = builder.build().new_machine(Idle())
    with pytest.raises(FsmError) as info:
        await machine.handle(untyped(event), Ctx())
    assert type(info.value) is FsmError
    assert str(info.value) == (
        f"jobs: {event!r} is not a value of the declared event type "
        "Start | Finish | Crash | Reset | Poke"
    )
    assert called == []
    assert machine.state == Idle()


@pytest.mark.parametrize("event", [Stranger(), Light.ON, "FLIP"])
async def test_an_enum_machine_rejects_undeclared_events(event: object) -> None:
    machine = light_machine()
    with pytest.raises(FsmError, match="is not a value of the declared event type Switch"):
        await machine.handle(untyped(event), Ctx())
    assert machine.state is Light.OFF


# -- failing handlers and hooks ------------------------------------------------------------


class Oops(Exception):
    pass


def failing(state: Job, event: JobEvent, ctx: Ctx) -> JobResult:
    ctx.calls.append("failing")
    raise Oops("sync")


async def failing_async(state: Job, event: JobEvent, ctx: Ctx) -> JobResult:
    ctx.calls.append("failing")
    raise Oops("async")


class FailingAsyncObject:
    async def __call__(self, state: Job, event: JobEvent, ctx: Ctx) -> JobResult:
        raise Oops("object")


def failing_awaitable(state: Job, event: JobEvent, ctx: Ctx) -> Awaitable[JobResult]:
    return failing_async(state, event, ctx)


@pytest.mark.parametrize(
    ("handler", "name"),
    [
        (failing, "failing"),
        (failing_async, "failing_async"),
        (FailingAsyncObject(), "FailingAsyncObject instance"),
        (failing_awaitable, "failing_awaitable"),
    ],
)
@pytest.mark.parametrize("registration", ["when", "from_any", "on_unhandled"])
async def test_a_raising_handler_becomes_handler_error_and_leaves_the_state(
    handler: Callable[[Job, JobEvent, Ctx], Any], name: str, registration: str
) -> None:
    builder = basic_builder()
    builder.on_exit(Running, lambda s, c: [Note("exit")])
    if registration == "when":
        builder.when(Running).on(Poke, handler)
    elif registration == "from_any":
        builder.from_any().on(Poke, handler)
    else:
        builder.on_unhandled(handler)
    running = Running("j")
    machine = builder.build().new_machine(running)
    with pytest.raises(HandlerError) as info:
        await machine.handle(Poke(), Ctx())
    error = info.value
    assert isinstance(error.__cause__, Oops)
    assert (error.spec_name, error.handler, error.state, error.event) == (
        "jobs",
        name,
        "Running",
        "Poke",
    )
    assert str(error) == f"jobs: handler {name} failed in state Running on Poke"
    assert machine.state is running


@pytest.mark.parametrize("kind", ["exit", "entry"])
@pytest.mark.parametrize("is_async", [False, True])
async def test_a_raising_hook_becomes_handler_error_and_leaves_the_state(
    kind: str, is_async: bool
) -> None:
    def hook(state: Job, ctx: Ctx) -> list[Act]:
        raise Oops(kind)

    async def hook_async(state: Job, ctx: Ctx) -> list[Act]:
        raise Oops(kind)

    chosen = hook_async if is_async else hook
    builder = basic_builder()
    if kind == "exit":
        builder.on_exit(Idle, chosen)
    else:
        builder.on_entry(Running, chosen)
    machine = builder.build().new_machine(Idle())
    ctx = Ctx()
    with pytest.raises(HandlerError) as info:
        await machine.handle(Start("j"), ctx)
    error = info.value
    assert isinstance(error.__cause__, Oops)
    hooked_state = "Idle" if kind == "exit" else "Running"
    assert error.handler == f"{kind} hook {chosen.__qualname__}"
    assert (error.state, error.event) == (hooked_state, "Start")
    assert str(error).startswith(f"jobs: handler {kind} hook ")
    assert machine.state == Idle()
    assert ctx.calls == ["start j"]


@pytest.mark.parametrize("returned", [None, Idle(), "stay", [STAY]])
@pytest.mark.parametrize("is_async", [False, True])
async def test_a_handler_returning_a_non_transition_is_a_handler_error(
    returned: object, is_async: bool
) -> None:
    def wrong(state: Idle, event: Poke, ctx: Ctx) -> Any:
        return returned

    async def wrong_async(state: Idle, event: Poke, ctx: Ctx) -> Any:
        return returned

    builder = basic_builder()
    builder.when(Idle).on(Poke, wrong_async if is_async else wrong)
    machine = builder.build().new_machine(Idle())
    with pytest.raises(HandlerError) as info:
        await machine.handle(Poke(), Ctx())
    cause = info.value.__cause__
    assert isinstance(cause, TypeError)
    assert f"returned {returned!r}; it must return a Transition" in str(cause)
    assert "goto(state, *actions) or stay(*actions)" in str(cause)
    assert machine.state == Idle()


async def test_an_awaitable_resolving_to_a_non_transition_is_a_handler_error() -> None:
    async def nothing() -> None:
        return None

    builder = basic_builder()
    builder.when(Idle).on(Poke, untyped(lambda s, e, c: nothing()))
    machine = builder.build().new_machine(Idle())
    with pytest.raises(HandlerError, match=r"handler .*<lambda> failed in state Idle on Poke"):
        await machine.handle(Poke(), Ctx())


async def test_a_target_outside_to_is_an_undeclared_target_error() -> None:
    hooks: list[str] = []

    def hook(state: Job, ctx: Ctx) -> None:
        hooks.append(f"hook {state}")

    builder = basic_builder()
    builder.when(Running).on(
        Poke, lambda s, e, c: goto(Idle(), Note("never")), to=[Running, Failed]
    )
    builder.on_exit(Running, hook)
    builder.on_entry(Idle, hook)
    running = Running("j")
    machine = builder.build().new_machine(running)
    with pytest.raises(UndeclaredTargetError) as info:
        await machine.handle(Poke(), Ctx())
    error = info.value
    assert error.handler.endswith("<lambda>")
    assert (error.spec_name, error.state, error.event, error.target) == (
        "jobs",
        "Running",
        "Poke",
        "Idle",
    )
    assert str(error).endswith(
        "for (Running, Poke) returned a Idle state, but it may only go to Running | Failed; "
        "add Idle to its to= or fix the handler"
    )
    assert machine.state is running
    assert hooks == []


@pytest.mark.parametrize("to", [None, [Idle]])
async def test_returning_a_state_of_an_undeclared_type_is_an_error(to: list[Any] | None) -> None:
    builder = basic_builder()
    builder.when(Idle).on(Poke, lambda s, e, c: goto(untyped(Paused())), to=to)
    machine = builder.build().new_machine(Idle())
    with pytest.raises(UndeclaredTargetError) as info:
        await machine.handle(Poke(), Ctx())
    assert info.value.target == "Paused()" and not info.value.declared
    assert (
        "returned Paused(), which is not a value of the declared state type "
        "Idle | Running | Failed" in str(info.value)
    )
    assert machine.state == Idle()


async def test_an_enum_machine_rejects_members_of_another_enum_as_targets() -> None:
    builder = FsmBuilder[Light, Switch, Ctx, Act](
        states=Light, events=Switch, initial=Light.OFF, name="light"
    )
    builder.from_any().on(Switch.FLIP, lambda s, e, c: goto(untyped(Switch.BREAK)))
    machine = builder.build().new_machine(Light.OFF)
    with pytest.raises(
        UndeclaredTargetError,
        match=re.escape("returned <Switch.BREAK: 'break'>, which is not a value of the declared"),
    ):
        await machine.handle(Switch.FLIP, Ctx())
    assert machine.state is Light.OFF


# -- executing actions ----------------------------------------------------------------------


async def test_execute_actions_runs_in_order() -> None:
    machine = basic_builder().build().new_machine(Idle())
    ctx = Ctx()

    def generated() -> Iterator[Act]:
        yield Note("one")
        yield Note("two")

    await machine.execute_actions([Note("zero")], ctx)
    await machine.execute_actions(generated(), ctx)
    await machine.execute_actions([], ctx)
    assert ctx.log == ["zero", "one", "two"]


async def test_the_first_failing_action_raises_action_error_and_skips_the_rest() -> None:
    machine = basic_builder().build().new_machine(Idle())
    ctx = Ctx()
    actions: list[Act] = [Note("before"), Explode("kaboom"), Note("after"), Explode("later")]
    with pytest.raises(ActionError) as info:
        await machine.execute_actions(actions, ctx)
    error = info.value
    assert error.index == 1
    assert error.action == Explode("kaboom")
    assert isinstance(error.__cause__, RuntimeError)
    assert str(error.__cause__) == "kaboom"
    assert str(error) == "action #1 Explode(text='kaboom') failed: RuntimeError: kaboom"
    assert ctx.log == ["before"]


# -- values and introspection ---------------------------------------------------------------


def test_goto_and_stay_build_transitions() -> None:
    assert goto(Idle(), Note("a"), Note("b")) == Transition(Idle(), (Note("a"), Note("b")))
    assert goto(Idle()).actions == ()
    kept = stay(Note("a"))
    assert kept.next_state is STAY
    assert kept.actions == (Note("a"),)
    assert repr(STAY) == "STAY"
    assert repr(stay()) == "Transition(next_state=STAY, actions=())"


def test_variant_helpers() -> None:
    assert variant_name(Light.ON) == "ON"
    assert variant_name(Running) == "Running"
    assert variant_name("odd") == "'odd'"
    classes = VariantSet("Idle | Running", (Idle, Running), is_enum=False)
    assert classes.variant_of(Running("x")) is Running
    assert classes.key_function()(Running("x")) is Running
    assert classes.contains(Idle)
    assert not classes.contains(Idle())
    members = VariantSet("Light", tuple(Light), is_enum=True)
    assert members.variant_of(Light.ON) is Light.ON
    assert members.key_function()(Light.ON) is Light.ON


def test_machine_introspection() -> None:
    spec = basic_builder().build()
    machine = spec.new_machine(Running("j"))
    assert machine.spec is spec
    assert machine.state == Running("j")
    assert machine.state_variant is Running
    assert repr(machine) == "<StateMachine 'jobs' in Running(job='j')>"
    assert machine.timeout_deadline() is None
    reset_handler = spec.handler_for(Failed, Reset)
    assert reset_handler is not None
    assert reset_handler.function is reset
    crash_handler = spec.handler_for(Running, Crash)
    assert crash_handler is not None
    assert crash_handler.function is crash
    assert spec.handler_for(Running, Reset) is None
    assert spec.timeout_for(Running) is None
    assert spec.state_names() == ("Idle", "Running", "Failed")


def test_machines_from_one_spec_are_independent() -> None:
    spec = basic_builder().build()
    first = spec.new_machine(Idle())
    second = spec.new_machine(Failed("x"))
    assert first.state == Idle()
    assert second.state == Failed("x")
    assert first.spec is second.spec
