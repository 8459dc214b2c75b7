"""State timeouts, driven by trio's MockClock: never the wall clock.

A state's timer starts when the state is entered (for the initial state: at the first
``check_timeout``/``timeout_deadline`` call); ``check_timeout`` fires the handler once the
state has lasted its timeout, and firing restarts the timer, even when the handler stays.
"""

from __future__ import annotations

import enum
from typing import Any, TypeAlias, TypeVar

import attrs
import pytest
import trio
import trio.testing

from fsmflow.fsm import (
    FsmBuilder,
    HandlerError,
    StateMachine,
    Transition,
    UndeclaredTargetError,
    goto,
    stay,
)

S = TypeVar("S")


class Phase(enum.Enum):
    WAITING = "waiting"
    ACTIVE = "active"
    DONE = "done"


class Signal(enum.Enum):
    GO = "go"
    AGAIN = "again"
    NUDGE = "nudge"
    STOP = "stop"


@attrs.define
class Ctx:
    calls: list[str] = attrs.Factory(list)


@attrs.frozen
class Note:
    text: str

    async def execute(self, ctx: Ctx) -> None:
        ctx.calls.append(f"ran {self.text}")


PhaseResult: TypeAlias = Transition[Phase, Note]
PhaseBuilder: TypeAlias = FsmBuilder[Phase, Signal, Ctx, Note]
PhaseMachine: TypeAlias = StateMachine[Phase, Signal, Ctx, Note]

WAIT = 5.0
ACTIVE_PERIOD = 10.0


def state_of(machine: StateMachine[S, Any, Any, Any]) -> S:
    """The current state, read through a call so that mypy does not narrow it."""
    return machine.state


def give_up_waiting(state: Phase, ctx: Ctx) -> PhaseResult:
    ctx.calls.append(f"timeout {state.name}")
    return goto(Phase.ACTIVE, Note("waited long enough"))


async def tick(state: Phase, ctx: Ctx) -> PhaseResult:
    ctx.calls.append(f"timeout {state.name}")
    return stay(Note("tick"))


def go(state: Phase, event: Signal, ctx: Ctx) -> PhaseResult:
    return goto(Phase.WAITING)


def again(state: Phase, event: Signal, ctx: Ctx) -> PhaseResult:
    return goto(state)


def nudge(state: Phase, event: Signal, ctx: Ctx) -> PhaseResult:
    return stay(Note("nudged"))


def stop(state: Phase, event: Signal, ctx: Ctx) -> PhaseResult:
    return goto(Phase.DONE)


def phase_builder() -> PhaseBuilder:
    """DONE -GO-> WAITING -(5 s)-> ACTIVE, which ticks every 10 s; STOP -> DONE anywhere."""
    builder = FsmBuilder[Phase, Signal, Ctx, Note](
        states=Phase, events=Signal, initial=Phase.DONE, name="phases"
    )
    builder.when(Phase.DONE).on(Signal.GO, go, to=[Phase.WAITING])
    builder.when(Phase.WAITING).timeout(WAIT, give_up_waiting, to=[Phase.ACTIVE])
    builder.when(Phase.ACTIVE).timeout(ACTIVE_PERIOD, tick)
    builder.from_any().on(Signal.AGAIN, again).on(Signal.NUDGE, nudge)
    builder.from_any().on(Signal.STOP, stop, to=[Phase.DONE])
    return builder


def phase_machine(initial: Phase) -> PhaseMachine:
    return phase_builder().build().new_machine(initial)


async def test_a_state_without_timeout_never_fires(mock_clock: trio.testing.MockClock) -> None:
    machine = phase_machine(Phase.DONE)
    ctx = Ctx()
    assert machine.timeout_deadline() is None
    mock_clock.jump(1_000_000)
    assert await machine.check_timeout(ctx) == []
    assert machine.state is Phase.DONE
    assert ctx.calls == []


