"""Scaling cases of the reactor: starting costs per source, restarting costs per page.

- *reactor start to Live, N sources*: ``start_reactor`` with N push accumulators until the
  reactor is ``Live`` — 100 against 1,000 sources. Each accumulator's health change is
  folded into the reactor's health in constant time (a tally of counts), so the start
  grows with the number of accumulators, not with its square.
- *reactor restart, N pending SEQUENTIAL boundaries*: ``start_reactor`` on a SQLite file
  whose queue holds N accepted boundaries, until the first of them fires — 1,000 against
  100,000. The restart reads the queue's length and one page, whatever its depth; the
  run checks that only one page is in memory.

``python bench/bench_scaling.py -k reactor`` runs them; ``python bench/scaling_reactor.py``
also prints the peak memory traced while restarting at both depths.
"""

from __future__ import annotations

import tempfile
import time
import tracemalloc
from pathlib import Path

import trio
from _scaling import ScalingCase

from fsmflow.reactor import (
    Completed,
    InputCache,
    InputStrategy,
    Live,
    PassThrough,
    PushAccumulator,
    Reactor,
    Source,
    start_reactor,
)
from fsmflow.reactor._cache import BoundaryCodec
from fsmflow.reactor._persistence import ReactorStore
from fsmflow.reactor._queue import PAGE_SIZE
from fsmflow.store import Codec, Durability, SqliteStore

NUMBERS = Source("numbers", int)


async def _ignore(cache: InputCache) -> Completed[None]:
    return Completed(None)


def start_to_live(sources: int) -> float:
    accumulators = [
        PushAccumulator(Source(f"s{i}", int), PassThrough[int]()) for i in range(sources)
    ]

    async def timed() -> float:
        reactor = Reactor("wide", _ignore, accumulators=accumulators)
        async with trio.open_nursery() as nursery:
            start = time.perf_counter()
            handle = await start_reactor(nursery, reactor)
            await handle.wait_for(lambda state: isinstance(state, Live))
            elapsed = time.perf_counter() - start
            assert len(handle.get_state().accumulators) == sources
            await handle.shutdown()
        return elapsed

    return trio.run(timed)


#: One SQLite file per queue depth, filled once per process (restarting changes nothing).
_FILES: dict[int, Path] = {}
_DIRECTORY = tempfile.TemporaryDirectory()


async def _filled(depth: int) -> Path:
    path = _FILES.get(depth)
    if path is None:
        path = Path(_DIRECTORY.name) / f"queue-{depth}.sqlite3"
        async with await SqliteStore.open(path, durability=Durability.OFF) as store:
            queue = ReactorStore(store, "deep", BoundaryCodec(Codec(), {"numbers": NUMBERS}))
            for first in range(0, depth, 1_000):
                await queue.accept(
                    [("numbers", v) for v in range(first, min(first + 1_000, depth))]
                )
        _FILES[depth] = path
    return path


def _deep_reactor(graph: object, store: SqliteStore) -> Reactor[None]:
    return Reactor(
        "deep",
        graph,  # type: ignore[arg-type]
        accumulators=[PushAccumulator(NUMBERS, PassThrough[int]())],
        strategy=InputStrategy.SEQUENTIAL,
        store=store,
    )


async def _restart(depth: int) -> float:
    """Seconds from ``start_reactor`` until the queue's first boundary fires; the graph
    then waits, so nothing is committed and the file stays as it was."""
    path = await _filled(depth)
    fired = trio.Event()
    never = trio.Event()

    async def first(cache: InputCache) -> Completed[None]:
        assert cache[NUMBERS] == 0
        fired.set()
        await never.wait()
        return Completed(None)

    opened = SqliteStore.open(path, durability=Durability.NORMAL)
    async with await opened as store, trio.open_nursery() as nursery:
        start = time.perf_counter()
        handle = await start_reactor(nursery, _deep_reactor(first, store))
        await fired.wait()
        elapsed = time.perf_counter() - start
        assert handle.get_state().pending == depth
        assert len(handle._ctx.queue.window) <= PAGE_SIZE, "one page in memory"
        handle.cancel()
    return elapsed


def restart(depth: int) -> float:
    return trio.run(_restart, depth)


CASES = [
    ScalingCase("reactor start to Live", "sources", 100, 1_000, 15.0, start_to_live),
    ScalingCase(
        "reactor restart with pending SEQUENTIAL boundaries",
        "pending",
        1_000,
        100_000,
        2.0,
        restart,
    ),
]


def main() -> None:
    """Peak memory traced while restarting at each depth (after a warm-up)."""
    for depth in (1_000, 100_000):
        restart(depth)
        tracemalloc.start()
        restart(depth)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"restart with {depth:,} pending: peak traced memory {peak / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
