"""The supervisor loop's semantics: failures become events, bounded failure chains, FSM
errors, scheduling, completion, records. Backend-neutral tests run on trio and asyncio;
tests that need a MockClock run on trio."""

from __future__ import annotations

import enum
import itertools
import logging
from collections.abc import Awaitable, Callable

import anyio
import anyio.lowlevel
import attrs
import pytest
import trio
from trio.testing import MockClock

from fsmflow import (
    FsmBuilder,
    FsmSpec,
    HandlerError,
    Transition,
    UndeclaredTargetError,
    UnhandledEventError,
    goto,
    stay,
)
from fsmflow.fsm import FsmError
from fsmflow.supervisor import (
    CONTINUE,
    TERMINATE,
    CompletionEvent,
    EventLoopDirective,
    ExitKind,
    ExternalEventMode,
    ExternalEventPolicy,
    IdleBackoff,
    MemoryJournal,
    SelfSupervised,
    SupervisorError,
    TransitionRecord,
    Trigger,
)
from fsmflow.testing import EventScript, each_backend, supervisor_harness

from ._scripted import Act, ActFailed, Ctx, Fault, Go, Hold, Phase, Scripted, Step

# -- 1. dispatch errors become failure events --------------------------------------------


@pytest.mark.parametrize(
    "error", [RuntimeError("boom"), LookupError("gone"), OSError("disk full"), ActFailed("x")]
)
@each_backend
async def test_dispatch_error_becomes_failure_event(error: Exception) -> None:
    sup = Scripted(script=[error])
    ctx = Ctx()
    async with supervisor_harness(sup, context=ctx) as h:
        outcome = await h.outcome()
    assert outcome.exit is ExitKind.TERMINATED
    assert outcome.final_state is Phase.FAILED
    first = h.records[0]
    assert first.failure
    assert (first.from_state, first.to_state) == (Phase.IDLE, Phase.FAILED)
    assert first.event == Fault(
        f"dispatch_state failed in state IDLE: {type(error).__name__}: {error}"
    )
    assert ctx.log == ["mark-failed"], "the failure transition's actions ran"
    assert (outcome.dispatches, outcome.transitions, outcome.failures) == (2, 1, 1)
    assert sup.after == [Phase.FAILED]


@each_backend
async def test_failure_event_is_handled_without_another_dispatch() -> None:
    sup = Scripted(script=[RuntimeError("boom"), TERMINATE])
    async with supervisor_harness(sup) as h:
        await h.outcome()
    # IDLE raised; the failure event moved the FSM to FAILED before the next dispatch.
    assert sup.dispatched == [Phase.IDLE, Phase.FAILED]


# -- 2. actions, failure chains ----------------------------------------------------------


@each_backend
async def test_actions_run_in_order() -> None:
    sup = Scripted(script=[Trigger(Go(Phase.WORKING, ("a", "b", "c"))), Trigger(Hold(("d",)))])
    ctx = Ctx()
    async with supervisor_harness(sup, context=ctx) as h:
        outcome = await h.outcome()
    assert ctx.log == ["a", "b", "c", "d"]
    assert outcome.final_state is Phase.WORKING
    assert [r.actions for r in h.records] == [
        (Act("a"), Act("b"), Act("c")),
        (Act("d"),),
    ]
    assert outcome.failures == 0


@each_backend
async def test_first_failing_action_skips_the_rest_and_is_handled_at_once() -> None:
    sup = Scripted(script=[Trigger(Go(Phase.WORKING, ("a", "b", "c")))])
    ctx = Ctx(failing={"b"})
    async with supervisor_harness(sup, context=ctx) as h:
        outcome = await h.outcome()
    assert ctx.log == ["a", "b", "mark-failed"], "c was skipped"
    go, fault = h.records
    assert not go.failure and go.to_state is Phase.WORKING
    assert fault.failure
    assert fault.event == Fault("action Act(name='b') failed in state WORKING: ActFailed: b")
    assert (fault.from_state, fault.to_state) == (Phase.WORKING, Phase.FAILED)
    # The failure event was handled before dispatch_state ran again; after_transition
    # ran once, for the settled state.
    assert sup.dispatched == [Phase.IDLE, Phase.FAILED]
    assert sup.after == [Phase.FAILED]
    assert outcome.exit is ExitKind.TERMINATED