async def test_the_initial_states_timer_starts_at_the_first_call(
    mock_clock: trio.testing.MockClock,
) -> None:
    machine = phase_machine(Phase.WAITING)
    ctx = Ctx()
    mock_clock.jump(100)  # the machine is not watched yet: this time does not count
    first_call = trio.current_time()
    assert await machine.check_timeout(ctx) == []
    assert machine.timeout_deadline() == first_call + WAIT
    mock_clock.jump(4.5)
    assert await machine.check_timeout(ctx) == []
    assert state_of(machine) is Phase.WAITING
    mock_clock.jump(0.5)
    assert await machine.check_timeout(ctx) == [Note("waited long enough")]
    assert state_of(machine) is Phase.ACTIVE
    assert ctx.calls == ["timeout WAITING"]


async def test_timeout_deadline_also_starts_the_initial_timer(
    mock_clock: trio.testing.MockClock,
) -> None:
    machine = phase_machine(Phase.WAITING)
    now = trio.current_time()
    assert machine.timeout_deadline() == now + WAIT
    mock_clock.jump(3)
    assert machine.timeout_deadline() == now + WAIT
    mock_clock.jump(2)
    assert await machine.check_timeout(Ctx()) == [Note("waited long enough")]


async def test_the_timer_starts_when_the_state_is_entered(
    mock_clock: trio.testing.MockClock,
) -> None:
    machine = phase_machine(Phase.DONE)
    ctx = Ctx()
    mock_clock.jump(50)
    entered = trio.current_time()
    assert await machine.handle(Signal.GO, ctx) == []
    assert machine.timeout_deadline() == entered + WAIT
    mock_clock.jump(4.5)
    assert await machine.check_timeout(ctx) == []
    mock_clock.jump(0.5)
    assert await machine.check_timeout(ctx) == [Note("waited long enough")]
    # Firing entered ACTIVE, whose own timer starts now.
    assert machine.timeout_deadline() == entered + WAIT + ACTIVE_PERIOD


async def test_firing_restarts_the_timer_even_when_the_handler_stays(
    mock_clock: trio.testing.MockClock,
) -> None:
    machine = phase_machine(Phase.ACTIVE)
    ctx = Ctx()
    start = trio.current_time()
    assert await machine.check_timeout(ctx) == []
    mock_clock.jump(ACTIVE_PERIOD)
    assert await machine.check_timeout(ctx) == [Note("tick")]
    assert machine.timeout_deadline() == start + 2 * ACTIVE_PERIOD
    assert await machine.check_timeout(ctx) == []  # not due again straight away
    mock_clock.jump(25)  # checked late: it fires once, and the period restarts from now
    assert await machine.check_timeout(ctx) == [Note("tick")]
    assert await machine.check_timeout(ctx) == []
    assert machine.timeout_deadline() == trio.current_time() + ACTIVE_PERIOD
    assert state_of(machine) is Phase.ACTIVE
    assert ctx.calls == ["timeout ACTIVE", "timeout ACTIVE"]


async def test_an_internal_transition_does_not_restart_the_timer(
    mock_clock: trio.testing.MockClock,
) -> None:
    machine = phase_machine(Phase.ACTIVE)
    ctx = Ctx()
    deadline = machine.timeout_deadline()
    mock_clock.jump(6)
    assert await machine.handle(Signal.NUDGE, ctx) == [Note("nudged")]
    assert machine.timeout_deadline() == deadline
    mock_clock.jump(4)
    assert await machine.check_timeout(ctx) == [Note("tick")]


async def test_a_self_transition_restarts_the_timer(
    mock_clock: trio.testing.MockClock,
) -> None:
    machine = phase_machine(Phase.ACTIVE)
    ctx = Ctx()
    assert machine.timeout_deadline() is not None
    mock_clock.jump(6)
    reentered = trio.current_time()
    assert await machine.handle(Signal.AGAIN, ctx) == []
    assert machine.timeout_deadline() == reentered + ACTIVE_PERIOD
    mock_clock.jump(4)
    assert await machine.check_timeout(ctx) == []
    mock_clock.jump(6)
    assert await machine.check_timeout(ctx) == [Note("tick")]


async def test_leaving_and_reentering_restarts_the_timer(
    mock_clock: trio.testing.MockClock,
) -> None:
    machine = phase_machine(Phase.WAITING)
    ctx = Ctx()
    assert await machine.check_timeout(ctx) == []
    mock_clock.jump(4)
    await machine.handle(Signal.STOP, ctx)
    assert machine.timeout_deadline() is None
    mock_clock.jump(4)
    assert await machine.check_timeout(ctx) == []
    await machine.handle(Signal.GO, ctx)
    assert machine.timeout_deadline() == trio.current_time() + WAIT
    mock_clock.jump(4)
    assert await machine.check_timeout(ctx) == []
    assert state_of(machine) is Phase.WAITING


