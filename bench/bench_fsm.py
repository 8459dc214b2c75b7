"""Transitions per second of ``StateMachine.handle``, side by side with its peers.

The workload is a three-state cycle ``A -> B -> C -> A`` driven by a single event, with one
trivial action per transition: an action whose ``execute`` adds one to a counter. Every
contestant makes the transition *and* runs the action, and each one's counter and final
state are checked after timing, so none can skip work:

- fsmflow under ``trio.run``: ``await machine.handle(...)`` then
  ``await machine.execute_actions(...)``, with handlers that return ``goto(next, action)``;
- ``transitions.Machine`` (synchronous) with an ``after`` callback per transition;
- transitions' ``AsyncMachine`` under ``asyncio.run`` with an async ``after`` callback;
- python-statemachine's synchronous and asynchronous engines (a ``StateChart`` whose
  ``on_tick`` callback is a plain or an ``async`` method), the latter under ``asyncio.run``;
- two hand-written floors under ``trio.run`` that await the same action fsmflow runs: a
  ``match`` statement on the state, and a dict from each state to its next state and action.

Rounds are interleaved (every contestant once per round, each set up afresh and warmed
up); the table shows medians with min..max, and ratios of medians with the spread of the
paired rounds. Run it with ``python bench/bench_fsm.py`` (``--quick`` for a smoke run,
``--json PATH`` to keep the figures); ``docs/performance.md`` records the results.
"""

from __future__ import annotations

import asyncio
import enum
from typing import Any

import attrs
import statemachine
import transitions
import trio
from _common import (
    Measurement,
    Runner,
    Settings,
    environment,
    format_table,
    measure_rounds,
    parse_settings,
    ratio,
    time_async,
    time_sync,
    write_json,
)
from transitions.extensions.asyncio import AsyncMachine

from fsmflow import FsmBuilder, FsmSpec, Transition, goto


class Step(enum.Enum):
    A = "A"
    B = "B"
    C = "C"


class Tick(enum.Enum):
    TICK = "tick"


#: The state reached from each state; the floors and the final-state check use it.
NEXT = {Step.A: Step.B, Step.B: Step.C, Step.C: Step.A}


@attrs.define
class Counter:
    """The context every action changes."""

    count: int = 0


@attrs.frozen
class Bump:
    """The trivial action: count one transition."""

    async def execute(self, ctx: Counter) -> None:
        ctx.count += 1


BUMP = Bump()


def expect(name: str, counter: int, state: str, transitions_made: int) -> None:
    """Fail loudly if a contestant skipped its action or lost its place in the cycle."""
    final = Step.A
    for _ in range(transitions_made % 3):
        final = NEXT[final]
    if counter != transitions_made or state != final.value:
        raise AssertionError(
            f"{name}: {counter} actions and state {state} after {transitions_made} "
            f"transitions; expected {transitions_made} and {final.value}"
        )


# -- fsmflow ---------------------------------------------------------------------------------


def to_b(state: Step, event: Tick, ctx: Counter) -> Transition[Step, Bump]:
    return goto(Step.B, BUMP)


def to_c(state: Step, event: Tick, ctx: Counter) -> Transition[Step, Bump]:
    return goto(Step.C, BUMP)


def to_a(state: Step, event: Tick, ctx: Counter) -> Transition[Step, Bump]:
    return goto(Step.A, BUMP)


def cycle_spec() -> FsmSpec[Step, Tick, Counter, Bump]:
    builder = FsmBuilder[Step, Tick, Counter, Bump](
        states=Step, events=Tick, initial=Step.A, name="cycle"
    )
    builder.when(Step.A).on(Tick.TICK, to_b, to=[Step.B])
    builder.when(Step.B).on(Tick.TICK, to_c, to=[Step.C])
    builder.when(Step.C).on(Tick.TICK, to_a, to=[Step.A])
    return builder.build()


def run_fsmflow(operations: int, warmup: int) -> float:
    machine = cycle_spec().new_machine(Step.A)
    counter = Counter()

    async def body(count: int) -> None:
        event = Tick.TICK
        for _ in range(count):
            actions = await machine.handle(event, counter)
            await machine.execute_actions(actions, counter)

    seconds = trio.run(time_async, body, operations, warmup)
    expect("fsmflow", counter.count, machine.state.value, warmup + operations)
    return seconds