@each_backend
async def test_failure_chain_of_failing_actions_is_bounded() -> None:
    sup = Scripted(script=[Trigger(Go(Phase.FAILED))], default=RuntimeError("still broken"))
    sup.max_consecutive_failures = 3
    ctx = Ctx(failing={"cleanup"}, fault_acts=("cleanup",))
    async with supervisor_harness(sup, context=ctx) as h:
        outcome = await h.outcome()
    assert outcome.exit is ExitKind.FAILED
    error = outcome.error
    assert isinstance(error, SupervisorError)
    cleanup = "action Act(name='cleanup') failed in state FAILED: ActFailed: cleanup"
    assert error.chain == (
        "dispatch_state failed in state FAILED: RuntimeError: still broken",
        cleanup,
        cleanup,
        cleanup,
    )
    assert len(error.chain) == sup.max_consecutive_failures + 1
    assert (error.supervisor, error.state, error.event) == ("scripted", "FAILED", "Fault")
    assert "4 consecutive failure events without progress" in str(error)
    assert "failure chain:\n  1. dispatch_state failed" in str(error)
    assert error.outcome is outcome
    assert ctx.log == ["cleanup"] * 3
    assert (outcome.transitions, outcome.failures) == (4, 3)
    assert sup.completion_calls == 1
    assert len(h.completions) == 1 and h.completions[0].exit is ExitKind.FAILED


@each_backend
async def test_failure_chain_of_failing_dispatches_is_bounded() -> None:
    sup = Scripted(default=RuntimeError("nope"))
    sup.max_consecutive_failures = 5
    async with supervisor_harness(sup, initial_state=Phase.FAILED) as h:
        outcome = await h.outcome()
    assert isinstance(outcome.error, SupervisorError)
    assert outcome.error.chain == ("dispatch_state failed in state FAILED: RuntimeError: nope",) * 6
    assert outcome.failures == 5, "the overflowing failure is not fed to the FSM"
    assert outcome.dispatches == 6


@pytest.mark.parametrize(
    ("script", "exit"),
    [
        (["err", "err", "continue", "err", "err", "hold", "err", "err"], ExitKind.TERMINATED),
        (["err", "err", "err"], ExitKind.FAILED),
        (["err", "err", "hold", "err", "err", "err"], ExitKind.FAILED),
    ],
)
@each_backend
async def test_progress_resets_the_failure_chain(script: list[str], exit: ExitKind) -> None:
    steps: dict[str, Step] = {
        "err": RuntimeError("x"),
        "continue": CONTINUE,
        "hold": Trigger(Hold()),
    }
    sup = Scripted(script=[steps[s] for s in script])
    sup.max_consecutive_failures = 2
    async with supervisor_harness(sup, initial_state=Phase.FAILED) as h:
        outcome = await h.outcome()
    assert outcome.exit is exit


@each_backend
async def test_a_failure_that_changes_the_state_is_progress() -> None:
    sup = Scripted(
        script=[Trigger(Go(Phase.WORKING)), RuntimeError("first"), RuntimeError("second")]
    )
    sup.max_consecutive_failures = 1
    async with supervisor_harness(sup) as h:
        outcome = await h.outcome()
    # WORKING -> FAILED cleared the chain, so the second failure starts a new one.
    assert outcome.exit is ExitKind.TERMINATED
    assert outcome.failures == 2


@attrs.frozen
class Up:
    pass


@attrs.frozen
class Down:
    reason: str


@attrs.frozen
class Oops:
    message: str


@attrs.frozen
class Cleanup:
    async def execute(self, ctx: None) -> None:
        raise RuntimeError("cleanup failed")


UpDown = Up | Down


def _record_reason(state: UpDown, event: Oops, ctx: None) -> Transition[UpDown, Cleanup]:
    return goto(Down(event.message), Cleanup())


def _updown_spec() -> FsmSpec[UpDown, Oops, None, Cleanup]:
    b = FsmBuilder[UpDown, Oops, None, Cleanup](
        states=UpDown, events=Oops, initial=Up, name="updown"
    )
    b.from_any().on(Oops, _record_reason, to=[Down])
    return b.build()


_UPDOWN = _updown_spec()


class UpDownSup(SelfSupervised[UpDown, Oops, None, Cleanup]):
    @classmethod
    def fsm_spec(cls) -> FsmSpec[UpDown, Oops, None, Cleanup]:
        return _UPDOWN

    def initial_context(self) -> None:
        return None

    def event_for_action_error(self, msg: str) -> Oops:
        return Oops(msg)

    async def dispatch_state(self, state: UpDown, ctx: None) -> EventLoopDirective[Oops]:
        if isinstance(state, Up):
            raise RuntimeError("x")
        return TERMINATE


@each_backend
async def test_reentering_an_equal_state_is_no_progress() -> None:
    # Down(reason) re-entered with the same reason after each failing cleanup: judged by
    # identity every Down(...) would be "new" and the chain would never end.
    sup = UpDownSup("updown")
    sup.max_consecutive_failures = 4
    async with supervisor_harness(sup) as h:
        outcome = await h.outcome()
    assert isinstance(outcome.error, SupervisorError)
    cleanup = "action Cleanup() failed in state Down: RuntimeError: cleanup failed"
    # Up -> Down(...) moved the state, but its action failed: no progress either.
    dispatch = "dispatch_state failed in state Up: RuntimeError: x"
    assert outcome.error.chain == (dispatch, cleanup, cleanup, cleanup, cleanup)
    assert h.states == [
        Up(),
        Down("dispatch_state failed in state Up: RuntimeError: x"),
        Down(cleanup),
    ]