async def test_hooks_run_on_timeout_transitions(mock_clock: trio.testing.MockClock) -> None:
    builder = phase_builder()
    builder.on_exit(Phase.WAITING, lambda s, c: [Note(f"exit {s.name}")])
    builder.on_entry(Phase.ACTIVE, lambda s, c: [Note(f"enter {s.name}")])
    machine = builder.build().new_machine(Phase.WAITING)
    ctx = Ctx()
    assert await machine.check_timeout(ctx) == []
    mock_clock.jump(WAIT)
    actions = await machine.check_timeout(ctx)
    assert actions == [Note("exit WAITING"), Note("enter ACTIVE"), Note("waited long enough")]
    await machine.execute_actions(actions, ctx)
    assert ctx.calls == [
        "timeout WAITING",
        "ran exit WAITING",
        "ran enter ACTIVE",
        "ran waited long enough",
    ]


async def test_a_timeout_that_stays_runs_no_hooks(mock_clock: trio.testing.MockClock) -> None:
    builder = phase_builder()
    builder.on_exit(Phase.ACTIVE, lambda s, c: [Note("exit")])
    builder.on_entry(Phase.ACTIVE, lambda s, c: [Note("enter")])
    machine = builder.build().new_machine(Phase.ACTIVE)
    assert await machine.check_timeout(Ctx()) == []
    mock_clock.jump(ACTIVE_PERIOD)
    assert await machine.check_timeout(Ctx()) == [Note("tick")]


class Broken(Exception):
    pass


def broken(state: Phase, ctx: Ctx) -> PhaseResult:
    raise Broken("sync")


async def broken_async(state: Phase, ctx: Ctx) -> PhaseResult:
    raise Broken("async")


class BrokenObject:
    async def __call__(self, state: Phase, ctx: Ctx) -> PhaseResult:
        raise Broken("object")


@pytest.mark.parametrize(
    ("handler", "name"),
    [(broken, "broken"), (broken_async, "broken_async"), (BrokenObject(), "BrokenObject instance")],
)
async def test_a_raising_timeout_handler_is_a_handler_error(
    mock_clock: trio.testing.MockClock, handler: Any, name: str
) -> None:
    builder = phase_builder()
    builder.when(Phase.DONE).timeout(1, handler)
    machine = builder.build().new_machine(Phase.DONE)
    assert await machine.check_timeout(Ctx()) == []
    mock_clock.jump(1)
    with pytest.raises(HandlerError) as info:
        await machine.check_timeout(Ctx())
    error = info.value
    assert isinstance(error.__cause__, Broken)
    assert (error.spec_name, error.handler, error.state, error.event) == (
        "phases",
        name,
        "DONE",
        "timeout",
    )
    assert str(error) == f"phases: handler {name} failed in state DONE on timeout"
    assert machine.state is Phase.DONE
    # The failed firing restarted the timer: it fires again a full period later.
    assert await machine.check_timeout(Ctx()) == []
    mock_clock.jump(1)
    with pytest.raises(HandlerError):
        await machine.check_timeout(Ctx())


async def test_a_raising_hook_on_a_timeout_transition_is_a_handler_error(
    mock_clock: trio.testing.MockClock,
) -> None:
    def refuse(state: Phase, ctx: Ctx) -> list[Note]:
        raise Broken("no entry")

    builder = phase_builder()
    builder.on_entry(Phase.ACTIVE, refuse)
    machine = builder.build().new_machine(Phase.WAITING)
    assert await machine.check_timeout(Ctx()) == []
    mock_clock.jump(WAIT)
    with pytest.raises(HandlerError) as info:
        await machine.check_timeout(Ctx())
    assert info.value.handler.startswith("entry hook ")
    assert (info.value.state, info.value.event) == ("ACTIVE", "timeout")
    assert isinstance(info.value.__cause__, Broken)
    assert machine.state is Phase.WAITING
    # Same rule as a raising handler: the timer restarted at the failed firing.
    assert machine.timeout_deadline() == trio.current_time() + WAIT


