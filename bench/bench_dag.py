"""DAG executor benchmark: 10 000 no-op processors, random dependencies, limit 64.

Runs, in one process and on the same DAG:

* fsmflow's ``execute_dag`` (supervised execution FSM, one tiny FSM per processor);
* a level-by-level scheduler (run every processor of depth d, wait for all, then d+1);
* a minimal hand-written trio dependency-counting scheduler: the floor.

Prints best-of-N wall time and peak traced memory for each, and the ratios.
``python bench/bench_dag.py [--quick] [--json PATH]``
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable

import trio

from fsmflow.dag import DagBuilder, ProcessorInput, execute_dag

LIMIT = 64


def random_dependencies(n: int, seed: int = 7) -> list[list[int]]:
    """Processor i depends on up to 3 distinct earlier processors."""
    rnd = random.Random(seed)
    return [rnd.sample(range(i), k=min(i, rnd.randint(0, 3))) for i in range(n)]


async def noop(inp: ProcessorInput[None]) -> None:
    return None


async def run_fsmflow(deps: list[list[int]]) -> None:
    builder = DagBuilder[None]()
    for i, ds in enumerate(deps):
        builder.add(f"p{i}", noop, after=[f"p{d}" for d in ds])
    result = await execute_dag(builder.build(), None, limit=LIMIT)
    assert result.succeeded


async def run_floor(deps: list[list[int]]) -> None:
    """Dependency counting by hand: spawn a task the moment the last dependency is done."""
    n = len(deps)
    dependents: list[list[int]] = [[] for _ in range(n)]
    waiting = [len(ds) for ds in deps]
    for i, ds in enumerate(deps):
        for d in ds:
            dependents[d].append(i)
    limiter = trio.CapacityLimiter(LIMIT)
    done = 0

    async with trio.open_nursery() as nursery:

        async def run(i: int) -> None:
            nonlocal done
            async with limiter:
                await noop(None)  # type: ignore[arg-type]
            done += 1
            for child in dependents[i]:
                waiting[child] -= 1
                if waiting[child] == 0:
                    nursery.start_soon(run, child)

        for i in range(n):
            if waiting[i] == 0:
                nursery.start_soon(run, i)
    assert done == n


async def run_level_by_level(deps: list[list[int]]) -> None:
    depth: list[int] = []
    for ds in deps:
        depth.append(1 + max((depth[d] for d in ds), default=-1))
    levels: dict[int, list[int]] = {}
    for i, d in enumerate(depth):
        levels.setdefault(d, []).append(i)
    limiter = trio.CapacityLimiter(LIMIT)

    async def run(i: int) -> None:
        async with limiter:
            await noop(None)  # type: ignore[arg-type]

    for level in sorted(levels):
        async with trio.open_nursery() as nursery:
            for i in levels[level]:
                nursery.start_soon(run, i)


Contestant = Callable[[list[list[int]]], Awaitable[None]]
CONTESTANTS: dict[str, Contestant] = {
    "fsmflow execute_dag": run_fsmflow,
    "level-by-level": run_level_by_level,
    "hand-written floor": run_floor,
}


def measure(deps: list[list[int]], repeats: int) -> dict[str, tuple[float, int]]:
    """Best wall time per contestant over ``repeats`` interleaved rounds (each round runs
    every contestant once, so load from elsewhere hits them alike), then one traced run
    each for peak memory."""
    best = dict.fromkeys(CONTESTANTS, float("inf"))
    for _ in range(repeats):
        for name, fn in CONTESTANTS.items():
            gc.collect()
            start = time.perf_counter()
            trio.run(fn, deps)
            best[name] = min(best[name], time.perf_counter() - start)
    results = {}
    for name, fn in CONTESTANTS.items():
        gc.collect()
        tracemalloc.start()
        trio.run(fn, deps)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        results[name] = (best[name], peak)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 000 processors, 3 rounds")
    parser.add_argument("--repeats", type=int, default=None, help="rounds (default 5)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    n, repeats = (1_000, 3) if args.quick else (10_000, 5)
    if args.repeats is not None:
        repeats = args.repeats
    deps = random_dependencies(n)
    print(f"DAG benchmark: {n} no-op processors, up to 3 random dependencies each, limit {LIMIT}")
    print(
        f"Python {platform.python_version()}, trio {trio.__version__}, "
        f"best of {repeats} interleaved rounds\n"
    )
    results = measure(deps, repeats)
    floor_time = results["hand-written floor"][0]
    print(f"{'contestant':<22}{'wall time':>12}{'peak memory':>14}{'x floor':>10}")
    for name, (wall, peak) in results.items():
        print(f"{name:<22}{wall * 1000:>10.1f}ms{peak / 1e6:>12.1f}MB{wall / floor_time:>10.2f}")
    ours = results["fsmflow execute_dag"][0]
    level = results["level-by-level"][0]
    print(f"\nfsmflow / floor: {ours / floor_time:.2f}x (aim <= 1.5x)")
    print(f"level-by-level / fsmflow: {level / ours:.2f}x (aim > 1x: fsmflow faster)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {name: {"seconds": w, "peak_bytes": p} for name, (w, p) in results.items()}, fh
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