# -- 3. FSM errors end the run -----------------------------------------------------------


class Light(enum.Enum):
    RED = "red"
    AMBER = "amber"
    GREEN = "green"


@attrs.frozen
class Boom:
    pass


@attrs.frozen
class Stray:
    pass


@attrs.frozen
class Skip:
    pass


@attrs.frozen
class LightFault:
    message: str


LightEvent = Boom | Stray | Skip | LightFault


def _explode(state: Light, event: Boom, ctx: None) -> Transition[Light, Cleanup]:
    raise ValueError("handler exploded")


def _stray(state: Light, event: Stray, ctx: None) -> Transition[Light, Cleanup]:
    return goto(Light.GREEN)


def _skip(state: Light, event: Skip, ctx: None) -> Transition[Light, Cleanup]:
    return goto(Light.GREEN)


def _light_spec() -> FsmSpec[Light, LightEvent, None, Cleanup]:
    b = FsmBuilder[Light, LightEvent, None, Cleanup](
        states=Light, events=LightEvent, initial=Light.RED, name="light"
    )
    b.when(Light.RED).on(Boom, _explode).on(Stray, _stray, to=[Light.AMBER])
    b.when(Light.AMBER).on(Skip, _skip, to=[Light.GREEN])
    b.strict()
    return b.build()


_LIGHT = _light_spec()


class LightSup(SelfSupervised[Light, LightEvent, None, Cleanup]):
    def __init__(self, step: EventLoopDirective[LightEvent] | Exception) -> None:
        super().__init__("light-sup")
        self.step = step

    @classmethod
    def fsm_spec(cls) -> FsmSpec[Light, LightEvent, None, Cleanup]:
        return _LIGHT

    def initial_context(self) -> None:
        return None

    def event_for_action_error(self, msg: str) -> LightEvent:
        return LightFault(msg)

    async def dispatch_state(self, state: Light, ctx: None) -> EventLoopDirective[LightEvent]:
        if isinstance(self.step, Exception):
            raise self.step
        return self.step


@pytest.mark.parametrize(
    ("event", "cause", "name"),
    [
        (Boom(), HandlerError, "Boom"),
        (Skip(), UnhandledEventError, "Skip"),
        (Stray(), UndeclaredTargetError, "Stray"),
    ],
)
@each_backend
async def test_fsm_error_ends_the_run(event: LightEvent, cause: type[FsmError], name: str) -> None:
    sup = LightSup(Trigger(event))
    with pytest.raises(SupervisorError) as info:
        await sup.run()
    error = info.value
    assert isinstance(error.__cause__, cause)
    assert (error.supervisor, error.state, error.event) == ("light-sup", "RED", name)
    assert "'light-sup'" in str(error) and "state RED" in str(error) and name in str(error)
    assert error.chain == ()
    outcome = sup.last_outcome
    assert outcome is not None and outcome.exit is ExitKind.FAILED
    assert outcome.final_state is Light.RED, "the state is unchanged by a failed handler"
    assert error.outcome is outcome


@each_backend
async def test_fsm_error_on_a_failure_event_carries_the_chain() -> None:
    sup = LightSup(RuntimeError("dispatch broke"))
    with pytest.raises(SupervisorError) as info:
        await sup.run()
    error = info.value
    assert isinstance(error.__cause__, UnhandledEventError)
    assert error.event == "LightFault"
    assert error.chain == ("dispatch_state failed in state RED: RuntimeError: dispatch broke",)


@each_backend
async def test_unknown_directive_ends_the_run() -> None:
    sup = LightSup(Trigger(Boom()))
    sup.step = "not a directive"  # type: ignore[assignment]
    with pytest.raises(SupervisorError, match="returned 'not a directive'; expected Continue"):
        await sup.run()


@each_backend
async def test_unexpected_error_outside_fsm_ends_the_run() -> None:
    class Fragile(Scripted):
        async def after_transition(self, state: Phase, ctx: Ctx) -> None:
            raise KeyError("after")

    sup = Fragile(script=[Trigger(Hold())], journal=MemoryJournal())
    with pytest.raises(SupervisorError) as info:
        await sup.run()
    assert isinstance(info.value.__cause__, KeyError)
    assert (info.value.state, info.value.event) == ("IDLE", "-")
    assert sup.completion_calls == 1


# -- 4. scheduling -----------------------------------------------------------------------


async def _turns_beside(count: Callable[[], int], turns: int) -> list[int]:
    """Take turns beside a running supervisor, noting ``count()`` at each turn once it is
    non-zero, until ``turns`` were noted.

    A sibling can only run while the supervisor is suspended, and the supervisor is only
    suspended where it yields: every value noted is a count at which it yielded, whatever
    order the scheduler runs ready tasks in (trio shuffles each batch)."""
    seen: list[int] = []
    while len(seen) < turns:
        await anyio.lowlevel.checkpoint()
        value = count()
        if value:
            seen.append(value)
    return seen