async def test_a_timeout_target_outside_to_is_an_undeclared_target_error(
    mock_clock: trio.testing.MockClock,
) -> None:
    builder = phase_builder()
    builder.when(Phase.DONE).timeout(1, lambda s, c: goto(Phase.ACTIVE), to=[Phase.WAITING])
    machine = builder.build().new_machine(Phase.DONE)
    assert await machine.check_timeout(Ctx()) == []
    mock_clock.jump(1)
    with pytest.raises(UndeclaredTargetError) as info:
        await machine.check_timeout(Ctx())
    assert (info.value.state, info.value.event, info.value.target) == ("DONE", "timeout", "ACTIVE")
    assert "for (DONE, timeout) returned a ACTIVE state, but it may only go to WAITING" in str(
        info.value
    )
    assert machine.state is Phase.DONE


async def test_a_timeout_handler_returning_a_non_transition_is_a_handler_error(
    mock_clock: trio.testing.MockClock,
) -> None:
    def confused(state: Phase, ctx: Ctx) -> Any:
        return Phase.ACTIVE

    builder = phase_builder()
    builder.when(Phase.DONE).timeout(1, confused)
    machine = builder.build().new_machine(Phase.DONE)
    assert await machine.check_timeout(Ctx()) == []
    mock_clock.jump(1)
    with pytest.raises(HandlerError, match=r"handler .*confused failed in state DONE on timeout"):
        await machine.check_timeout(Ctx())
    assert machine.state is Phase.DONE


@attrs.frozen
class Idle:
    pass


@attrs.frozen
class Running:
    job: str


@attrs.frozen
class Stalled:
    job: str


@attrs.frozen
class Kick:
    pass


Job: TypeAlias = Idle | Running | Stalled


async def test_timeout_handlers_receive_the_state_value(
    mock_clock: trio.testing.MockClock,
) -> None:
    def stall(state: Running, ctx: Ctx) -> Transition[Job, Note]:
        return goto(Stalled(state.job), Note(f"{state.job} stalled"))

    builder = FsmBuilder[Job, Kick, Ctx, Note](states=Job, events=Kick, initial=Idle)
    builder.when(Idle).on(Kick, lambda s, e, c: goto(Running("compile")), to=[Running])
    builder.when(Running).timeout(30, stall, to=[Stalled])
    builder.when(Stalled).on(Kick, lambda s, e, c: goto(Running(s.job)), to=[Running])
    machine = builder.build().new_machine(Idle())
    await machine.handle(Kick(), Ctx())
    mock_clock.jump(30)
    assert await machine.check_timeout(Ctx()) == [Note("compile stalled")]
    assert machine.state == Stalled("compile")
    assert machine.timeout_deadline() is None


async def test_a_driver_loop_sleeping_until_the_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """How a supervisor drives timeouts: sleep until the deadline, then check."""
    counted: list[float] = []

    async def count_then_stop(state: Phase, ctx: Ctx) -> PhaseResult:
        counted.append(trio.current_time())
        return goto(Phase.DONE) if len(counted) == 3 else stay(Note("tick"))

    builder = FsmBuilder[Phase, Signal, Ctx, Note](
        states=Phase, events=Signal, initial=Phase.WAITING, name="driver"
    )
    builder.when(Phase.WAITING).timeout(WAIT, give_up_waiting, to=[Phase.ACTIVE])
    builder.when(Phase.ACTIVE).timeout(ACTIVE_PERIOD, count_then_stop)
    builder.from_any().on(Signal.GO, go)
    machine = builder.build().new_machine(Phase.WAITING)
    ctx = Ctx()
    begin = trio.current_time()
    actions: list[Note] = []
    while (deadline := machine.timeout_deadline()) is not None:
        await trio.sleep_until(deadline)
        actions += await machine.check_timeout(ctx)
    assert state_of(machine) is Phase.DONE
    assert actions == [Note("waited long enough"), Note("tick"), Note("tick")]
    assert [t - begin for t in counted] == [
        WAIT + ACTIVE_PERIOD,
        WAIT + 2 * ACTIVE_PERIOD,
        WAIT + 3 * ACTIVE_PERIOD,
    ]
