"""A coin-operated turnstile: the smallest useful fsmflow machine.

Enum states and events, one action type, entry hooks. Run it with
``python -m examples.turnstile``.
"""

from __future__ import annotations

import enum

import attrs
import trio

from fsmflow import FsmBuilder, FsmSpec, Transition, goto, stay


class Turnstile(enum.Enum):
    LOCKED = "locked"
    UNLOCKED = "unlocked"


class Input(enum.Enum):
    COIN = "coin"
    PUSH = "push"


@attrs.define
class Counter:
    """The context: what the actions change."""

    coins: int = 0
    passes: int = 0
    log: list[str] = attrs.Factory(list)


@attrs.frozen
class Record:
    """The one action type: append a line to the log and bump a counter."""

    line: str
    coin: bool = False

    async def execute(self, ctx: Counter) -> None:
        ctx.log.append(self.line)
        if self.coin:
            ctx.coins += 1
        else:
            ctx.passes += 1


def accept_coin(state: Turnstile, event: Input, ctx: Counter) -> Transition[Turnstile, Record]:
    return goto(Turnstile.UNLOCKED, Record("coin accepted", coin=True))


def let_through(state: Turnstile, event: Input, ctx: Counter) -> Transition[Turnstile, Record]:
    return goto(Turnstile.LOCKED, Record("person passed"))


def refund(state: Turnstile, event: Input, ctx: Counter) -> Transition[Turnstile, Record]:
    return stay(Record("coin refunded: already unlocked", coin=True))


def turnstile_spec() -> FsmSpec[Turnstile, Input, Counter, Record]:
    """The turnstile's spec; ``fsmflow diagram examples.turnstile:turnstile_spec`` draws it."""
    builder = FsmBuilder[Turnstile, Input, Counter, Record](
        states=Turnstile, events=Input, initial=Turnstile.LOCKED, name="turnstile"
    )
    builder.when(Turnstile.LOCKED).on(Input.COIN, accept_coin, to=[Turnstile.UNLOCKED])
    builder.when(Turnstile.UNLOCKED).on(Input.PUSH, let_through, to=[Turnstile.LOCKED]).on(
        Input.COIN, refund
    )
    return builder.build()


async def main() -> Counter:
    machine = turnstile_spec().new_machine(Turnstile.LOCKED)
    ctx = Counter()
    for event in (Input.PUSH, Input.COIN, Input.COIN, Input.PUSH, Input.COIN, Input.PUSH):
        actions = await machine.handle(event, ctx)
        await machine.execute_actions(actions, ctx)
        print(f"{event.name:>5} -> {machine.state.name}")
    print("\n".join(ctx.log))
    return ctx


if __name__ == "__main__":
    trio.run(main)