def _assert_yields_every(seen: list[int], steps: int) -> None:
    assert all(value % steps == 0 for value in seen), f"yielded off the budget: {seen}"
    assert seen == sorted(seen) and seen[-1] > seen[0], "the supervisor kept going"
    # Between two turns of the sibling the supervisor ran at most once per scheduling
    # batch, each time for one budget's worth of steps.
    assert all(b - a <= 2 * steps for a, b in itertools.pairwise(seen)), seen


@each_backend
async def test_continue_yields_every_time() -> None:
    # Finite, so that a loop that never yields ends its script unobserved and fails the
    # assertions rather than hanging the test run.
    sup = Scripted(script=[CONTINUE] * 200)
    async with supervisor_harness(sup) as h:
        seen = await _turns_beside(lambda: len(sup.dispatched), 20)
        h.cancel()
        outcome = await h.outcome()
    _assert_yields_every(seen, 1)
    assert outcome.exit is ExitKind.CANCELLED


@each_backend
async def test_trigger_chain_yields_on_the_budget() -> None:
    sup = Scripted(script=[Trigger(Hold())] * 2000)
    sup.yield_every = 16
    async with supervisor_harness(sup) as h:
        seen = await _turns_beside(lambda: len(sup.dispatched), 20)
        h.cancel()
        await h.outcome()
    _assert_yields_every(seen, 16)


@attrs.frozen
class Ping:
    pass


@attrs.frozen
class Pong:
    pass


@attrs.frozen
class Bounce:
    message: str


@attrs.frozen
class Fumble:
    async def execute(self, ctx: None) -> None:
        raise RuntimeError("fumble")


PingPong = Ping | Pong


def _bounce(state: PingPong, event: Bounce, ctx: None) -> Transition[PingPong, Fumble]:
    return goto(Pong() if isinstance(state, Ping) else Ping(), Fumble())


def _pingpong_spec() -> FsmSpec[PingPong, Bounce, None, Fumble]:
    b = FsmBuilder[PingPong, Bounce, None, Fumble](
        states=PingPong, events=Bounce, initial=Ping, name="pingpong"
    )
    b.from_any().on(Bounce, _bounce)
    return b.build()


_PINGPONG = _pingpong_spec()


class PingPongSup(SelfSupervised[PingPong, Bounce, None, Fumble]):
    yield_every = 10

    @classmethod
    def fsm_spec(cls) -> FsmSpec[PingPong, Bounce, None, Fumble]:
        return _PINGPONG

    def initial_context(self) -> None:
        return None

    def event_for_action_error(self, msg: str) -> Bounce:
        return Bounce(msg)

    async def dispatch_state(self, state: PingPong, ctx: None) -> EventLoopDirective[Bounce]:
        raise RuntimeError("serve")


@each_backend
async def test_a_failure_chain_that_bounces_between_states_is_bounded() -> None:
    # Every failure event moves the state (Ping <-> Pong) and every one's action fails:
    # moving is no progress while the failure handling itself keeps failing.
    journal = MemoryJournal()
    sup = PingPongSup("pingpong", journal=journal)
    handled: list[TransitionRecord] = []

    def give_up_eventually(record: TransitionRecord) -> None:
        # Were the chain unbounded, this would end the run (with a different error)
        # rather than let the test spin forever.
        handled.append(record)
        if len(handled) > 10_000:
            raise AssertionError("the failure chain was not bounded")

    sup.add_transition_listener(give_up_eventually)
    with pytest.raises(SupervisorError) as info:
        await sup.run(Ping(), None)
    error = info.value
    assert not isinstance(error.__cause__, AssertionError), error.summary
    assert len(error.chain) == sup.max_consecutive_failures + 1
    assert error.chain[0] == "dispatch_state failed in state Ping: RuntimeError: serve"
    assert set(error.chain[1:]) == {
        "action Fumble() failed in state Pong: RuntimeError: fumble",
        "action Fumble() failed in state Ping: RuntimeError: fumble",
    }
    assert error.summary == (
        "supervisor 'pingpong' failed in state Ping on Bounce: 33 consecutive failure events "
        "without progress; the last: action Fumble() failed in state Ping: RuntimeError: fumble"
    )
    assert isinstance(error.__cause__, RuntimeError) and error.root_cause is error.__cause__
    outcome = sup.last_outcome
    assert outcome is not None and outcome.exit is ExitKind.FAILED
    assert outcome.dispatches == 1 and outcome.failures == 32
    assert [e.exit for e in journal.events] == [ExitKind.FAILED]


