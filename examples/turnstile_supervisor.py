"""A turnstile run by a supervisor: the program the Getting started page builds.

Coins and pushes arrive from outside as external events; the supervisor gets the gate it
drives through its constructor and hands it to its actions through the context; a gate
that fails becomes an event the FSM handles. Every part of this file is shown on the page
(docs/getting-started.md includes it section by section), and the tests in
tests/test_turnstile_supervisor.py run it on trio and on asyncio.

Run it with ``python3 examples/turnstile_supervisor.py``; draw it with
``fsmflow diagram examples.turnstile_supervisor:Turnstile``.
"""

from __future__ import annotations

# --8<-- [start:machine]
import enum
from typing import Protocol

import anyio
import attrs

from fsmflow import (
    TERMINATE,
    EventLoopDirective,
    ExternalEventMode,
    ExternalEventPolicy,
    FsmBuilder,
    FsmSpec,
    RunOutcome,
    SelfSupervised,
    Transition,
    Trigger,
    goto,
    start_supervisor,
)


class Turn(enum.Enum):
    """The turnstile's states."""

    LOCKED = "locked"
    UNLOCKED = "unlocked"
    CLOSED = "closed"


class Input(enum.Enum):
    """Its events: three from outside, and JAMMED, what a failing gate becomes."""

    COIN = "coin"
    PUSH = "push"
    SHUTDOWN = "shutdown"
    JAMMED = "jammed"


class Gate(Protocol):
    """The hardware the turnstile drives (a test passes a fake one)."""

    async def release(self) -> None: ...

    async def lock(self) -> None: ...


@attrs.define
class Counter:
    """The context: what the actions use and change."""

    gate: Gate
    coins: int = 0
    passes: int = 0


@attrs.frozen
class Release:
    """Take the coin and release the gate."""

    async def execute(self, ctx: Counter) -> None:
        ctx.coins += 1
        await ctx.gate.release()


@attrs.frozen
class Lock:
    """Lock the gate, counting a pass if someone went through."""

    passed: bool

    async def execute(self, ctx: Counter) -> None:
        ctx.passes += self.passed
        await ctx.gate.lock()


Action = Release | Lock
# --8<-- [end:machine]

# --8<-- [start:spec]
#: Seconds the turnstile stays unlocked when nobody comes through.
UNLOCKED_FOR = 10.0


def take_coin(state: Turn, event: Input, ctx: Counter) -> Transition[Turn, Action]:
    return goto(Turn.UNLOCKED, Release())


def let_through(state: Turn, event: Input, ctx: Counter) -> Transition[Turn, Action]:
    return goto(Turn.LOCKED, Lock(passed=True))


def relock(state: Turn, ctx: Counter) -> Transition[Turn, Action]:
    return goto(Turn.LOCKED, Lock(passed=False))


def jammed(state: Turn, event: Input, ctx: Counter) -> Transition[Turn, Action]:
    return goto(Turn.LOCKED, Lock(passed=False))


def shut_down(state: Turn, event: Input, ctx: Counter) -> Transition[Turn, Action]:
    return goto(Turn.CLOSED)


builder = FsmBuilder[Turn, Input, Counter, Action](
    states=Turn, events=Input, initial=Turn.LOCKED, name="turnstile"
)
builder.when(Turn.LOCKED).on(Input.COIN, take_coin, to=[Turn.UNLOCKED])
builder.when(Turn.UNLOCKED).on(Input.PUSH, let_through, to=[Turn.LOCKED]).on(
    Input.JAMMED, jammed, to=[Turn.LOCKED]
).timeout(UNLOCKED_FOR, relock, to=[Turn.LOCKED])
builder.from_any().on(Input.SHUTDOWN, shut_down, to=[Turn.CLOSED])
SPEC = builder.build()
# --8<-- [end:spec]


# --8<-- [start:supervisor]
class Turnstile(
    ExternalEventPolicy[Turn, Input],
    SelfSupervised[Turn, Input, Counter, Action],
):
    """Drives one turnstile's gate; coins, pushes and shutdown arrive from outside."""

    def __init__(self, name: str, gate: Gate) -> None:
        super().__init__(name)
        self.gate = gate  # a dependency: given to the constructor...

    def initial_context(self) -> Counter:
        return Counter(self.gate)  # ...and handed to the actions through the context

    @classmethod
    def fsm_spec(cls) -> FsmSpec[Turn, Input, Counter, Action]:
        return SPEC

    def event_for_action_error(self, msg: str) -> Input:
        return Input.JAMMED  # a gate that raises: the FSM decides what that means

    def external_event_mode(self, state: Turn) -> ExternalEventMode:
        # Wait for the next coin or push; the unlocked state's timeout bounds the wait.
        return ExternalEventMode.IGNORE if state is Turn.CLOSED else ExternalEventMode.BLOCK

    def on_external_event_channel_closed(self, state: Turn) -> Input | None:
        # Nobody can send coins any more: close.
        return None if state is Turn.CLOSED else Input.SHUTDOWN

    async def dispatch_state(self, state: Turn, ctx: Counter) -> EventLoopDirective[Input]:
        if state is Turn.CLOSED:
            return TERMINATE
        # LOCKED and UNLOCKED wait for events (BLOCK), so the loop only asks here when it
        # runs without a channel (``await Turnstile(...).run()``): then nobody can pay.
        return Trigger(Input.SHUTDOWN)


# --8<-- [end:supervisor]


# --8<-- [start:run]
class PrintingGate:
    """A gate that says what it does; a real one would drive the hardware."""

    async def release(self) -> None:
        print("gate released")

    async def lock(self) -> None:
        print("gate locked")


async def main() -> RunOutcome[Turn]:
    async with anyio.create_task_group() as tg:
        handle = await start_supervisor(tg, Turnstile("north gate", PrintingGate()))
        await handle.send(Input.PUSH)  # locked: no handler for PUSH, so it is ignored
        await handle.send(Input.COIN)
        await handle.wait_for(lambda state: state is Turn.UNLOCKED)
        await handle.send(Input.PUSH)
        await handle.send(Input.SHUTDOWN)
        outcome = await handle.outcome()
    print(outcome.exit.name, outcome.final_state.name, outcome.transitions)
    return outcome


if __name__ == "__main__":
    anyio.run(main, backend="trio")  # or backend="asyncio": the same program
# --8<-- [end:run]
