"""Supervisor loop benchmark: transitions and external events per second.

Runs, in one process, the same work -- a 3-state cycle A -> B -> C -> A, one trivial
action (a counter increment) per transition -- as:

* fsmflow's supervisor loop: ``dispatch_state`` returns ``Trigger(Step())``; states as
  frozen attrs classes, and again as an ``enum.Enum``;
* a hand-written trio loop that yields to the scheduler on every transition;
* transitions' ``AsyncMachine`` (``transitions.extensions.asyncio``) on asyncio;
* python-statemachine's async engine (``statemachine``, v3) on asyncio.

Then external events: a producer task ``send``s N events through ``start_supervisor``'s
handle to a supervisor whose only state is ``POLL``; each event is one handled
transition. A hand-written trio memory channel consumer does the same as a reference.

Prints best-of-N rates (``time.perf_counter``) and ratios.
``python bench/bench_supervisor.py [--quick] [--json PATH]``
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import gc
import json
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

import attrs
import statemachine
import transitions
import trio
from transitions.extensions.asyncio import AsyncMachine

from fsmflow import (
    CONTINUE,
    TERMINATE,
    EventLoopDirective,
    ExternalEventMode,
    ExternalEventPolicy,
    FsmBuilder,
    FsmSpec,
    SelfSupervised,
    Transition,
    Trigger,
    goto,
    start_supervisor,
    stay,
)

# -- the shared work ----------------------------------------------------------------------


@attrs.define
class Counter:
    """The context: the one action increments ``n``; the run stops at ``limit``."""

    limit: int
    n: int = 0


class Bump:
    """The trivial action every transition runs."""

    __slots__ = ()

    async def execute(self, ctx: Counter) -> None:
        ctx.n += 1


BUMP = Bump()


# -- fsmflow, class states ----------------------------------------------------------------


@attrs.frozen
class A:
    pass


@attrs.frozen
class B:
    pass


@attrs.frozen
class C:
    pass


Cycle = A | B | C


@attrs.frozen
class Step:
    pass


STATE_A, STATE_B, STATE_C = A(), B(), C()
STEP = Trigger(Step())


def a_to_b(state: A, event: Step, ctx: Counter) -> Transition[Cycle, Bump]:
    return goto(STATE_B, BUMP)


def b_to_c(state: B, event: Step, ctx: Counter) -> Transition[Cycle, Bump]:
    return goto(STATE_C, BUMP)


def c_to_a(state: C, event: Step, ctx: Counter) -> Transition[Cycle, Bump]:
    return goto(STATE_A, BUMP)


def class_spec() -> FsmSpec[Cycle, Step, Counter, Bump]:
    builder = FsmBuilder[Cycle, Step, Counter, Bump](
        states=Cycle, events=Step, initial=A, name="cycle"
    )
    builder.when(A).on(Step, a_to_b, to=[B])
    builder.when(B).on(Step, b_to_c, to=[C])
    builder.when(C).on(Step, c_to_a, to=[A])
    return builder.build()


CLASS_SPEC = class_spec()


class ClassCycle(SelfSupervised[Cycle, Step, Counter, Bump]):
    @classmethod
    def fsm_spec(cls) -> FsmSpec[Cycle, Step, Counter, Bump]:
        return CLASS_SPEC

    def event_for_action_error(self, msg: str) -> Step:
        raise AssertionError(msg)

    async def dispatch_state(self, state: Cycle, ctx: Counter) -> EventLoopDirective[Step]:
        return TERMINATE if ctx.n >= ctx.limit else STEP


# -- fsmflow, enum states -----------------------------------------------------------------


class EnumState(enum.Enum):
    A = "a"
    B = "b"
    C = "c"


class EnumEvent(enum.Enum):
    STEP = "step"


NEXT_MEMBER = {EnumState.A: EnumState.B, EnumState.B: EnumState.C, EnumState.C: EnumState.A}
ENUM_STEP = Trigger(EnumEvent.STEP)


def enum_step(state: EnumState, event: EnumEvent, ctx: Counter) -> Transition[EnumState, Bump]:
    return goto(NEXT_MEMBER[state], BUMP)


def enum_spec() -> FsmSpec[EnumState, EnumEvent, Counter, Bump]:
    builder = FsmBuilder[EnumState, EnumEvent, Counter, Bump](
        states=EnumState, events=EnumEvent, initial=EnumState.A, name="enum cycle"
    )
    for state in EnumState:
        builder.when(state).on(EnumEvent.STEP, enum_step, to=[NEXT_MEMBER[state]])
    return builder.build()


ENUM_SPEC = enum_spec()


class EnumCycle(SelfSupervised[EnumState, EnumEvent, Counter, Bump]):
    @classmethod
    def fsm_spec(cls) -> FsmSpec[EnumState, EnumEvent, Counter, Bump]:
        return ENUM_SPEC

    def event_for_action_error(self, msg: str) -> EnumEvent:
        raise AssertionError(msg)

    async def dispatch_state(self, state: EnumState, ctx: Counter) -> EventLoopDirective[EnumEvent]:
        return TERMINATE if ctx.n >= ctx.limit else ENUM_STEP


# -- the contestants: each runs ``n`` transitions and returns the seconds it took ---------


def run_fsmflow_classes(n: int) -> float:
    async def body() -> float:
        ctx = Counter(n)
        start = time.perf_counter()
        outcome = await ClassCycle("bench").run(STATE_A, ctx)
        elapsed = time.perf_counter() - start
        assert outcome.transitions == n == ctx.n
        return elapsed

    return trio.run(body)


def run_fsmflow_enums(n: int) -> float:
    async def body() -> float:
        ctx = Counter(n)
        start = time.perf_counter()
        outcome = await EnumCycle("bench").run(EnumState.A, ctx)
        elapsed = time.perf_counter() - start
        assert outcome.transitions == n == ctx.n
        return elapsed

    return trio.run(body)


NEXT_STATE: dict[type[Cycle], Cycle] = {A: STATE_B, B: STATE_C, C: STATE_A}


def run_trio_loop(n: int) -> float:
    """What you would write by hand: look up the next state, run the action, yield."""

    async def body() -> float:
        ctx = Counter(n)
        state: Cycle = STATE_A
        checkpoint = trio.lowlevel.checkpoint
        start = time.perf_counter()
        while ctx.n < ctx.limit:
            state = NEXT_STATE[type(state)]
            await BUMP.execute(ctx)
            await checkpoint()
        elapsed = time.perf_counter() - start
        assert ctx.n == n
        return elapsed

    return trio.run(body)


class _TransitionsModel:
    def __init__(self, limit: int) -> None:
        self.ctx = Counter(limit)

    async def bump(self) -> None:
        await BUMP.execute(self.ctx)


def run_async_machine(n: int) -> float:
    async def body() -> float:
        model = _TransitionsModel(n)
        AsyncMachine(
            model=model,
            states=["a", "b", "c"],
            transitions=[["step", "a", "b"], ["step", "b", "c"], ["step", "c", "a"]],
            initial="a",
            after_state_change="bump",
            auto_transitions=False,
        )
        step: Callable[[], Any] = model.step  # type: ignore[attr-defined]
        start = time.perf_counter()
        while model.ctx.n < n:
            await step()
        elapsed = time.perf_counter() - start
        assert model.ctx.n == n
        return elapsed

    return asyncio.run(body())


class _StateChartCycle(statemachine.StateMachine):
    a = statemachine.State(initial=True)
    b = statemachine.State()
    c = statemachine.State()
    step = a.to(b) | b.to(c) | c.to(a)

    def __init__(self, limit: int) -> None:
        self.ctx = Counter(limit)
        super().__init__()

    async def on_step(self) -> None:
        await BUMP.execute(self.ctx)


def run_python_statemachine(n: int) -> float:
    async def body() -> float:
        machine = _StateChartCycle(n)
        await machine.activate_initial_state()
        start = time.perf_counter()
        while machine.ctx.n < n:
            await machine.send("step")
        elapsed = time.perf_counter() - start
        assert machine.ctx.n == n
        return elapsed

    return asyncio.run(body())


# -- external events ----------------------------------------------------------------------


@attrs.frozen
class Open:
    pass


@attrs.frozen
class Done:
    pass


Inbox = Open | Done


@attrs.frozen
class Ping:
    pass


@attrs.frozen
class Hangup:
    pass


InboxEvent = Ping | Hangup


def take(state: Open, event: Ping, ctx: Counter) -> Transition[Inbox, Bump]:
    return stay(BUMP)


def hang_up(state: Open, event: Hangup, ctx: Counter) -> Transition[Inbox, Bump]:
    return goto(Done())


def inbox_spec() -> FsmSpec[Inbox, InboxEvent, Counter, Bump]:
    builder = FsmBuilder[Inbox, InboxEvent, Counter, Bump](
        states=Inbox, events=InboxEvent, initial=Open, name="inbox"
    )
    builder.when(Open).on(Ping, take, to=[Open]).on(Hangup, hang_up, to=[Done])
    return builder.build()


INBOX_SPEC = inbox_spec()


class PollingInbox(
    ExternalEventPolicy[Inbox, InboxEvent], SelfSupervised[Inbox, InboxEvent, Counter, Bump]
):
    """``Open`` polls the channel; a closed channel means ``Hangup``."""

    @classmethod
    def fsm_spec(cls) -> FsmSpec[Inbox, InboxEvent, Counter, Bump]:
        return INBOX_SPEC

    def event_for_action_error(self, msg: str) -> InboxEvent:
        raise AssertionError(msg)

    def external_event_mode(self, state: Inbox) -> ExternalEventMode:
        return ExternalEventMode.POLL

    def on_external_event_channel_closed(self, state: Inbox) -> InboxEvent | None:
        return Hangup() if isinstance(state, Open) else None

    async def dispatch_state(self, state: Inbox, ctx: Counter) -> EventLoopDirective[InboxEvent]:
        return TERMINATE if isinstance(state, Done) else CONTINUE


#: The external channel's capacity (``start_supervisor``'s default).
CAPACITY = 16


def run_fsmflow_external(n: int) -> float:
    async def body() -> float:
        ctx = Counter(n)
        ping = Ping()
        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            handle = await start_supervisor(
                nursery, PollingInbox("inbox"), context=ctx, capacity=CAPACITY
            )
            send = handle.send
            for _ in range(n):
                await send(ping)
            handle.close_events()
            outcome = await handle.outcome()
        elapsed = time.perf_counter() - start
        assert ctx.n == n and outcome.final_state == Done()
        return elapsed

    return trio.run(body)


def run_trio_channel(n: int) -> float:
    """A producer and a hand-written consumer on a trio memory channel of the same size."""

    async def body() -> float:
        ctx = Counter(n)
        ping = Ping()
        send_channel, receive_channel = trio.open_memory_channel[Ping](CAPACITY)

        async def consume() -> None:
            async with receive_channel:
                async for _ in receive_channel:
                    await BUMP.execute(ctx)

        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            async with send_channel:
                for _ in range(n):
                    await send_channel.send(ping)
        elapsed = time.perf_counter() - start
        assert ctx.n == n
        return elapsed

    return trio.run(body)


# -- running ------------------------------------------------------------------------------


@attrs.frozen
class Contestant:
    name: str
    run: Callable[[int], float]
    #: Transitions (or events) per run, before ``--quick`` divides it.
    size: int


TRANSITION_CONTESTANTS = (
    Contestant("fsmflow loop (class states)", run_fsmflow_classes, 200_000),
    Contestant("fsmflow loop (enum states)", run_fsmflow_enums, 200_000),
    Contestant("trio loop, yield every step", run_trio_loop, 200_000),
    Contestant(f"transitions {transitions.__version__} AsyncMachine", run_async_machine, 20_000),
    Contestant(
        f"python-statemachine {statemachine.__version__} async",
        run_python_statemachine,
        10_000,
    ),
)
EVENT_CONTESTANTS = (
    Contestant("fsmflow POLL supervisor", run_fsmflow_external, 100_000),
    Contestant("trio channel, hand-written consumer", run_trio_channel, 100_000),
)


def best_rate(contestant: Contestant, repeats: int, divisor: int) -> float:
    """The best of ``repeats`` runs, as operations per second."""
    n = max(contestant.size // divisor, 1)
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        best = min(best, contestant.run(n))
    return n / best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the work, 2 repeats")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    repeats, divisor = (2, 10) if args.quick else (5, 1)
    print("Supervisor loop benchmark: 3-state cycle, one trivial action per transition")
    print(
        f"Python {platform.python_version()}, trio {trio.__version__}, "
        f"best of {repeats}{' (quick)' if args.quick else ''}\n"
    )
    rates: dict[str, float] = {}
    print(f"{'transitions':<40}{'per second':>14}{'fsmflow x':>12}")
    for contestant in TRANSITION_CONTESTANTS:
        rates[contestant.name] = best_rate(contestant, repeats, divisor)
    ours = rates[TRANSITION_CONTESTANTS[0].name]
    for contestant in TRANSITION_CONTESTANTS:
        rate = rates[contestant.name]
        print(f"{contestant.name:<40}{rate:>14,.0f}{ours / rate:>11.2f}x")
    print(f"\n{'external events (capacity ' + str(CAPACITY) + ')':<40}{'per second':>14}")
    for contestant in EVENT_CONTESTANTS:
        rates[contestant.name] = best_rate(contestant, repeats, divisor)
        print(f"{contestant.name:<40}{rates[contestant.name]:>14,.0f}")

    names = [c.name for c in TRANSITION_CONTESTANTS]
    ratios = {
        "vs trio loop": ours / rates[names[2]],
        "vs AsyncMachine": ours / rates[names[3]],
        "vs python-statemachine": ours / rates[names[4]],
        "enum states vs trio loop": rates[names[1]] / rates[names[2]],
    }
    external = rates[EVENT_CONTESTANTS[0].name]
    print()
    print(f"fsmflow / trio loop:       {ratios['vs trio loop']:.2f}x (aim >= 1.5x)")
    print(f"  with enum states:        {ratios['enum states vs trio loop']:.2f}x")
    print(f"fsmflow / AsyncMachine:    {ratios['vs AsyncMachine']:.1f}x (aim >= 15x)")
    print(f"fsmflow / python-statemachine: {ratios['vs python-statemachine']:.1f}x")
    print(f"external events:           {external:,.0f}/s (aim >= 100,000/s)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {
                    "quick": args.quick,
                    "repeats": repeats,
                    "python": platform.python_version(),
                    "rates_per_second": rates,
                    "ratios": ratios,
                },
                fh,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