@each_backend
async def test_endless_failure_cycle_yields_on_the_budget() -> None:
    # With a bound too high to reach here, the loop must still yield (and so stay
    # cancellable) while it handles failure after failure.
    sup = PingPongSup("pingpong")
    sup.max_consecutive_failures = 1_000_000
    records: list[TransitionRecord] = []
    sup.add_transition_listener(records.append)
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(sup.run)
            seen = await _turns_beside(lambda: len(records), 20)
            scope.cancel()
    _assert_yields_every(seen, 10)
    outcome = sup.last_outcome
    assert outcome is not None and outcome.exit is ExitKind.CANCELLED
    assert outcome.dispatches == 1, "the whole run was one failure chain"


async def test_idle_backoff_grows_caps_and_resets(autojump_clock: MockClock) -> None:
    backoff = IdleBackoff(initial=0.25, maximum=2.0, factor=2.0)

    async def idle_time() -> float:
        start = anyio.current_time()
        await backoff.idle()
        return anyio.current_time() - start

    assert [await idle_time() for _ in range(6)] == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    backoff.reset()
    assert backoff.next_delay == 0.25
    assert await idle_time() == 0.25
    assert backoff.next_delay == 0.5


async def test_idle_backoff_jitter_stays_within_bounds(autojump_clock: MockClock) -> None:
    backoff = IdleBackoff(initial=1.0, maximum=1.0, jitter=0.5)
    for _ in range(20):
        start = anyio.current_time()
        await backoff.idle()
        assert 0.5 <= anyio.current_time() - start <= 1.5


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial": 0.0},
        {"initial": 2.0, "maximum": 1.0},
        {"factor": 0.5},
        {"jitter": 1.0},
        {"jitter": -0.1},
    ],
)
def test_idle_backoff_rejects_bad_arguments(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        IdleBackoff(**kwargs)


async def test_polling_supervisor_backs_off_while_idle(autojump_clock: MockClock) -> None:
    backoff = IdleBackoff(initial=1.0, maximum=4.0)
    found = iter([False, False, False, True, False, False])
    times: list[float] = []

    async def poll() -> EventLoopDirective[Go | Hold | Fault]:
        times.append(anyio.current_time())
        try:
            work = next(found)
        except StopIteration:
            return TERMINATE
        if work:
            backoff.reset()
            return Trigger(Hold(("work",)))
        await backoff.idle()
        return CONTINUE

    sup = Scripted(default=poll)
    ctx = Ctx()
    start = anyio.current_time()
    await sup.run(Phase.IDLE, ctx)
    assert [t - start for t in times] == [0, 1, 3, 7, 7, 8, 10]
    assert ctx.log == ["work"]


# -- 5. completion -----------------------------------------------------------------------


@each_backend
async def test_completion_written_once_on_terminate() -> None:
    journal = MemoryJournal()
    sup = Scripted(script=[Trigger(Go(Phase.DONE))], journal=journal)
    outcome = await sup.run(Phase.IDLE, Ctx())
    assert outcome.exit is ExitKind.TERMINATED and outcome.completion_written
    assert journal.events == [
        CompletionEvent("scripted", "scripted", ExitKind.TERMINATED, Phase.DONE, None)
    ]
    assert sup.exit_info == (ExitKind.TERMINATED, Phase.DONE, None)
    assert sup.last_outcome == outcome
    assert (outcome.supervisor, outcome.final_state) == ("scripted", Phase.DONE)
    assert (outcome.dispatches, outcome.transitions, outcome.failures) == (2, 1, 0)
    assert outcome.error is None


@each_backend
async def test_completion_written_once_on_failure() -> None:
    journal = MemoryJournal()
    sup = Scripted(default=RuntimeError("x"), journal=journal)
    sup.max_consecutive_failures = 0
    with pytest.raises(SupervisorError) as info:
        await sup.run(Phase.FAILED, Ctx())
    assert sup.completion_calls == 1
    [event] = journal.events
    assert event.exit is ExitKind.FAILED and event.final_state is Phase.FAILED
    assert event.error == str(info.value)
    assert info.value.outcome is not None and info.value.outcome.completion_written


@each_backend
async def test_completion_written_once_on_cancellation() -> None:
    journal = MemoryJournal()
    sup = Scripted(default=CONTINUE, journal=journal)
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(sup.run, Phase.WORKING, Ctx())
            while len(sup.dispatched) < 3:
                await anyio.lowlevel.checkpoint()
            scope.cancel()
    assert scope.cancelled_caught
    assert sup.completion_calls == 1
    assert [e.exit for e in journal.events] == [ExitKind.CANCELLED]
    outcome = sup.last_outcome
    assert outcome is not None and outcome.exit is ExitKind.CANCELLED
    assert outcome.final_state is Phase.WORKING and outcome.completion_written


class SlowCompletion(Scripted):
    def __init__(self, seconds: float) -> None:
        super().__init__(default=CONTINUE)
        self.seconds = seconds
        self.finished_writing = False

    async def write_completion_event(self) -> None:
        self.completion_calls += 1
        await anyio.sleep(self.seconds)
        self.finished_writing = True


async def _cancel_while_running(sup: Scripted) -> bool:
    """Run ``sup``, cancel it once it is going; True if the cancellation propagated."""
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sup.run, Phase.IDLE, Ctx())
            while not sup.dispatched:
                await trio.lowlevel.checkpoint()
            scope.cancel()
    return scope.cancelled_caught