# -- transitions -----------------------------------------------------------------------------


def cycle_transitions(callback: str) -> list[dict[str, str]]:
    return [
        {"trigger": "tick", "source": "A", "dest": "B", "after": callback},
        {"trigger": "tick", "source": "B", "dest": "C", "after": callback},
        {"trigger": "tick", "source": "C", "dest": "A", "after": callback},
    ]


class TransitionsModel:
    """The model ``transitions.Machine`` adds ``tick()`` and ``state`` to."""

    def __init__(self) -> None:
        self.count = 0
        self.machine = transitions.Machine(
            model=self, states=["A", "B", "C"], initial="A", transitions=cycle_transitions("bump")
        )

    def bump(self) -> None:
        self.count += 1


def run_transitions(operations: int, warmup: int) -> float:
    model: Any = TransitionsModel()

    def body(count: int) -> None:
        for _ in range(count):
            model.tick()

    seconds = time_sync(body, operations, warmup)
    expect("transitions.Machine", model.count, model.state, warmup + operations)
    return seconds


class AsyncTransitionsModel:
    """The model ``AsyncMachine`` adds an awaitable ``tick()`` and ``state`` to."""

    def __init__(self) -> None:
        self.count = 0
        self.machine = AsyncMachine(
            model=self, states=["A", "B", "C"], initial="A", transitions=cycle_transitions("bump")
        )

    async def bump(self) -> None:
        self.count += 1


def run_async_transitions(operations: int, warmup: int) -> float:
    model: Any = AsyncTransitionsModel()

    async def body(count: int) -> None:
        for _ in range(count):
            await model.tick()

    seconds = asyncio.run(time_async(body, operations, warmup))
    expect("AsyncMachine", model.count, model.state, warmup + operations)
    return seconds


# -- python-statemachine ---------------------------------------------------------------------


class SyncCycle(statemachine.StateChart[Any]):
    """A plain ``on_tick`` callback keeps python-statemachine on its synchronous engine."""

    A = statemachine.State(initial=True, value="A")
    B = statemachine.State(value="B")
    C = statemachine.State(value="C")
    tick = A.to(B) | B.to(C) | C.to(A)

    def __init__(self) -> None:
        self.count = 0
        super().__init__()

    def on_tick(self) -> None:
        self.count += 1


class AsyncCycle(statemachine.StateChart[Any]):
    """An ``async`` callback switches python-statemachine to its asynchronous engine."""

    A = statemachine.State(initial=True, value="A")
    B = statemachine.State(value="B")
    C = statemachine.State(value="C")
    tick = A.to(B) | B.to(C) | C.to(A)

    def __init__(self) -> None:
        self.count = 0
        super().__init__()

    async def on_tick(self) -> None:
        self.count += 1


def run_statemachine(operations: int, warmup: int) -> float:
    machine = SyncCycle()

    def body(count: int) -> None:
        for _ in range(count):
            machine.tick()

    seconds = time_sync(body, operations, warmup)
    state = machine.current_state_value
    expect("python-statemachine", machine.count, state, warmup + operations)
    return seconds


def run_async_statemachine(operations: int, warmup: int) -> float:
    async def measure() -> tuple[AsyncCycle, float]:
        machine = AsyncCycle()
        await machine.activate_initial_state()

        async def body(count: int) -> None:
            for _ in range(count):
                await machine.tick()

        return machine, await time_async(body, operations, warmup)

    machine, seconds = asyncio.run(measure())
    state = machine.current_state_value
    expect("python-statemachine async", machine.count, state, warmup + operations)
    return seconds


# -- hand-written floors ---------------------------------------------------------------------


def run_match_floor(operations: int, warmup: int) -> float:
    counter = Counter()
    state = Step.A

    async def body(count: int) -> None:
        nonlocal state
        for _ in range(count):
            match state:
                case Step.A:
                    state = Step.B
                case Step.B:
                    state = Step.C
                case Step.C:
                    state = Step.A
            await BUMP.execute(counter)

    seconds = trio.run(time_async, body, operations, warmup)
    expect("match floor", counter.count, state.value, warmup + operations)
    return seconds


