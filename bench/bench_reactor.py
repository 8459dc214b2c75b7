"""Reactor benchmark: boundaries and firings per second, next to hand-written floors.

Runs, in one process, in interleaved rounds (each contestant set up afresh, warmed up,
then timed), with a trivial graph that notes the value it was fired with:

* ``LATEST`` / ``WHEN_ANY``: boundaries per second into a reactor, sent straight to it
  (``send_boundary``) and through a push accumulator, next to a hand-written trio loop
  doing the same work (one slot, take what is ready up to a burst, snapshot, fire);
* ``SEQUENTIAL``: firings per second (one per boundary), without a store, on
  ``MemoryStore`` and on ``SqliteStore`` at ``Durability.NORMAL`` and ``FULL``, each next
  to a hand-written trio loop doing the same work on the same store with the same
  settings: producers held back at ``max_pending`` pending boundaries (resuming in
  batches, as the reactor's producers do), the boundaries taken from the channel in one go
  (at most ``max_burst``) appended in one batch, then each one fired and committed (its
  queue entry removed and the cache key put) in a batch of its own;
* the raw SQLite commit rate (plain ``sqlite3``, WAL, one row per commit, the same
  durability), for reference.

Durable runs fire several times ``max_pending`` boundaries, so the queue fills and the
timed part is the steady state, where producers wait for room. After timing, every
contestant's firings are checked: every value, once, in order (``SEQUENTIAL``), or
increasing (``LATEST``); the durable queues must be empty and their peak depth is
reported. Prints the median rate of the rounds with its min..max, and ratios of medians
(with the range of the ratios paired by round).

``python bench/bench_reactor.py [--quick] [--repeats N] [--json PATH]``
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
    ratio,
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
    ReactorHandle,
    ReactorState,
    Source,
    start_reactor,
)
from fsmflow.store import (
    Append,
    Durability,
    MemoryStore,
    Put,
    Remove,
    SqliteStore,
    Store,
)

VALUES = Source("values", int)
SOURCES = {"values": VALUES}
#: The reactor's defaults, used by the floors too.
CAPACITY = 64
MAX_BURST = 64
MAX_PENDING = 1024
#: The supervisor loop's default yield budget (``Supervisor.yield_every``).
YIELD_EVERY = 64


class Sink:
    """The trivial graph: remembers the last value it was fired with, counts values that
    broke the expected order, samples the queue depth, and wakes the benchmark once the
    value it waits for has fired."""

    def __init__(self, sequential: bool) -> None:
        self.sequential = sequential
        self.last = -1
        self.target = -1
        self.disorder = 0
        self.firings = 0
        self.peak = 0
        self.depth: Callable[[], int] = lambda: 0
        self.reached = trio.Event()

    def expect(self, value: int) -> None:
        self.target = value
        self.reached = trio.Event()

    def see(self, value: int) -> None:
        in_order = value == self.last + 1 if self.sequential else value > self.last
        if not in_order:
            self.disorder += 1
        self.last = value
        self.firings += 1
        if not self.firings % 128:
            self.peak = max(self.peak, self.depth())
        if value >= self.target:
            self.reached.set()

    async def graph(self, cache: InputCache) -> Completed[None]:
        self.see(cache[VALUES])
        return Completed(None)

    def check(self, name: str, sent: int) -> None:
        """The work was really done: the last value fired, and in order."""
        assert self.last == sent - 1, f"{name}: fired up to {self.last}, sent {sent}"
        assert not self.disorder, f"{name}: {self.disorder} firings out of order"


async def produce(
    send_nowait: Callable[[int], None],
    send: Callable[[int], Awaitable[None]],
    first: int,
    count: int,
) -> None:
    """Send ``first .. first+count-1``, waiting only while there is no room."""
    for value in range(first, first + count):
        try:
            send_nowait(value)
        except (anyio.WouldBlock, trio.WouldBlock):
            await send(value)


def _live(state: ReactorState) -> bool:
    return isinstance(state, Live)


StoreFactory = Callable[[Path], Awaitable[Store]]


def sqlite_store(durability: Durability) -> StoreFactory:
    async def open_store(directory: Path) -> Store:
        return await SqliteStore.open(directory / "bench.sqlite3", durability=durability)

    return open_store


async def memory_store(directory: Path) -> Store:
    return MemoryStore()


async def check_drained(name: str, store: Store | None, log: str) -> None:
    if store is not None:
        assert await store.length(log) == 0, f"{name}: the queue was not drained"


# -- fsmflow ------------------------------------------------------------------------------


def reactor_runner(
    name: str,
    strategy: InputStrategy,
    *,
    via_accumulator: bool = False,
    store: StoreFactory | None = None,
) -> Runner:
    """A reactor fed ``operations`` values; the run ends when the last one was fired."""
    sequential = strategy is InputStrategy.SEQUENTIAL

    async def timed(operations: int, warmup: int, directory: Path) -> float:
        sink = Sink(sequential)
        accumulator = PushAccumulator(VALUES, PassThrough[int]())
        backend = None if store is None else await store(directory)
        reactor = Reactor(
            "bench", sink.graph, accumulators=[accumulator], strategy=strategy, store=backend
        )
        sent = 0
        async with trio.open_nursery() as nursery:
            handle: ReactorHandle[None] = await start_reactor(nursery, reactor)
            await handle.wait_for(_live)
            sink.depth = lambda: handle.get_state().pending

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
        sink.check(name, sent)
        await check_drained(name, backend, "reactor:bench:queue")
        if backend is not None:
            await backend.aclose()
        peaks[name] = sink.peak
        return seconds

    def run(operations: int, warmup: int) -> float:
        with tempfile.TemporaryDirectory() as directory:
            return trio.run(timed, operations, warmup, Path(directory))

    return run


# -- the floors ---------------------------------------------------------------------------


class Admission:
    """The floors' ``max_pending``: a producer waits while ``limit`` values are pending,
    and once the limit was reached, until a batch has drained (as the reactor does)."""

    def __init__(self, limit: int, batch: int) -> None:
        self.limit = limit
        self.low = limit - batch
        self.pending = 0
        self.full = False
        self.room = trio.Event()

    def try_admit(self) -> bool:
        if self.full:
            return False
        self.pending += 1
        if self.pending >= self.limit:
            self.full = True
        return True

    async def admit(self) -> None:
        while not self.try_admit():
            await self.room.wait()

    def settle(self) -> None:
        self.pending -= 1
        if self.full and self.pending <= self.low:
            self.full = False
            self.room.set()
            self.room = trio.Event()


Consumer = Callable[[trio.MemoryReceiveChannel[int], Sink, Any, Admission], Awaitable[None]]


def floor_runner(
    name: str, consume: Consumer, sequential: bool, store: StoreFactory | None = None
) -> Runner:
    """A producer and a hand-written consumer loop on a trio memory channel."""

    async def timed(operations: int, warmup: int, directory: Path) -> float:
        sink = Sink(sequential)
        backend = None if store is None else await store(directory)
        send, receive = trio.open_memory_channel[int](CAPACITY)
        admission = Admission(MAX_PENDING if sequential else 1 << 62, MAX_BURST)
        sink.depth = lambda: admission.pending
        sent = 0

        def send_nowait(value: int) -> None:
            if not admission.try_admit():
                raise trio.WouldBlock
            try:
                send.send_nowait(value)
            except trio.WouldBlock:
                admission.settle()
                raise

        async def send_waiting(value: int) -> None:
            await admission.admit()
            await send.send(value)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume, receive, sink, backend, admission)

            async def body(count: int) -> None:
                nonlocal sent
                sink.expect(sent + count - 1)
                await produce(send_nowait, send_waiting, sent, count)
                sent += count
                await sink.reached.wait()

            seconds = await time_async(body, operations, warmup)
            await send.aclose()
        sink.check(name, sent)
        await check_drained(name, backend, "queue")
        if backend is not None:
            await backend.aclose()
        peaks[name] = sink.peak
        return seconds

    def run(operations: int, warmup: int) -> float:
        with tempfile.TemporaryDirectory() as directory:
            return trio.run(timed, operations, warmup, Path(directory))

    return run


def _fire(sink: Sink, value: int) -> Awaitable[Completed[None]]:
    values = {"values": value}
    return sink.graph(InputCache(values, SOURCES, frozenset(values)))


class YieldBudget:
    """The reactor's loop yields to the scheduler once per ``yield_every`` (64) events it
    handles (a boundary taken, a firing finished); the floors spend the same budget."""

    def __init__(self) -> None:
        self.left = YIELD_EVERY

    async def spend(self) -> None:
        self.left -= 1
        if self.left <= 0:
            self.left = YIELD_EVERY
            await trio.lowlevel.checkpoint()


async def _take(receive: trio.MemoryReceiveChannel[int], wait: bool) -> int | None:
    """The next value: ``None`` if none is ready (and ``wait`` is false) or the channel
    ended; waiting for one only if ``wait``."""
    try:
        return receive.receive_nowait()
    except trio.WouldBlock:
        if not wait:
            return None
    except trio.EndOfChannel:
        return None
    try:
        return await receive.receive()
    except trio.EndOfChannel:
        return None


async def latest_loop(
    receive: trio.MemoryReceiveChannel[int], sink: Sink, _: Any, admission: Admission
) -> None:
    """One slot, newest wins; take what is ready (up to a burst), snapshot, fire."""
    cache: dict[str, object] = {}
    budget = YieldBudget()
    while True:
        value = await _take(receive, wait=True)
        if value is None:
            return
        taken = 0
        while value is not None:
            admission.settle()
            cache["values"] = value
            await budget.spend()
            taken += 1
            if taken == MAX_BURST:
                break
            value = await _take(receive, wait=False)
        await sink.graph(InputCache(dict(cache), SOURCES, frozenset(cache)))
        await budget.spend()


async def sequential_loop(
    receive: trio.MemoryReceiveChannel[int], sink: Sink, _: Any, admission: Admission
) -> None:
    """Every value in order: take what is ready (up to a burst), then fire the queue's
    head, one firing per value."""
    queue: deque[int] = deque()
    budget = YieldBudget()
    while True:
        for _burst in range(MAX_BURST):
            value = await _take(receive, wait=not queue)
            if value is None:
                break
            queue.append(value)
            await budget.spend()
        if not queue:
            return
        await _fire(sink, queue.popleft())
        admission.settle()
        await budget.spend()


def _frame(value: int) -> bytes:
    return b'{"source":"values"}\n' + str(value).encode()


async def durable_loop(
    receive: trio.MemoryReceiveChannel[int], sink: Sink, store: Store, admission: Admission
) -> None:
    """:func:`sequential_loop` with the reactor's writes: the values taken in one go (at
    most a burst) appended in one batch, then, per value, fire and commit (remove its
    entry, put the cache key) in one batch."""
    queue: deque[tuple[int, int]] = deque()
    budget = YieldBudget()
    while True:
        batch: list[int] = []
        for _burst in range(MAX_BURST):
            value = await _take(receive, wait=not queue and not batch)
            if value is None:
                break
            batch.append(value)
            await budget.spend()
        if batch:
            seqs = await store.write_batch([Append("queue", _frame(v)) for v in batch])
            queue.extend((int(seq or 0), value) for seq, value in zip(seqs, batch, strict=True))
        if not queue:
            return
        seq, value = queue.popleft()
        await _fire(sink, value)
        await store.write_batch([Remove("queue", seq), Put("cache", "values", _frame(value))])
        admission.settle()
        await budget.spend()


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
                seconds = time_sync(commits, operations, warmup)
                (rows,) = db.execute("SELECT COUNT(*) FROM log").fetchone()
                assert rows == operations + warmup, "raw SQLite: rows missing"
                return seconds
            finally:
                db.close()

    return run


# -- the run ------------------------------------------------------------------------------

#: The peak queue depth each contestant's last round reached (sampled every 128 firings).
peaks: dict[str, int] = {}


@attrs.frozen
class Contestant:
    name: str
    #: ``boundaries``, ``firings`` or ``commits``: what one operation is.
    unit: str
    operations: int
    run: Runner
    #: The contestant this one is compared with ("" for the references).
    versus: str = ""


FULL, NORMAL = Durability.FULL, Durability.NORMAL
LATEST, SEQUENTIAL = InputStrategy.LATEST, InputStrategy.SEQUENTIAL


def _pair(label: str, unit: str, operations: int, store: StoreFactory | None) -> list[Contestant]:
    floor = f"{label}: trio loop (floor)"
    consume = durable_loop if store is not None else sequential_loop
    return [
        Contestant(floor, unit, operations, floor_runner(floor, consume, True, store)),
        Contestant(
            f"{label}: reactor",
            unit,
            operations,
            reactor_runner(f"{label}: reactor", SEQUENTIAL, store=store),
            floor,
        ),
    ]


CONTESTANTS = [
    Contestant(
        "LATEST: trio loop (floor)",
        "boundaries",
        200_000,
        floor_runner("LATEST: trio loop (floor)", latest_loop, False),
    ),
    Contestant(
        "LATEST: reactor, send_boundary",
        "boundaries",
        200_000,
        reactor_runner("LATEST: reactor, send_boundary", LATEST),
        "LATEST: trio loop (floor)",
    ),
    Contestant(
        "LATEST: reactor, push accumulator",
        "boundaries",
        200_000,
        reactor_runner("LATEST: reactor, push accumulator", LATEST, via_accumulator=True),
        "LATEST: trio loop (floor)",
    ),
    *_pair("SEQUENTIAL, no store", "firings", 50_000, None),
    *_pair("SEQUENTIAL, MemoryStore", "firings", 20_000, memory_store),
    Contestant("raw SQLite, NORMAL", "commits", 20_000, raw_sqlite(NORMAL)),
    *_pair("SQLite NORMAL", "firings", 10_000, sqlite_store(NORMAL)),
    Contestant("raw SQLite, FULL", "commits", 2_000, raw_sqlite(FULL)),
    *_pair("SQLite FULL", "firings", 5_000, sqlite_store(FULL)),
]


@attrs.frozen
class Aim:
    text: str
    value: Callable[[dict[str, Measurement]], float]
    threshold: float

    def met(self, results: dict[str, Measurement]) -> bool:
        return self.value(results) >= self.threshold


def _versus(ours: str, theirs: str) -> Callable[[dict[str, Measurement]], float]:
    return lambda results: results[ours].median_rate / results[theirs].median_rate


AIMS = [
    Aim(
        "LATEST boundaries/s into a reactor >= 100 000",
        lambda results: results["LATEST: reactor, send_boundary"].median_rate,
        100_000,
    ),
    Aim(
        "durable SEQUENTIAL on SQLite FULL / raw commit rate >= 1/3",
        _versus("SQLite FULL: reactor", "raw SQLite, FULL"),
        1 / 3,
    ),
    Aim(
        "durable SEQUENTIAL on SQLite NORMAL / raw commit rate >= 1/3",
        _versus("SQLite NORMAL: reactor", "raw SQLite, NORMAL"),
        1 / 3,
    ),
]


def report(settings: Settings, measured: list[Measurement]) -> None:
    results = {result.name: result for result in measured}
    rows = []
    for contestant, result in zip(CONTESTANTS, measured, strict=True):
        versus = ratio(result, results[contestant.versus]) if contestant.versus else ""
        peak = peaks.get(contestant.name)
        rows.append(
            [
                contestant.name,
                result.summary(),
                f"{contestant.unit}/s",
                versus,
                "" if peak is None or contestant.unit != "firings" else f"{peak:,}",
            ]
        )
    print()
    print(
        f"Reactor: trivial graph; median (min..max) of {settings.repeats} interleaved rounds"
        f"{', quick' if settings.quick else ''}; max_pending {MAX_PENDING}"
    )
    print(format_table(["contestant", "rate", "unit", "vs floor", "peak queue"], rows))
    print()
    for aim in AIMS:
        value = aim.value(results)
        shown = f"{value:,.0f}" if value > 10 else f"{value:.2f}"
        print(f"aim: {aim.text}: {shown}, {'met' if aim.met(results) else 'MISSED'}")
    if settings.json_path is not None:
        write_json(
            settings.json_path,
            {
                "benchmark": "reactor",
                "quick": settings.quick,
                "rounds": settings.repeats,
                "environment": environment(["fsmflow", "trio", "anyio"]),
                "results": [result.as_json() for result in measured],
                "peak_queue": peaks,
                "aims": [
                    {"aim": aim.text, "value": aim.value(results), "met": aim.met(results)}
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
