"""Reactor benchmark: boundaries and firings per second, next to the floors.

Runs, in one process, with a trivial graph (it notes the value it was fired with):

* ``LATEST`` / ``WHEN_ANY``: boundaries per second into a reactor, sent straight to it
  (``send_boundary``) and through a push accumulator, next to a hand-written trio loop
  doing the same work (one slot, coalesce what is ready, snapshot, fire): the floor;
* ``SEQUENTIAL``: firings per second (one per boundary) with no store, on ``MemoryStore``
  and on ``SqliteStore`` (``Durability.FULL`` and ``NORMAL``), next to hand-written trio
  loops doing the same work (for a store: append the boundary, fire, then remove it and
  put the cache key in one batch) and next to the raw SQLite commit rate (one row per
  commit, plain ``sqlite3``, the same durability) measured in the same run.

Producers send without waiting while there is room and wait only when the channel is
full, everywhere. Prints best-of-N rates and ratios;
``python bench/bench_reactor.py [--quick] [--repeats N] [--json PATH]``.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import attrs
import trio
from _common import (
    Measurement,
    Runner,
    Settings,
    environment,
    format_table,
    measure_rounds,
    parse_settings,
    time_async,
    time_sync,
    write_json,
)

from fsmflow.reactor import (
    Completed,
    InputCache,
    InputStrategy,
    Live,
    PassThrough,
    PushAccumulator,
    Reactor,
    ReactorState,
    Source,
    start_reactor,
)
from fsmflow.store import Durability, MemoryStore, Put, Remove, SqliteStore, Store

VALUES = Source("values", int)
#: The channel capacity and burst of the floors: the reactor's defaults.
CAPACITY = 64
MAX_BURST = 64


class Sink:
    """The trivial graph: remembers the last value it was fired with, and wakes the
    benchmark once that is the value it waits for (values only ever increase)."""

    def __init__(self) -> None:
        self.last = -1
        self.target = -1
        self.reached = trio.Event()

    def expect(self, value: int) -> None:
        self.target = value
        self.reached = trio.Event()

    def see(self, value: int) -> None:
        self.last = value
        if value >= self.target:
            self.reached.set()

    async def graph(self, cache: InputCache) -> Completed[None]:
        self.see(cache[VALUES])
        return Completed(None)


async def produce(
    send_nowait: Callable[[int], None],
    send: Callable[[int], Awaitable[None]],
    first: int,
    count: int,
) -> None:
    """Send ``first .. first+count-1``, waiting only while the channel is full."""
    for value in range(first, first + count):
        try:
            send_nowait(value)
        except (anyio.WouldBlock, trio.WouldBlock):
            await send(value)


def _live(state: ReactorState) -> bool:
    return isinstance(state, Live)


# -- fsmflow ------------------------------------------------------------------------------


def reactor_runner(
    strategy: InputStrategy,
    *,
    via_accumulator: bool = False,
    store: Callable[[Path], Awaitable[Store]] | None = None,
) -> Runner:
    """A reactor fed ``operations`` values; the run ends when the last one was fired."""

    async def timed(operations: int, warmup: int, directory: Path) -> float:
        sink = Sink()
        accumulator = PushAccumulator(VALUES, PassThrough[int]())
        backend = None if store is None else await store(directory)
        reactor = Reactor(
            "bench", sink.graph, accumulators=[accumulator], strategy=strategy, store=backend
        )
        sent = 0
        async with trio.open_nursery() as nursery:
            handle = await start_reactor(nursery, reactor)
            await handle.wait_for(_live)

            async def body(count: int) -> None:
                nonlocal sent
                sink.expect(sent + count - 1)
                if via_accumulator:
                    await produce(accumulator.push_nowait, accumulator.push, sent, count)
                else:

                    def send_nowait(value: int) -> None:
                        handle.send_boundary_nowait(VALUES, value)

                    async def send(value: int) -> None:
                        await handle.send_boundary(VALUES, value)

                    await produce(send_nowait, send, sent, count)
                sent += count
                await sink.reached.wait()

            seconds = await time_async(body, operations, warmup)
            await handle.shutdown()
        if backend is not None:
            await backend.aclose()
        return seconds

    def run(operations: int, warmup: int) -> float:
        with tempfile.TemporaryDirectory() as directory:
            return trio.run(timed, operations, warmup, Path(directory))

    return run


def sqlite_store(durability: Durability) -> Callable[[Path], Awaitable[Store]]:
    async def open_store(directory: Path) -> Store:
        return await SqliteStore.open(directory / "bench.sqlite3", durability=durability)

    return open_store


async def memory_store(directory: Path) -> Store:
    return MemoryStore()


# -- the floors ---------------------------------------------------------------------------


def floor_runner(
    consume: Callable[[trio.MemoryReceiveChannel[int], Sink, Any], Awaitable[None]],
    store: Callable[[Path], Awaitable[Store]] | None = None,
) -> Runner:
    """A producer and a hand-written consumer loop on a trio memory channel."""

    async def timed(operations: int, warmup: int, directory: Path) -> float:
        sink = Sink()
        backend = None if store is None else await store(directory)
        send, receive = trio.open_memory_channel[int](CAPACITY)
        sent = 0
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume, receive, sink, backend)

            async def body(count: int) -> None:
                nonlocal sent
                sink.expect(sent + count - 1)
                await produce(send.send_nowait, send.send, sent, count)
                sent += count
                await sink.reached.wait()

            seconds = await time_async(body, operations, warmup)
            await send.aclose()
        if backend is not None:
            await backend.aclose()
        return seconds

    def run(operations: int, warmup: int) -> float:
        with tempfile.TemporaryDirectory() as directory:
            return trio.run(timed, operations, warmup, Path(directory))

    return run


async def latest_loop(receive: trio.MemoryReceiveChannel[int], sink: Sink, _: Any) -> None:
    """One slot, newest wins; take what is ready (up to a burst), snapshot, fire."""
    cache: dict[str, object] = {}
    async for value in receive:
        cache["values"] = value
        for _burst in range(MAX_BURST - 1):
            try:
                cache["values"] = receive.receive_nowait()
            except trio.WouldBlock:
                break
        await sink.graph(InputCache(dict(cache), {"values": VALUES}, frozenset(cache)))


async def sequential_loop(receive: trio.MemoryReceiveChannel[int], sink: Sink, _: Any) -> None:
    """Every value in order: queue it, then fire once per queued value."""
    queue: deque[int] = deque()
    async for value in receive:
        queue.append(value)
        while queue:
            cache = {"values": queue.popleft()}
            await sink.graph(InputCache(cache, {"values": VALUES}, frozenset(cache)))


async def durable_loop(receive: trio.MemoryReceiveChannel[int], sink: Sink, store: Store) -> None:
    """:func:`sequential_loop` with the reactor's writes: an append per value, then a
    remove and a put in one batch once it fired."""
    async for value in receive:
        data = str(value).encode()
        seq = await store.append("queue", data)
        cache = {"values": value}
        await sink.graph(InputCache(cache, {"values": VALUES}, frozenset(cache)))
        await store.write_batch([Remove("queue", seq), Put("cache", "values", data)])


def raw_sqlite(durability: Durability) -> Runner:
    """Plain ``sqlite3``, WAL, one row per committed transaction."""

    def run(operations: int, warmup: int) -> float:
        with tempfile.TemporaryDirectory() as directory:
            db = sqlite3.connect(Path(directory) / "raw.sqlite3", isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={durability.value}")
            db.execute("CREATE TABLE log (seq INTEGER PRIMARY KEY, value BLOB NOT NULL)")

            def commits(count: int) -> None:
                for value in range(count):
                    db.execute("BEGIN IMMEDIATE")
                    db.execute("INSERT INTO log (value) VALUES (?)", (str(value).encode(),))
                    db.execute("COMMIT")

            try:
                return time_sync(commits, operations, warmup)
            finally:
                db.close()

    return run


# -- the run ------------------------------------------------------------------------------


@attrs.frozen
class Contestant:
    name: str
    #: ``boundaries``, ``firings`` or ``commits``: what one operation is.
    unit: str
    operations: int
    run: Runner
    #: The contestant this one is compared with ("" for the floors themselves).
    versus: str = ""


FULL, NORMAL = Durability.FULL, Durability.NORMAL
LATEST, SEQUENTIAL = InputStrategy.LATEST, InputStrategy.SEQUENTIAL
CONTESTANTS = [
    Contestant("LATEST: trio loop (floor)", "boundaries", 200_000, floor_runner(latest_loop)),
    Contestant(
        "LATEST: reactor, send_boundary",
        "boundaries",
        200_000,
        reactor_runner(LATEST),
        "LATEST: trio loop (floor)",
    ),
    Contestant(
        "LATEST: reactor, push accumulator",
        "boundaries",
        200_000,
        reactor_runner(LATEST, via_accumulator=True),
        "LATEST: trio loop (floor)",
    ),
    Contestant("SEQUENTIAL: trio loop (floor)", "firings", 50_000, floor_runner(sequential_loop)),
    Contestant(
        "SEQUENTIAL: reactor, no store",
        "firings",
        50_000,
        reactor_runner(SEQUENTIAL),
        "SEQUENTIAL: trio loop (floor)",
    ),
    Contestant(
        "SEQUENTIAL: reactor, MemoryStore",
        "firings",
        20_000,
        reactor_runner(SEQUENTIAL, store=memory_store),
        "SEQUENTIAL: trio loop (floor)",
    ),
    Contestant("raw SQLite, NORMAL", "commits", 20_000, raw_sqlite(NORMAL)),
    Contestant(
        "SQLite NORMAL: trio loop (floor)",
        "firings",
        2_000,
        floor_runner(durable_loop, sqlite_store(NORMAL)),
        "raw SQLite, NORMAL",
    ),
    Contestant(
        "SQLite NORMAL: reactor",
        "firings",
        2_000,
        reactor_runner(SEQUENTIAL, store=sqlite_store(NORMAL)),
        "raw SQLite, NORMAL",
    ),
    Contestant("raw SQLite, FULL", "commits", 400, raw_sqlite(FULL)),
    Contestant(
        "SQLite FULL: trio loop (floor)",
        "firings",
        200,
        floor_runner(durable_loop, sqlite_store(FULL)),
        "raw SQLite, FULL",
    ),
    Contestant(
        "SQLite FULL: reactor",
        "firings",
        200,
        reactor_runner(SEQUENTIAL, store=sqlite_store(FULL)),
        "raw SQLite, FULL",
    ),
]


@attrs.frozen
class Aim:
    text: str
    value: Callable[[dict[str, float]], float]
    threshold: float

    def met(self, rates: dict[str, float]) -> bool:
        return self.value(rates) >= self.threshold


AIMS = [
    Aim(
        "LATEST boundaries/s into a reactor >= 100 000",
        lambda rates: rates["LATEST: reactor, send_boundary"],
        100_000,
    ),
    Aim(
        "durable SEQUENTIAL on SQLite FULL / raw commit rate >= 1/3",
        lambda rates: rates["SQLite FULL: reactor"] / rates["raw SQLite, FULL"],
        1 / 3,
    ),
    Aim(
        "durable SEQUENTIAL on SQLite NORMAL / raw commit rate >= 1/3",
        lambda rates: rates["SQLite NORMAL: reactor"] / rates["raw SQLite, NORMAL"],
        1 / 3,
    ),
]


def report(settings: Settings, results: list[Measurement]) -> None:
    rates = {result.name: result.best_rate for result in results}
    rows = []
    for contestant, result in zip(CONTESTANTS, results, strict=True):
        versus = f"{result.best_rate / rates[contestant.versus]:.2f}x" if contestant.versus else ""
        rows.append([contestant.name, f"{result.best_rate:,.0f}", f"{contestant.unit}/s", versus])
    print()
    print(
        f"Reactor: trivial graph (best of {settings.repeats} rounds"
        f"{', quick' if settings.quick else ''})"
    )
    print(format_table(["contestant", "rate", "unit", "vs reference"], rows))
    print()
    for aim in AIMS:
        value = aim.value(rates)
        shown = f"{value:,.0f}" if value > 10 else f"{value:.2f}"
        print(f"aim: {aim.text}: {shown}, {'met' if aim.met(rates) else 'MISSED'}")
    if settings.json_path is not None:
        write_json(
            settings.json_path,
            {
                "benchmark": "reactor",
                "quick": settings.quick,
                "rounds": settings.repeats,
                "environment": environment(["fsmflow", "trio", "anyio"]),
                "results": [result.as_json() for result in results],
                "aims": [
                    {"aim": aim.text, "value": aim.value(rates), "met": aim.met(rates)}
                    for aim in AIMS
                ],
            },
        )


def main() -> None:
    settings = parse_settings("Boundaries and firings per second of fsmflow's reactor.")
    runners = [(c.name, c.operations, c.run) for c in CONTESTANTS]
    report(settings, measure_rounds(runners, settings))


if __name__ == "__main__":
    main()
