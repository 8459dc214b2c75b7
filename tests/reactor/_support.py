"""Shared pieces of the reactor tests: sources, a recording graph, small handlers."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import attrs
import trio
import trio.testing

from fsmflow.reactor import (
    Completed,
    GraphError,
    InputCache,
    Live,
    ReactorHandle,
    ReactorState,
    Source,
)


@attrs.frozen
class Price:
    symbol: str
    value: float


@attrs.frozen
class Limit:
    high: float


PRICES = Source("prices", Price)
LIMITS = Source("limits", Limit)
NUMBERS = Source("numbers", int)


class Recorder:
    """A graph that records every snapshot it is fired with.

    ``fail`` makes it fail (raising, or returning ``GraphError`` with ``error_result``)
    while it returns True for the snapshot; ``block`` makes it wait for ``release``.
    """

    def __init__(self) -> None:
        self.snapshots: list[InputCache] = []
        self.fail: Callable[[InputCache], bool] = lambda cache: False
        self.error_result = False
        self.block = False
        self.release = trio.Event()
        self.entered = trio.Event()
        self.fired = trio.Event()

    async def __call__(self, cache: InputCache) -> Completed[int] | GraphError:
        self.snapshots.append(cache)
        self.entered.set()
        if self.block:
            await self.release.wait()
        self.fired.set()
        self.fired = trio.Event()
        if self.fail(cache):
            if self.error_result:
                return GraphError(f"refused {cache.as_dict()}")
            raise RuntimeError(f"graph broke on {cache.as_dict()}")
        return Completed(len(self.snapshots))

    def values(self, source: Source[int]) -> list[int | None]:
        return [snapshot.get(source) for snapshot in self.snapshots]


class Doubler:
    """A handler that doubles ints and drops negative ones; ``init`` counts restarts."""

    def __init__(self) -> None:
        self.inits = 0

    def init(self) -> None:
        self.inits += 1

    def process(self, event: int) -> int | None:
        return None if event < 0 else event * 2


class AsyncParse:
    """An async handler that parses "SYMBOL=VALUE" into a :class:`Price`."""

    async def process(self, event: str) -> Price | None:
        await trio.lowlevel.checkpoint()
        symbol, _, value = event.partition("=")
        return Price(symbol, float(value)) if value else None


def is_live(state: ReactorState) -> bool:
    return isinstance(state, Live)


async def until(predicate: Callable[[], bool], step: float = 0.001, limit: float = 600) -> None:
    """Poll ``predicate`` on the loop's clock (instant under ``autojump_clock``): for
    counters and queue lengths, which no event announces. Fails once ``limit`` seconds
    of that clock have passed, so a test whose condition never comes true ends."""
    with anyio.fail_after(limit):
        while not predicate():  # noqa: ASYNC110 - nothing to wait on but the value itself
            await anyio.sleep(step)


async def settle() -> None:
    """Let every task run until all are blocked (in-memory reactors only)."""
    await trio.testing.wait_all_tasks_blocked()


async def stop(handle: ReactorHandle[int]) -> None:
    outcome = await handle.shutdown()
    assert outcome.exit.value == "terminated", outcome
