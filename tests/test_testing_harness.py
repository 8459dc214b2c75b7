"""``fsmflow.testing``: the supervisor harness, the machine harness, scripted event sources
and ``each_backend``."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TypeAlias

import anyio
import attrs
import pytest
import sniffio
import trio
from trio.testing import MockClock

from examples.turnstile import Counter, Input, Record, Turnstile, turnstile_spec
from fsmflow import ActionError, FsmBuilder, FsmSpec, StateMachine, Transition, goto, stay
from fsmflow.supervisor import (
    TERMINATE,
    CompletionEvent,
    EventLoopDirective,
    ExitKind,
    ExternalEventMode,
    ExternalEventPolicy,
    MemoryJournal,
    SelfSupervised,
    SupervisorError,
    WatcherClosed,
)
from fsmflow.testing import (
    BACKENDS,
    EventScript,
    MachineHarness,
    each_backend,
    supervisor_harness,
)

# -- a lamp: BLOCKs for external events in every state -----------------------------------


@attrs.frozen
class Off:
    pass


@attrs.frozen
class On:
    level: int


@attrs.frozen
class Broken:
    pass


Lamp: TypeAlias = Off | On | Broken


@attrs.frozen
class Toggle:
    pass


@attrs.frozen
class Brighten:
    pass


@attrs.frozen
class Smash:
    pass


@attrs.frozen
class Noop:
    pass


@attrs.frozen
class LampFault:
    message: str


LampEvent: TypeAlias = Toggle | Brighten | Smash | Noop | LampFault


@attrs.frozen
class Shatter:
    """Fails while the context says the lamp is fragile."""

    async def execute(self, ctx: list[str]) -> None:
        ctx.append("shatter")
        if "fragile" in ctx:
            raise RuntimeError("glass everywhere")


def _toggle(state: Lamp, event: Toggle, ctx: list[str]) -> Transition[Lamp, Shatter]:
    return goto(Off() if isinstance(state, On) else On(1))


def _brighten(state: On, event: Brighten, ctx: list[str]) -> Transition[Lamp, Shatter]:
    return goto(On(state.level + 1))


def _smash(state: Lamp, event: Smash, ctx: list[str]) -> Transition[Lamp, Shatter]:
    return goto(Broken(), Shatter())


def _noop(state: Lamp, event: Noop, ctx: list[str]) -> Transition[Lamp, Shatter]:
    return stay()


def _fault(state: Lamp, event: LampFault, ctx: list[str]) -> Transition[Lamp, Shatter]:
    return stay(Shatter())


def _lamp_spec() -> FsmSpec[Lamp, LampEvent, list[str], Shatter]:
    b = FsmBuilder[Lamp, LampEvent, list[str], Shatter](
        states=Lamp, events=LampEvent, initial=Off, name="lamp"
    )
    b.from_any().on(Toggle, _toggle).on(Smash, _smash).on(Noop, _noop).on(LampFault, _fault)
    b.when(On).on(Brighten, _brighten)
    return b.build()


_LAMP = _lamp_spec()


class LampSup(
    ExternalEventPolicy[Lamp, LampEvent], SelfSupervised[Lamp, LampEvent, list[str], Shatter]
):
    def __init__(self, journal: MemoryJournal | None = None) -> None:
        super().__init__("lamp", journal=journal)

    @classmethod
    def fsm_spec(cls) -> FsmSpec[Lamp, LampEvent, list[str], Shatter]:
        return _LAMP

    def initial_context(self) -> list[str]:
        return []

    def event_for_action_error(self, msg: str) -> LampEvent:
        return LampFault(msg)

    def external_event_mode(self, state: Lamp) -> ExternalEventMode:
        return ExternalEventMode.BLOCK

    def on_external_event_channel_closed(self, state: Lamp) -> LampEvent | None:
        return None

    async def dispatch_state(self, state: Lamp, ctx: list[str]) -> EventLoopDirective[LampEvent]:
        return TERMINATE


# -- the supervisor harness --------------------------------------------------------------


@each_backend
async def test_records_states_and_completions() -> None:
    journal = MemoryJournal()
    sup = LampSup(journal)
    async with supervisor_harness(sup) as h:
        assert h.state == Off() and h.initial_state == Off() and not h.done
        for event in (Toggle(), Noop(), Brighten(), Toggle(), Toggle()):
            await h.send(event)
        assert await h.wait_for_state(On(1)) == On(1)
        h.close_events()
        outcome = await h.outcome()
    assert h.done and outcome.exit is ExitKind.TERMINATED
    assert [type(r.event) for r in h.records] == [Toggle, Noop, Brighten, Toggle, Toggle]
    assert h.states == [Off(), On(1), On(2), Off(), On(1)], "a stay() adds nothing"
    expected = CompletionEvent("lamp", "lamp", ExitKind.TERMINATED, On(1), None)
    assert h.completions == [expected]
    assert journal.events == [expected], "the supervisor's own journal got it too"
    assert sup.journal is journal, "and it was given back"


@each_backend
async def test_completions_are_captured_without_a_journal() -> None:
    sup = LampSup()
    async with supervisor_harness(sup) as h:
        h.close_events()
        await h.outcome()
    assert [c.exit for c in h.completions] == [ExitKind.TERMINATED]
    assert sup.journal is None


@each_backend
async def test_wait_for_sees_states_the_loop_passes_through() -> None:
    sup = LampSup()
    async with supervisor_harness(sup) as h:
        for event in (Toggle(), Brighten(), Brighten(), Toggle()):
            h.send_nowait(event)
        # All four are handled in one go: On(2) is never current when we look.
        assert await h.wait_for(lambda s: s == On(2)) == On(2)
        assert await h.wait_for_state(Off) == Off()
        assert h.state == Off()
        extra = h.sender()
        await extra.send(Smash())
        extra.close()
        assert await h.wait_for_state(Broken) == Broken()


@each_backend
async def test_several_tasks_can_wait_at_once() -> None:
    reached: list[Lamp] = []

    async def wait_for(state: Lamp) -> None:
        reached.append(await h.wait_for_state(state))

    async with supervisor_harness(LampSup()) as h, anyio.create_task_group() as tg:
        tg.start_soon(wait_for, On(2))
        tg.start_soon(wait_for, On(1))
        await anyio.wait_all_tasks_blocked()
        h.send_nowait(Toggle())
        h.send_nowait(Brighten())
    assert sorted(reached, key=repr) == [On(1), On(2)]


@each_backend
async def test_wait_for_reports_a_run_that_ended_first() -> None:
    sup = LampSup()
    sup.max_consecutive_failures = 1
    async with supervisor_harness(sup, context=["fragile"]) as h:
        await h.send(Smash())
        with pytest.raises(WatcherClosed) as info:
            await h.wait_for_state(On)
        assert info.value.final_state == Broken()
        assert isinstance(info.value.__cause__, SupervisorError)
        outcome = await h.outcome()
    assert outcome.exit is ExitKind.FAILED
    assert [c.exit for c in h.completions] == [ExitKind.FAILED]


@each_backend
async def test_a_failure_nobody_looked_at_is_raised_on_exit() -> None:
    sup = LampSup()
    sup.max_consecutive_failures = 1
    with pytest.raises(SupervisorError) as info:
        async with supervisor_harness(sup, context=["fragile"]) as h:
            await h.send(Smash())
            await h.handle.outcome()
    assert len(info.value.chain) == 2
    assert sup.journal is None


@each_backend
async def test_an_error_in_the_block_comes_out_as_itself() -> None:
    sup = LampSup()
    with pytest.raises(KeyError, match="from the test"):
        async with supervisor_harness(sup) as h:
            await h.send(Toggle())
            raise KeyError("from the test")
    outcome = await h.outcome()
    assert outcome.exit is ExitKind.CANCELLED, "the still-running supervisor was cancelled"
    assert [c.exit for c in h.completions] == [ExitKind.CANCELLED]


@each_backend
async def test_exit_cancels_a_running_supervisor() -> None:
    sup = LampSup()
    async with supervisor_harness(sup, initial_state=On(5)) as h:
        await h.send(Brighten())
        await h.wait_for_state(On(6))
    assert h.done
    outcome = await h.outcome()
    assert outcome.exit is ExitKind.CANCELLED and outcome.final_state == On(6)
    assert outcome.completion_written


@each_backend
async def test_cancel_inside_the_block() -> None:
    async with supervisor_harness(LampSup()) as h:
        h.cancel()
        outcome = await h.outcome()
    assert outcome.exit is ExitKind.CANCELLED and h.records == []


class Unbuildable(LampSup):
    def build_state_machine(
        self, initial_state: Lamp
    ) -> StateMachine[Lamp, LampEvent, list[str], Shatter]:
        raise ValueError("cannot build")


@each_backend
async def test_a_supervisor_that_cannot_start_is_a_failed_run() -> None:
    with pytest.raises(SupervisorError, match="could not start") as info:
        async with supervisor_harness(Unbuildable()) as h:
            await h.handle.outcome()
    assert isinstance(info.value.__cause__, ValueError)
    assert len(h.completions) == 1 and h.completions[0].exit is ExitKind.FAILED


@each_backend
async def test_several_errors_stay_grouped() -> None:
    with pytest.raises(ExceptionGroup) as info:
        async with supervisor_harness(Unbuildable()):
            with anyio.CancelScope(shield=True):
                await anyio.wait_all_tasks_blocked()  # the supervisor fails meanwhile
                raise KeyError("and this")
    assert info.group_contains(SupervisorError) and info.group_contains(KeyError)


# -- scripted event sources (MockClock, trio) --------------------------------------------


async def test_event_script_plays_on_the_clock(autojump_clock: MockClock) -> None:
    start = trio.current_time()
    script = EventScript[LampEvent]([(1.0, Toggle()), (2.0, Brighten()), (0.0, Brighten())])
    async with supervisor_harness(LampSup()) as h:
        h.play(script)
        h.close_events()
        outcome = await h.outcome()
    assert [(type(r.event), r.at - start) for r in h.records] == [
        (Toggle, 1.0),
        (Brighten, 3.0),
        (Brighten, 3.0),
    ]
    assert script.sent == [Toggle(), Brighten(), Brighten()] and not script.interrupted
    assert outcome.final_state == On(3)
    assert outcome.exit is ExitKind.TERMINATED, "the channel closed when the script ended"


async def test_event_script_stops_when_the_run_ends(autojump_clock: MockClock) -> None:
    script = EventScript[LampEvent].of(Toggle(), Toggle(), Toggle(), delay=5.0)
    async with supervisor_harness(LampSup()) as h:
        h.play(script)
        await h.wait_for_state(On)
        h.cancel()
        await h.outcome()
        await anyio.sleep(10)
    assert script.sent == [Toggle()] and script.interrupted


# -- the machine harness -----------------------------------------------------------------


async def test_machine_harness_collects_and_runs_actions() -> None:
    ctx = Counter()
    m = MachineHarness(turnstile_spec().new_machine(Turnstile.LOCKED), ctx)
    assert await m.send(Input.PUSH) == []
    actions = await m.feed(Input.COIN, Input.COIN, Input.PUSH)
    assert actions == [
        Record("coin accepted", coin=True),
        Record("coin refunded: already unlocked", coin=True),
        Record("person passed"),
    ]
    assert m.actions == actions
    assert m.state is Turnstile.LOCKED
    assert (ctx.coins, ctx.passes) == (2, 1), "the actions ran"
    assert [(r.from_state, r.event, r.to_state) for r in m.records] == [
        (Turnstile.LOCKED, Input.PUSH, Turnstile.LOCKED),
        (Turnstile.LOCKED, Input.COIN, Turnstile.UNLOCKED),
        (Turnstile.UNLOCKED, Input.COIN, Turnstile.UNLOCKED),
        (Turnstile.UNLOCKED, Input.PUSH, Turnstile.LOCKED),
    ]
    assert {r.supervisor for r in m.records} == {"turnstile"}


async def test_machine_harness_can_only_collect() -> None:
    ctx = Counter()
    m = MachineHarness(turnstile_spec().new_machine(Turnstile.LOCKED), ctx, run_actions=False)
    await m.feed(Input.COIN, Input.PUSH)
    assert len(m.actions) == 2 and ctx.log == []


async def test_machine_harness_raises_action_errors() -> None:
    m = MachineHarness(_LAMP.new_machine(Off()), ["fragile"])
    with pytest.raises(ActionError):
        await m.send(Smash())
    assert m.state == Broken(), "the machine had already decided"


def _dim(state: On, ctx: list[str]) -> Transition[Lamp, Shatter]:
    return goto(Off())


async def test_machine_harness_fires_timeouts(autojump_clock: MockClock) -> None:
    b = FsmBuilder[Lamp, LampEvent, list[str], Shatter](
        states=Lamp, events=LampEvent, initial=Off, name="timer"
    )
    b.when(On).timeout(30.0, _dim, to=[Off])
    b.from_any().on(Toggle, _toggle)
    m = MachineHarness(b.build().new_machine(On(1)), [])
    assert await m.fire_timeout() == []
    await anyio.sleep(30)
    assert await m.fire_timeout() == []
    assert m.state == Off() and [r.event for r in m.records] == ["timeout"]
    assert await m.fire_timeout() == [], "Off has no timeout"


# -- each_backend ------------------------------------------------------------------------


@each_backend
async def test_each_backend_passes_fixtures(caplog: pytest.LogCaptureFixture) -> None:
    logging.getLogger("fsmflow.test").warning("fixtures still work")
    assert "fixtures still work" in caplog.text


def test_each_backend_runs_the_test_on_the_given_backend() -> None:
    ran_on: list[tuple[str, int]] = []

    async def body(number: int) -> None:
        ran_on.append((sniffio.current_async_library(), number))

    wrapped = each_backend(body)
    [mark] = wrapped.pytestmark  # type: ignore[attr-defined]
    assert mark.name == "parametrize" and mark.args == ("backend", BACKENDS)
    assert list(inspect.signature(wrapped).parameters) == ["backend", "number"]
    for backend in BACKENDS:
        wrapped(backend=backend, number=7)
    assert ran_on == [("trio", 7), ("asyncio", 7)]


def test_each_backend_refuses_its_own_parameter_name() -> None:
    async def wants_backend(backend: str) -> None:
        raise AssertionError

    test: Callable[[str], Awaitable[None]] = wants_backend
    with pytest.raises(TypeError, match="supplies 'backend' itself"):
        each_backend(test)