async def test_completion_awaits_while_cancelled(autojump_clock: MockClock) -> None:
    sup = SlowCompletion(seconds=3.0)
    start = trio.current_time()
    assert await _cancel_while_running(sup)
    assert sup.finished_writing, "the shielded write ran to its end"
    assert trio.current_time() - start == 3.0
    outcome = sup.last_outcome
    assert outcome is not None and outcome.exit is ExitKind.CANCELLED
    assert outcome.completion_written


async def test_completion_abandoned_after_its_timeout(
    autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    sup = SlowCompletion(seconds=60.0)
    sup.completion_timeout = 2.0
    start = trio.current_time()
    assert await _cancel_while_running(sup), "cancellation still propagated"
    assert not sup.finished_writing
    assert sup.completion_calls == 1
    assert trio.current_time() - start == 2.0
    outcome = sup.last_outcome
    assert outcome is not None and outcome.exit is ExitKind.CANCELLED
    assert not outcome.completion_written
    assert "write_completion_event did not finish within 2.0s" in caplog.text


@each_backend
async def test_failing_completion_is_reported_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(Scripted):
        async def write_completion_event(self) -> None:
            self.completion_calls += 1
            raise OSError("journal offline")

    sup = Broken()
    outcome = await sup.run(Phase.IDLE, Ctx())
    assert outcome.exit is ExitKind.TERMINATED
    assert not outcome.completion_written
    assert sup.completion_calls == 1
    assert "scripted: write_completion_event failed" in caplog.text
    assert "journal offline" in caplog.text


@each_backend
async def test_default_completion_without_journal_does_nothing() -> None:
    sup = Scripted()
    outcome = await sup.run(Phase.IDLE, Ctx())
    assert outcome.completion_written and sup.completion_calls == 1


def test_run_with_no_arguments_on_trio() -> None:
    sup = Scripted(script=[Trigger(Go(Phase.DONE))])
    outcome = trio.run(sup.run)
    assert outcome.final_state is Phase.DONE
    assert sup.dispatched == [Phase.IDLE, Phase.DONE], "started from the spec's initial state"


def test_run_with_no_arguments_on_asyncio() -> None:
    sup = Scripted(script=[Trigger(Go(Phase.DONE))])
    outcome = anyio.run(sup.run, backend="asyncio")
    assert outcome.final_state is Phase.DONE


class NoDefaults(SelfSupervised[UpDown, Oops, None, Cleanup]):
    @classmethod
    def fsm_spec(cls) -> FsmSpec[UpDown, Oops, None, Cleanup]:
        b = FsmBuilder[UpDown, Oops, None, Cleanup](
            states=UpDown, events=Oops, initial=Down, name="no-defaults"
        )
        b.from_any().on(Oops, _record_reason)
        return b.build()

    def event_for_action_error(self, msg: str) -> Oops:
        return Oops(msg)

    async def dispatch_state(self, state: UpDown, ctx: None) -> EventLoopDirective[Oops]:
        return TERMINATE


def test_missing_defaults_are_explained() -> None:
    sup = NoDefaults("no-defaults")
    with pytest.raises(TypeError, match=r"cannot create the initial state Down\(\)"):
        sup.initial_state()
    with pytest.raises(TypeError, match="NoDefaults has no default context"):
        sup.initial_context()
    with pytest.raises(SupervisorError, match="no default context") as info:
        trio.run(sup.run, Down("given"))
    assert isinstance(info.value.__cause__, TypeError)


# -- 7. transition records ---------------------------------------------------------------


@each_backend
async def test_every_transition_reaches_listeners_and_logging(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="fsmflow.supervisor")
    sup = Scripted(
        script=[Trigger(Go(Phase.WORKING, ("a",))), Trigger(Hold()), RuntimeError("boom")]
    )
    records: list[TransitionRecord] = []
    sup.add_transition_listener(records.append)
    await sup.run(Phase.IDLE, Ctx())
    assert [(r.from_state, r.to_state, r.failure) for r in records] == [
        (Phase.IDLE, Phase.WORKING, False),
        (Phase.WORKING, Phase.WORKING, False),
        (Phase.WORKING, Phase.FAILED, True),
    ]
    assert records[0].actions == (Act("a"),)
    assert all(r.supervisor == "scripted" for r in records)
    assert [r.at for r in records] == sorted(r.at for r in records)
    logged = [r for r in caplog.records if r.name == "fsmflow.supervisor"]
    assert [
        (r.fsm_supervisor, r.fsm_from, r.fsm_event, r.fsm_to)  # type: ignore[attr-defined]
        for r in logged
    ] == [
        ("scripted", "IDLE", "Go", "WORKING"),
        ("scripted", "WORKING", "Hold", "WORKING"),
        ("scripted", "WORKING", "Fault", "FAILED"),
    ]
    assert [r.fsm_failure for r in logged] == [False, False, True]  # type: ignore[attr-defined]
    assert all(r.levelno == logging.DEBUG for r in logged)
    assert logged[0].getMessage() == "scripted: IDLE --Go--> WORKING"


@each_backend
async def test_removed_listener_hears_nothing() -> None:
    sup = Scripted(script=[Trigger(Hold())])
    records: list[TransitionRecord] = []
    sup.add_transition_listener(records.append)
    sup.remove_transition_listener(records.append)
    await sup.run(Phase.IDLE, Ctx())
    assert records == []


# -- state timeouts (MockClock, trio) ----------------------------------------------------


class Stage(enum.Enum):
    WAIT = "wait"
    LATE = "late"
    TICKING = "ticking"
    BROKEN = "broken"


@attrs.frozen
class Nudge:
    pass


@attrs.frozen
class StageFault:
    message: str


StageEvent = Nudge | StageFault


@attrs.frozen
class Note:
    text: str

    async def execute(self, ctx: list[str]) -> None:
        ctx.append(self.text)
        if self.text == "bad":
            raise RuntimeError("bad note")


def _late(state: Stage, ctx: list[str]) -> Transition[Stage, Note]:
    return goto(Stage.LATE, Note("late"))


def _late_badly(state: Stage, ctx: list[str]) -> Transition[Stage, Note]:
    return goto(Stage.LATE, Note("bad"))


def _tick(state: Stage, ctx: list[str]) -> Transition[Stage, Note]:
    return stay()


def _broken(state: Stage, ctx: list[str]) -> Transition[Stage, Note]:
    raise RuntimeError("timeout handler broke")


def _nudged(state: Stage, event: Nudge, ctx: list[str]) -> Transition[Stage, Note]:
    return stay(Note("nudged"))


def _absorb(state: Stage, event: StageFault, ctx: list[str]) -> Transition[Stage, Note]:
    return stay(Note("absorbed"))


def _stage_spec(bad_late: bool) -> FsmSpec[Stage, StageEvent, list[str], Note]:
    b = FsmBuilder[Stage, StageEvent, list[str], Note](
        states=Stage, events=StageEvent, initial=Stage.WAIT, name="stage"
    )
    b.when(Stage.WAIT).timeout(5.0, _late_badly if bad_late else _late, to=[Stage.LATE])
    b.when(Stage.WAIT).on(Nudge, _nudged)
    b.when(Stage.TICKING).timeout(2.0, _tick)
    b.when(Stage.BROKEN).timeout(1.0, _broken)
    b.from_any().on(StageFault, _absorb)
    return b.build()


_STAGE = _stage_spec(bad_late=False)
_STAGE_BAD = _stage_spec(bad_late=True)


class Staged(
    ExternalEventPolicy[Stage, StageEvent], SelfSupervised[Stage, StageEvent, list[str], Note]
):
    """BLOCK in WAIT; elsewhere ``dispatch`` decides."""

    spec = _STAGE

    def __init__(
        self, dispatch: Callable[[Stage], Awaitable[EventLoopDirective[StageEvent]]]
    ) -> None:
        super().__init__("staged")
        self.dispatch = dispatch

    @classmethod
    def fsm_spec(cls) -> FsmSpec[Stage, StageEvent, list[str], Note]:
        return cls.spec

    def initial_context(self) -> list[str]:
        return []

    def event_for_action_error(self, msg: str) -> StageEvent:
        return StageFault(msg)

    def external_event_mode(self, state: Stage) -> ExternalEventMode:
        return ExternalEventMode.BLOCK if state is Stage.WAIT else ExternalEventMode.IGNORE

    def on_external_event_channel_closed(self, state: Stage) -> StageEvent | None:
        return None

    async def dispatch_state(self, state: Stage, ctx: list[str]) -> EventLoopDirective[StageEvent]:
        return await self.dispatch(state)


class BadlyLate(Staged):
    spec = _STAGE_BAD


async def _terminate(state: Stage) -> EventLoopDirective[StageEvent]:
    return TERMINATE


async def _idle_forever(state: Stage) -> EventLoopDirective[StageEvent]:
    await trio.sleep_forever()


async def test_timeout_fires_in_a_blocking_state(autojump_clock: MockClock) -> None:
    sup = Staged(_terminate)
    notes: list[str] = []
    start = trio.current_time()
    async with supervisor_harness(sup, context=notes) as h:
        h.play(EventScript([(3.0, Nudge())]))
        await h.wait_for_state(Stage.LATE)
        assert trio.current_time() - start == 5.0, "a stay() does not restart the timer"
        outcome = await h.outcome()
    assert [(r.event, r.to_state) for r in h.records] == [
        (Nudge(), Stage.WAIT),
        ("timeout", Stage.LATE),
    ]
    assert h.records[1].at - start == 5.0
    assert notes == ["nudged", "late"]
    assert outcome.exit is ExitKind.TERMINATED


async def test_timeout_fires_while_dispatch_keeps_continuing(mock_clock: MockClock) -> None:
    # dispatch_state never awaits: only the loop's own check can fire the timeout.
    calls = 0

    async def busy(state: Stage) -> EventLoopDirective[StageEvent]:
        nonlocal calls
        calls += 1
        if state is Stage.LATE or calls > 20:
            return TERMINATE
        mock_clock.jump(1.0)
        return CONTINUE

    sup = Staged(busy)
    outcome = await sup.run(Stage.WAIT, [])
    assert outcome.final_state is Stage.LATE
    assert calls == 6


async def test_timeout_that_stays_is_recorded(autojump_clock: MockClock) -> None:
    rounds = 0

    async def idle(state: Stage) -> EventLoopDirective[StageEvent]:
        nonlocal rounds
        rounds += 1
        if rounds > 3:
            return TERMINATE
        return await _idle_forever(state)

    sup = Staged(idle)
    records: list[TransitionRecord] = []
    sup.add_transition_listener(records.append)
    start = trio.current_time()
    outcome = await sup.run(Stage.TICKING, [])
    assert [(r.event, r.at - start) for r in records] == [
        ("timeout", 2.0),
        ("timeout", 4.0),
        ("timeout", 6.0),
    ]
    assert outcome.transitions == 3


async def test_timeout_handler_error_ends_the_run(autojump_clock: MockClock) -> None:
    sup = Staged(_idle_forever)
    with pytest.raises(SupervisorError) as info:
        await sup.run(Stage.BROKEN, [])
    assert (info.value.state, info.value.event) == ("BROKEN", "timeout")
    assert isinstance(info.value.__cause__, HandlerError)


async def test_timeout_action_error_becomes_failure_event(autojump_clock: MockClock) -> None:
    sup = BadlyLate(_terminate)
    notes: list[str] = []
    async with supervisor_harness(sup, context=notes) as h:
        outcome = await h.outcome()
    assert notes == ["bad", "absorbed"]
    timeout, fault = h.records
    assert timeout.event == "timeout" and not timeout.failure
    assert fault.failure
    assert fault.event == StageFault(
        "action Note(text='bad') failed in state LATE: RuntimeError: bad note"
    )
    assert outcome.failures == 1 and outcome.exit is ExitKind.TERMINATED


# -- async handlers and timeouts as progress ----------------------------------------------


@attrs.frozen
class Tick:
    pass


async def _async_up(state: UpDown, event: Tick, ctx: None) -> Transition[UpDown, Cleanup]:
    await anyio.lowlevel.checkpoint()
    return goto(Up())


class AsyncHandled(SelfSupervised[UpDown, Tick, None, Cleanup]):
    def __init__(self) -> None:
        super().__init__("async")
        self.after: list[UpDown] = []

    @classmethod
    def fsm_spec(cls) -> FsmSpec[UpDown, Tick, None, Cleanup]:
        b = FsmBuilder[UpDown, Tick, None, Cleanup](
            states=UpDown, events=Tick, initial=Down, name="async"
        )
        b.when(Down).on(Tick, _async_up, to=[Up])
        return b.build()

    def initial_context(self) -> None:
        return None

    def event_for_action_error(self, msg: str) -> Tick:
        raise AssertionError(msg)

    async def dispatch_state(self, state: UpDown, ctx: None) -> EventLoopDirective[Tick]:
        return Trigger(Tick()) if isinstance(state, Down) else TERMINATE

    async def after_transition(self, state: UpDown, ctx: None) -> None:
        self.after.append(state)


@each_backend
async def test_an_async_handler_is_awaited_by_the_loop() -> None:
    sup = AsyncHandled()
    outcome = await sup.run(Down("start"), None)
    assert outcome.final_state == Up() and outcome.transitions == 1
    assert sup.after == [Up()]


async def test_a_timeout_fired_and_handled_is_progress(mock_clock: MockClock) -> None:
    # TICKING's timeout stays every 2 s; in between, dispatch fails twice. Two failures
    # are within the bound, three would not be: the timeout must reset the chain.
    calls = 0
    after: list[Stage] = []

    async def failing(state: Stage) -> EventLoopDirective[StageEvent]:
        nonlocal calls
        calls += 1
        if calls > 12:
            return TERMINATE
        mock_clock.jump(1.0)
        raise RuntimeError("flaky")

    class Watching(Staged):
        async def after_transition(self, state: Stage, ctx: list[str]) -> None:
            after.append(state)

    sup = Watching(failing)
    sup.max_consecutive_failures = 2
    outcome = await sup.run(Stage.TICKING, [])
    assert outcome.exit is ExitKind.TERMINATED
    assert outcome.failures == 12
    assert after.count(Stage.TICKING) == outcome.transitions == 12 + 6