def run_dict_floor(operations: int, warmup: int) -> float:
    counter = Counter()
    table = {state: (target, BUMP) for state, target in NEXT.items()}
    state = Step.A

    async def body(count: int) -> None:
        nonlocal state
        for _ in range(count):
            state, action = table[state]
            await action.execute(counter)

    seconds = trio.run(time_async, body, operations, warmup)
    expect("dict-table floor", counter.count, state.value, warmup + operations)
    return seconds


# -- the run ---------------------------------------------------------------------------------


@attrs.frozen
class Contestant:
    name: str
    #: "fsmflow", "peer" or "floor": which ratio the table shows for it.
    role: str
    #: Transitions per timed run in full mode, sized so that each run lasts 0.3-1 s.
    transitions: int
    run: Runner


FSMFLOW = "fsmflow (trio)"
TRANSITIONS = "transitions.Machine (sync)"
PSM_ASYNC = "python-statemachine async engine (asyncio)"
DICT_FLOOR = "hand-written dict-table loop (trio, floor)"

CONTESTANTS = (
    Contestant(FSMFLOW, "fsmflow", 500_000, run_fsmflow),
    Contestant(TRANSITIONS, "peer", 100_000, run_transitions),
    Contestant("transitions AsyncMachine (asyncio)", "peer", 30_000, run_async_transitions),
    Contestant("python-statemachine sync engine", "peer", 10_000, run_statemachine),
    Contestant(PSM_ASYNC, "peer", 10_000, run_async_statemachine),
    Contestant("hand-written match loop (trio, floor)", "floor", 2_000_000, run_match_floor),
    Contestant(DICT_FLOOR, "floor", 2_000_000, run_dict_floor),
)


@attrs.frozen
class Aim:
    """A target: ``faster / slower >= at_least`` or ``<= at_most``, on median rates."""

    text: str
    faster: str
    slower: str
    at_least: float | None = None
    at_most: float | None = None

    def ratio(self, results: dict[str, Measurement]) -> float:
        return results[self.faster].median_rate / results[self.slower].median_rate

    def met(self, results: dict[str, Measurement]) -> bool:
        value = self.ratio(results)
        if self.at_least is not None:
            return value >= self.at_least
        assert self.at_most is not None
        return value <= self.at_most


AIMS = (
    Aim("fsmflow at least 5x transitions.Machine", FSMFLOW, TRANSITIONS, at_least=5),
    Aim("fsmflow at least 50x python-statemachine async", FSMFLOW, PSM_ASYNC, at_least=50),
    Aim("fsmflow within 5x of the dict-table loop", DICT_FLOOR, FSMFLOW, at_most=5),
)


def report(settings: Settings, measured: list[Measurement]) -> None:
    results = {m.name: m for m in measured}
    ours = results[FSMFLOW]
    rows = []
    for contestant in CONTESTANTS:
        result = results[contestant.name]
        rows.append(
            [
                contestant.name,
                result.summary(),
                ratio(ours, result) if contestant.role == "peer" else "",
                ratio(result, ours) if contestant.role == "floor" else "",
            ]
        )
    print()
    print(
        f"FSM engine: 3-state cycle, one trivial action per transition; medians (min..max) "
        f"of {settings.repeats} interleaved rounds{', quick' if settings.quick else ''}"
    )
    print(format_table(["contestant", "transitions/s", "fsmflow/peer", "floor/fsmflow"], rows))
    print()
    for aim in AIMS:
        verdict = "met" if aim.met(results) else "MISSED"
        print(f"aim: {aim.text}: {aim.ratio(results):.2f}x, {verdict}")
    if settings.json_path is not None:
        write_json(
            settings.json_path,
            {
                "benchmark": "fsm",
                "quick": settings.quick,
                "rounds": settings.repeats,
                "environment": environment(
                    ["fsmflow", "trio", "transitions", "python-statemachine"]
                ),
                "results": [result.as_json() for result in measured],
                "aims": [
                    {"aim": aim.text, "ratio": aim.ratio(results), "met": aim.met(results)}
                    for aim in AIMS
                ],
            },
        )


def main() -> None:
    settings = parse_settings("Transitions per second of fsmflow's StateMachine and its peers.")
    runners = [
        (contestant.name, contestant.transitions, contestant.run) for contestant in CONTESTANTS
    ]
    report(settings, measure_rounds(runners, settings))


if __name__ == "__main__":
    main()
