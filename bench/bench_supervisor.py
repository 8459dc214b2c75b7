"""Supervisor loop benchmark: transitions and external events per second, like for like.

Every contestant does the same work per transition — a 3-state cycle ``A -> B -> C -> A``:
look up the handler for the current state, call it (it returns ``goto(next, action)``),
run the action (a counter increment), and stop at the limit — and yields to the
scheduler on the same budget: once every 64 transitions (fsmflow's ``yield_every``).

* fsmflow's supervisor loop, ``dispatch_state`` returning ``Trigger(Step())``: states as
  frozen attrs classes, as an ``enum.Enum``, and the class-state run started through
  ``start_supervisor`` (what a handle, and so a supervision tree's child, pays);
* the floor: a hand-written trio loop doing the lookup, the call, the action and a
  checkpoint every 64 transitions;
* a labelled extra: the same hand-written loop yielding on every transition;
* transitions' ``AsyncMachine`` and python-statemachine's async engine, on asyncio (they
  yield whenever their callbacks do; these do not).

External events: a producer ``send``s N events through ``start_supervisor``'s handle to a
supervisor whose only state is ``POLL``; each event is one handled transition (handler
lookup, ``stay(action)``, the action). ``EventSender.send`` is a cancellation point that
yields when the channel is full and every 64 sends. The floor is a trio memory channel
of the same capacity with the same yield budget on both sides, whose hand-written
consumer does the same lookup, call and action per event; a labelled extra uses trio's
own ``send`` and ``async for``, which yield on every event.

Rounds are interleaved (each contestant once per round, set up afresh, warmed up, then
timed); medians with min..max are reported, ratios of medians with the spread of the
paired rounds. Every run's counters and final state are checked after timing.

``python bench/bench_supervisor.py [--quick] [--repeats N] [--json PATH]``
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
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
    write_json,
)
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

#: The scheduling budget every contestant that yields on a budget uses.
YIELD_EVERY = 64

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


def check(name: str, ctx: Counter, count: int, transitions_made: int | None = None) -> None:
    """Fail loudly if a contestant skipped work."""
    made = ctx.n if transitions_made is None else transitions_made
    if ctx.n != count or made != count:
        raise AssertionError(f"{name}: {ctx.n} actions, {made} transitions; expected {count}")


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


def a_to_b(state: Cycle, event: Step, ctx: Counter) -> Transition[Cycle, Bump]:
    return goto(STATE_B, BUMP)


def b_to_c(state: Cycle, event: Step, ctx: Counter) -> Transition[Cycle, Bump]:
    return goto(STATE_C, BUMP)


def c_to_a(state: Cycle, event: Step, ctx: Counter) -> Transition[Cycle, Bump]:
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
    yield_every = YIELD_EVERY

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
    yield_every = YIELD_EVERY

    @classmethod
    def fsm_spec(cls) -> FsmSpec[EnumState, EnumEvent, Counter, Bump]:
        return ENUM_SPEC

    def event_for_action_error(self, msg: str) -> EnumEvent:
        raise AssertionError(msg)

    async def dispatch_state(self, state: EnumState, ctx: Counter) -> EventLoopDirective[EnumEvent]:
        return TERMINATE if ctx.n >= ctx.limit else ENUM_STEP


# -- the transition contestants: ``(operations, warmup) -> seconds`` ------------------------


def run_fsmflow_classes(operations: int, warmup: int) -> float:
    async def body(count: int) -> None:
        ctx = Counter(count)
        outcome = await ClassCycle("bench").run(STATE_A, ctx)
        check("fsmflow loop", ctx, count, outcome.transitions)

    return trio.run(time_async, body, operations, warmup)


def run_fsmflow_enums(operations: int, warmup: int) -> float:
    async def body(count: int) -> None:
        ctx = Counter(count)
        outcome = await EnumCycle("bench").run(EnumState.A, ctx)
        check("fsmflow loop, enum states", ctx, count, outcome.transitions)

    return trio.run(time_async, body, operations, warmup)


def run_fsmflow_handle(operations: int, warmup: int) -> float:
    async def body(count: int) -> None:
        ctx = Counter(count)
        async with trio.open_nursery() as nursery:
            handle = await start_supervisor(nursery, ClassCycle("bench"), context=ctx)
        outcome = await handle.outcome()
        check("fsmflow handle", ctx, count, outcome.transitions)
        if handle.state != outcome.final_state:
            raise AssertionError("the handle's watcher missed the final state")

    return trio.run(time_async, body, operations, warmup)


#: The floor's handler table: the handler for each state class, as fsmflow looks it up.
HANDLERS: dict[type, Callable[[Any, Step, Counter], Transition[Cycle, Bump]]] = {
    A: a_to_b,
    B: b_to_c,
    C: c_to_a,
}


def _hand_written(yield_every: int) -> Runner:
    """A trio loop doing fsmflow's work by hand: look the handler up by the state's
    class, call it, run its actions, and yield every ``yield_every`` transitions."""

    def run(operations: int, warmup: int) -> float:
        async def body(count: int) -> None:
            ctx = Counter(count)
            state: Cycle = STATE_A
            event = Step()
            handlers = HANDLERS
            checkpoint = trio.lowlevel.checkpoint
            budget = yield_every
            made = 0
            while ctx.n < ctx.limit:
                transition = handlers[type(state)](state, event, ctx)
                state = transition.next_state  # type: ignore[assignment]
                for action in transition.actions:
                    await action.execute(ctx)
                made += 1
                budget -= 1
                if budget == 0:
                    budget = yield_every
                    await checkpoint()
            check("hand-written loop", ctx, count, made)

        return trio.run(time_async, body, operations, warmup)

    return run


class _TransitionsModel:
    def __init__(self, limit: int) -> None:
        self.ctx = Counter(limit)

    async def bump(self) -> None:
        await BUMP.execute(self.ctx)


def run_async_machine(operations: int, warmup: int) -> float:
    async def body(count: int) -> None:
        model = _TransitionsModel(count)
        AsyncMachine(
            model=model,
            states=["a", "b", "c"],
            transitions=[["step", "a", "b"], ["step", "b", "c"], ["step", "c", "a"]],
            initial="a",
            after_state_change="bump",
            auto_transitions=False,
        )
        step: Callable[[], Any] = model.step  # type: ignore[attr-defined]
        while model.ctx.n < count:
            await step()
        check("AsyncMachine", model.ctx, count)

    return asyncio.run(time_async(body, operations, warmup))


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


def run_python_statemachine(operations: int, warmup: int) -> float:
    async def body(count: int) -> None:
        machine = _StateChartCycle(count)
        await machine.activate_initial_state()
        while machine.ctx.n < count:
            await machine.send("step")
        check("python-statemachine", machine.ctx, count)

    return asyncio.run(time_async(body, operations, warmup))


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


def take(state: Inbox, event: Ping, ctx: Counter) -> Transition[Inbox, Bump]:
    return stay(BUMP)


def hang_up(state: Inbox, event: Hangup, ctx: Counter) -> Transition[Inbox, Bump]:
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

    yield_every = YIELD_EVERY

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


def run_fsmflow_external(operations: int, warmup: int) -> float:
    async def body(count: int) -> None:
        ctx = Counter(count)
        ping = Ping()
        async with trio.open_nursery() as nursery:
            handle = await start_supervisor(
                nursery, PollingInbox("inbox"), context=ctx, capacity=CAPACITY
            )
            send = handle.send
            for _ in range(count):
                await send(ping)
            handle.close_events()
            outcome = await handle.outcome()
        check("fsmflow POLL supervisor", ctx, count)
        if outcome.final_state != Done():
            raise AssertionError(f"the inbox ended in {outcome.final_state}")

    return trio.run(time_async, body, operations, warmup)


#: The channel floor's handler table, looked up by the state's class like fsmflow's.
INBOX_HANDLERS: dict[type, Callable[[Any, Ping, Counter], Transition[Inbox, Bump]]] = {Open: take}


def run_trio_channel(operations: int, warmup: int) -> float:
    """The floor: a trio memory channel of the same capacity, with the same yield
    budget on both sides as fsmflow's. The producer's send is a cancellation point and
    yields when the channel is full or every 64 sends; the consumer takes what is ready,
    looks the handler up, calls it and runs its action for each event, yields every 64
    events, and waits on the channel when it is empty."""

    async def body(count: int) -> None:
        ctx = Counter(count)
        ping = Ping()
        send_channel, receive_channel = trio.open_memory_channel[Ping](CAPACITY)
        state: Inbox = Open()

        async def consume() -> None:
            budget = YIELD_EVERY
            async with receive_channel:
                while True:
                    try:
                        event = receive_channel.receive_nowait()
                    except trio.WouldBlock:
                        try:
                            event = await receive_channel.receive()
                        except trio.EndOfChannel:
                            return
                    except trio.EndOfChannel:
                        return
                    transition = INBOX_HANDLERS[type(state)](state, event, ctx)
                    for action in transition.actions:
                        await action.execute(ctx)
                    budget -= 1
                    if budget == 0:
                        budget = YIELD_EVERY
                        await trio.lowlevel.checkpoint()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            async with send_channel:
                budget = YIELD_EVERY
                for _ in range(count):
                    budget -= 1
                    if budget > 0:
                        await trio.lowlevel.checkpoint_if_cancelled()
                        try:
                            send_channel.send_nowait(ping)
                            continue
                        except trio.WouldBlock:
                            pass
                    budget = YIELD_EVERY
                    await send_channel.send(ping)
        check("trio channel", ctx, count)

    return trio.run(time_async, body, operations, warmup)


def run_trio_channel_every_step(operations: int, warmup: int) -> float:
    """A labelled extra: trio's own ``send`` and ``async for``, each a schedule point, so
    every event costs a round trip through the scheduler."""

    async def body(count: int) -> None:
        ctx = Counter(count)
        ping = Ping()
        send_channel, receive_channel = trio.open_memory_channel[Ping](CAPACITY)
        state: Inbox = Open()

        async def consume() -> None:
            async with receive_channel:
                async for event in receive_channel:
                    transition = INBOX_HANDLERS[type(state)](state, event, ctx)
                    for action in transition.actions:
                        await action.execute(ctx)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            async with send_channel:
                for _ in range(count):
                    await send_channel.send(ping)
        check("trio channel, yield every event", ctx, count)

    return trio.run(time_async, body, operations, warmup)


# -- running ------------------------------------------------------------------------------


@attrs.frozen
class Contestant:
    name: str
    #: Transitions (or events) per timed run in full mode.
    size: int
    run: Runner


BARE = "fsmflow loop (class states)"
ENUMS = "fsmflow loop (enum states)"
HANDLE = "fsmflow start_supervisor handle (class states)"
FLOOR = f"hand-written trio loop, yield every {YIELD_EVERY} (floor)"
EVERY_STEP = "hand-written trio loop, yield every step (extra)"
ASYNC_MACHINE = f"transitions {transitions.__version__} AsyncMachine (asyncio)"
PSM = f"python-statemachine {statemachine.__version__} async (asyncio)"
EXTERNAL = "fsmflow POLL supervisor, handle.send"
CHANNEL = "trio channel, same yield budget (floor)"
CHANNEL_EVERY_STEP = "trio channel, trio's send/receive: yield every event (extra)"

TRANSITION_CONTESTANTS = (
    Contestant(BARE, 200_000, run_fsmflow_classes),
    Contestant(ENUMS, 200_000, run_fsmflow_enums),
    Contestant(HANDLE, 200_000, run_fsmflow_handle),
    Contestant(FLOOR, 500_000, _hand_written(YIELD_EVERY)),
    Contestant(EVERY_STEP, 200_000, _hand_written(1)),
    Contestant(ASYNC_MACHINE, 20_000, run_async_machine),
    Contestant(PSM, 10_000, run_python_statemachine),
)
EVENT_CONTESTANTS = (
    Contestant(EXTERNAL, 200_000, run_fsmflow_external),
    Contestant(CHANNEL, 200_000, run_trio_channel),
    Contestant(CHANNEL_EVERY_STEP, 100_000, run_trio_channel_every_step),
)


def report(settings: Settings, results: dict[str, Measurement]) -> None:
    bare = results[BARE]
    print()
    print(
        f"Supervisor loop: 3-state cycle, one trivial action per transition; medians "
        f"(min..max) of {settings.repeats} interleaved rounds{', quick' if settings.quick else ''}"
    )
    rows = [
        [c.name, results[c.name].summary(), ratio(bare, results[c.name])]
        for c in TRANSITION_CONTESTANTS
    ]
    print(format_table(["contestant", "transitions/s", "fsmflow (classes) is"], rows))
    print()
    rows = [[c.name, results[c.name].summary()] for c in EVENT_CONTESTANTS]
    print(format_table([f"external events, capacity {CAPACITY}", "events/s"], rows))
    print()
    external = results[EXTERNAL]
    aims = [
        (
            "loop >= 0.3x the like-for-like floor",
            ratio(bare, results[FLOOR]),
            bare.median_rate / results[FLOOR].median_rate >= 0.3,
        ),
        (
            "handle costs <= 1.2x a bare run per transition",
            ratio(bare, results[HANDLE]),
            bare.median_rate / results[HANDLE].median_rate <= 1.2,
        ),
        (
            "external events >= 150,000/s",
            f"{external.median_rate:,.0f}/s",
            external.median_rate >= 150_000,
        ),
    ]
    for text, value, met in aims:
        print(f"aim: {text}: {value}, {'met' if met else 'MISSED'}")
    print(f"fsmflow external events / channel floor: {ratio(external, results[CHANNEL])}")
    if settings.json_path is not None:
        write_json(
            settings.json_path,
            {
                "benchmark": "supervisor",
                "quick": settings.quick,
                "rounds": settings.repeats,
                "environment": environment(
                    ["fsmflow", "trio", "anyio", "transitions", "python-statemachine"]
                ),
                "results": [m.as_json() for m in results.values()],
                "aims": [{"aim": t, "value": v, "met": m} for t, v, m in aims],
            },
        )


def main() -> None:
    settings = parse_settings("Supervisor loop and external events, like for like.")
    contestants = TRANSITION_CONTESTANTS + EVENT_CONTESTANTS
    measurements = measure_rounds([(c.name, c.size, c.run) for c in contestants], settings)
    report(settings, {m.name: m for m in measurements})


if __name__ == "__main__":
    main()
