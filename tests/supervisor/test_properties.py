"""Property-based tests: random external event sequences with injected dispatch and action
failures, failure storms and cancellations, checked against a reference model.

The model is a plain dict table of the FSM plus a few lines simulating the loop's rules
(failure events handled at once, the failure chain and what counts as progress, the
closed-channel mapping). For every generated run, the supervisor must produce exactly the
model's transitions (a prefix of them when cancelled), end as the model says, write its
completion event exactly once, and leave no task behind.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

import anyio
import attrs
import trio
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from fsmflow import FsmBuilder, FsmSpec, Transition, goto, stay
from fsmflow.supervisor import (
    CONTINUE,
    TERMINATE,
    EventLoopDirective,
    ExitKind,
    ExternalEventMode,
    ExternalEventPolicy,
    SelfSupervised,
    SupervisorError,
    Trigger,
)
from fsmflow.testing import EventScript, supervisor_harness

# -- the FSM under test ------------------------------------------------------------------


@attrs.frozen
class Off:
    pass


@attrs.frozen
class On:
    pass


@attrs.frozen
class Checking:
    fail: bool
    was_on: bool


@attrs.frozen
class Broken:
    pass


@attrs.frozen
class Done:
    pass


State: TypeAlias = Off | On | Checking | Broken | Done


@attrs.frozen
class Flip:
    fail: bool


@attrs.frozen
class Check:
    fail: bool


@attrs.frozen
class Jam:
    times: int


@attrs.frozen
class Repair:
    pass


@attrs.frozen
class Checked:
    pass


@attrs.frozen
class Shutdown:
    pass


@attrs.frozen
class Fault:
    message: str


Event: TypeAlias = Flip | Check | Jam | Repair | Checked | Shutdown | Fault


@attrs.define
class Ctx:
    jam: int = 0
    steps: int = 0
    alarms: int = 0


@attrs.frozen
class Step:
    fail: bool

    async def execute(self, ctx: Ctx) -> None:
        if self.fail:
            raise RuntimeError("step failed")
        ctx.steps += 1


@attrs.frozen
class Alarm:
    async def execute(self, ctx: Ctx) -> None:
        if ctx.jam > 0:
            ctx.jam -= 1
            raise RuntimeError("alarm jammed")
        ctx.alarms += 1


@attrs.frozen
class SetJam:
    times: int

    async def execute(self, ctx: Ctx) -> None:
        ctx.jam = self.times


Action: TypeAlias = Step | Alarm | SetJam


def _flip(state: State, event: Flip, ctx: Ctx) -> Transition[State, Action]:
    return goto(Off() if isinstance(state, On) else On(), Step(event.fail))


def _check(state: State, event: Check, ctx: Ctx) -> Transition[State, Action]:
    return goto(Checking(event.fail, isinstance(state, On)))


def _jam(state: State, event: Jam, ctx: Ctx) -> Transition[State, Action]:
    return stay(SetJam(event.times))


def _checked(state: Checking, event: Checked, ctx: Ctx) -> Transition[State, Action]:
    return goto(On() if state.was_on else Off())


def _break(state: State, event: Fault, ctx: Ctx) -> Transition[State, Action]:
    return goto(Broken(), Alarm())


def _still_broken(state: State, event: Fault, ctx: Ctx) -> Transition[State, Action]:
    return stay(Alarm())


def _repair(state: State, event: Repair, ctx: Ctx) -> Transition[State, Action]:
    return goto(Off())


def _shutdown(state: State, event: Shutdown, ctx: Ctx) -> Transition[State, Action]:
    return goto(Done())


def _ignore(state: State, event: Event, ctx: Ctx) -> Transition[State, Action]:
    return stay()


def _spec() -> FsmSpec[State, Event, Ctx, Action]:
    b = FsmBuilder[State, Event, Ctx, Action](
        states=State, events=Event, initial=Off, name="switch"
    )
    b.when(Off).on(Flip, _flip, to=[On]).on(Check, _check, to=[Checking])
    b.when(On).on(Flip, _flip, to=[Off]).on(Check, _check, to=[Checking])
    b.when(Off).on(Fault, _break, to=[Broken])
    b.when(On).on(Fault, _break, to=[Broken])
    b.when(Checking).on(Checked, _checked, to=[Off, On]).on(Fault, _break, to=[Broken])
    b.when(Broken).on(Fault, _still_broken).on(Repair, _repair, to=[Off])
    b.from_any().on(Jam, _jam).on(Shutdown, _shutdown, to=[Done])
    b.on_unhandled(_ignore)
    return b.build()


_SPEC = _spec()

_MODES = {
    Off: ExternalEventMode.BLOCK,
    On: ExternalEventMode.POLL,
    Checking: ExternalEventMode.IGNORE,
    Broken: ExternalEventMode.BLOCK,
    Done: ExternalEventMode.IGNORE,
}


class Switch(ExternalEventPolicy[State, Event], SelfSupervised[State, Event, Ctx, Action]):
    def __init__(self, max_failures: int) -> None:
        super().__init__("switch")
        self.max_consecutive_failures = max_failures
        self.completion_calls = 0

    @classmethod
    def fsm_spec(cls) -> FsmSpec[State, Event, Ctx, Action]:
        return _SPEC

    def initial_context(self) -> Ctx:
        return Ctx()

    def event_for_action_error(self, msg: str) -> Event:
        return Fault(msg)

    def external_event_mode(self, state: State) -> ExternalEventMode:
        return _MODES[type(state)]

    def on_external_event_channel_closed(self, state: State) -> Event | None:
        return Shutdown()

    async def dispatch_state(self, state: State, ctx: Ctx) -> EventLoopDirective[Event]:
        match state:
            case Checking(fail=True):
                raise RuntimeError("check failed")
            case Checking():
                return Trigger(Checked())
            case On():
                return CONTINUE  # POLL found nothing yet
            case _:
                return TERMINATE

    async def write_completion_event(self) -> None:
        self.completion_calls += 1
        await super().write_completion_event()


# -- the reference model -----------------------------------------------------------------

#: (state, event) -> (next state or None to stay, actions); a plain table, no FSM engine.
Row: TypeAlias = Callable[[State, Event], tuple[State | None, list[Action]]]


def _table() -> dict[tuple[type, type], Row]:
    table: dict[tuple[type, type], Row] = {}
    for lit in (Off, On):
        table[lit, Flip] = lambda s, e: (
            Off() if isinstance(s, On) else On(),
            [Step(e.fail)] if isinstance(e, Flip) else [],
        )
        table[lit, Check] = lambda s, e: (
            Checking(isinstance(e, Check) and e.fail, isinstance(s, On)),
            [],
        )
        table[lit, Fault] = lambda s, e: (Broken(), [Alarm()])
    table[Checking, Checked] = lambda s, e: (
        On() if isinstance(s, Checking) and s.was_on else Off(),
        [],
    )
    table[Checking, Fault] = lambda s, e: (Broken(), [Alarm()])
    table[Broken, Fault] = lambda s, e: (None, [Alarm()])
    table[Broken, Repair] = lambda s, e: (Off(), [])
    for any_state in (Off, On, Checking, Broken, Done):
        table[any_state, Jam] = lambda s, e: (None, [SetJam(e.times if isinstance(e, Jam) else 0)])
        table[any_state, Shutdown] = lambda s, e: (Done(), [])
    return table


TABLE = _table()


def _unhandled(state: State, event: Event) -> tuple[State | None, list[Action]]:
    return None, []


#: A transition as the model and the records both describe it.
Move: TypeAlias = tuple[State, str, State, bool]


@attrs.define
class Model:
    max_failures: int
    state: State = attrs.Factory(Off)
    jam: int = 0
    chain: int = 0
    steps: list[Move] = attrs.Factory(list)

    def feed(self, event: Event, failure: bool) -> bool:
        """Handle ``event`` and any failure events it causes; False when the chain
        overflows (the run fails)."""
        while True:
            before = self.state
            row = TABLE.get((type(before), type(event)), _unhandled)
            target, actions = row(before, event)
            self.state = before if target is None else target
            self.steps.append((before, type(event).__name__, self.state, failure))
            failed = False
            for action in actions:
                if isinstance(action, Step) and action.fail:
                    failed = True
                elif isinstance(action, Alarm) and self.jam > 0:
                    self.jam -= 1
                    failed = True
                elif isinstance(action, SetJam):
                    self.jam = action.times
                if failed:
                    break
            moved = self.state != before
            # Progress: an ordinary event fully handled or moving the state; a failure
            # event only when it moved the state and all its actions ran.
            if (not failure and (not failed or moved)) or (failure and not failed and moved):
                self.chain = 0
            if not failed:
                return True
            if not self.note_failure():
                return False
            event, failure = Fault("model"), True

    def note_failure(self) -> bool:
        self.chain += 1
        return self.chain <= self.max_failures

    def run(self, events: list[Event]) -> ExitKind:
        queue = list(events)
        while True:
            match self.state:
                case Done():
                    return ExitKind.TERMINATED
                case Checking(fail=True):
                    ok = self.note_failure() and self.feed(Fault("model"), True)
                case Checking():
                    ok = self.feed(Checked(), False)
                case _:
                    ok = self.feed(queue.pop(0) if queue else Shutdown(), False)
            if not ok:
                return ExitKind.FAILED


# -- the property ------------------------------------------------------------------------

external_events = st.one_of(
    st.builds(Flip, st.booleans()),
    st.builds(Check, st.booleans()),
    st.builds(Jam, st.integers(0, 5)),
    st.just(Repair()),
)


async def _run_switch(
    events: list[Event], max_failures: int, capacity: int, cancel_after: int | None
) -> None:
    model = Model(max_failures)
    model_exit = model.run(events)
    sup = Switch(max_failures)
    if cancel_after is not None:
        limit = cancel_after

        def cancel_at_limit(_: object) -> None:
            if len(h.records) == limit:
                h.cancel()

        sup.add_transition_listener(cancel_at_limit)
    async with supervisor_harness(sup, capacity=capacity) as h:
        h.play(EventScript.of(*events))
        h.close_events()
        outcome = await h.outcome()
    assert h.done
    event(f"exit: {outcome.exit.name}")
    actual = [(r.from_state, type(r.event).__name__, r.to_state, r.failure) for r in h.records]
    assert sup.completion_calls == 1 and len(h.completions) == 1
    assert h.completions[0].exit is outcome.exit
    assert outcome.final_state == (actual[-1][2] if actual else Off())
    if outcome.exit is ExitKind.CANCELLED:
        assert cancel_after is not None and len(actual) >= cancel_after
        assert actual == model.steps[: len(actual)]
        return
    assert actual == model.steps
    assert outcome.exit is model_exit
    assert outcome.final_state == model.state
    if model_exit is ExitKind.FAILED:
        assert isinstance(outcome.error, SupervisorError)
        assert len(outcome.error.chain) == max_failures + 1


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=st.lists(external_events, max_size=25),
    max_failures=st.integers(1, 4),
    capacity=st.sampled_from([0, 1, 3, 64]),
)
def test_runs_match_the_reference_model_on_trio(
    events: list[Event], max_failures: int, capacity: int
) -> None:
    trio.run(_run_switch, events, max_failures, capacity, None)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=st.lists(external_events, min_size=1, max_size=25),
    max_failures=st.integers(1, 4),
    capacity=st.sampled_from([0, 1, 64]),
    cancel_after=st.integers(1, 12),
)
def test_cancelled_runs_follow_the_reference_model_on_trio(
    events: list[Event], max_failures: int, capacity: int, cancel_after: int
) -> None:
    trio.run(_run_switch, events, max_failures, capacity, cancel_after)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=st.lists(external_events, max_size=25),
    max_failures=st.integers(1, 4),
    capacity=st.sampled_from([0, 1, 64]),
    cancel_after=st.none() | st.integers(1, 12),
)
def test_runs_match_the_reference_model_on_asyncio(
    events: list[Event], max_failures: int, capacity: int, cancel_after: int | None
) -> None:
    anyio.run(_run_switch, events, max_failures, capacity, cancel_after, backend="asyncio")
