"""DAG executor benchmark: 10 000 no-op processors, random dependencies, limit 64.

Runs, in one process and on the same dependencies (processor ``i`` depends on up to 3
random earlier ones, seeded), each processor an ``async`` no-op that records that it
ran, with at most 64 running at once:

* fsmflow's ``execute_dag`` on a DAG built beforehand (untimed), and again with
  ``DagBuilder`` declaring and validating the DAG inside the timed run;
* a level-by-level scheduler (every processor of depth d, wait for all, then d+1);
* the floor: a minimal hand-written trio dependency-counting scheduler (a nursery, a
  ``CapacityLimiter(64)``, a task spawned the moment a processor's last dependency is
  done), which builds its dependents lists inside the timed run.

Rounds are interleaved (every contestant once per round, after a warm-up run of each);
medians of the processors per second with min..max, ratios of medians with the spread
of the paired rounds. After timing, every run is checked: each processor ran exactly
once, after all of its dependencies. Peak traced memory (tracemalloc) is measured in a
separate run of each contestant.

``python bench/bench_dag.py [--quick] [--repeats N] [--json PATH]``
"""

from __future__ import annotations

import gc
import random
import time
import tracemalloc
from collections.abc import Callable, Coroutine
from typing import Any

import attrs
import trio
from _common import (
    Settings,
    environment,
    format_table,
    measure_rounds,
    parse_settings,
    ratio,
    write_json,
)

from fsmflow.dag import Dag, DagBuilder, ProcessorInput, execute_dag

LIMIT = 64
PROCESSORS = 10_000


def random_dependencies(n: int, seed: int = 7) -> list[list[int]]:
    """Processor i depends on up to 3 distinct earlier processors."""
    rnd = random.Random(seed)
    return [rnd.sample(range(i), k=min(i, rnd.randint(0, 3))) for i in range(n)]


def check(name: str, deps: list[list[int]], ran: list[Any]) -> None:
    """Every processor ran exactly once, after each of its dependencies (``ran`` holds
    processor numbers, or fsmflow's ids ``p<number>``)."""
    position = {(int(p[1:]) if isinstance(p, str) else p): k for k, p in enumerate(ran)}
    if len(ran) != len(deps) or len(position) != len(deps):
        raise AssertionError(f"{name}: {len(ran)} runs of {len(deps)} processors")
    for i, ds in enumerate(deps):
        if any(position[d] > position[i] for d in ds):
            raise AssertionError(f"{name}: processor {i} ran before a dependency")


# -- the contestants: each runs the DAG once, appending to ``ran`` ---------------------------


def build(deps: list[list[int]], ran: list[Any]) -> Dag[None]:
    async def record(inp: ProcessorInput[None]) -> None:
        ran.append(inp.id)

    builder = DagBuilder[None]()
    for i, ds in enumerate(deps):
        builder.add(f"p{i}", record, after=[f"p{d}" for d in ds])
    return builder.build()


async def run_fsmflow_built(dag: Dag[None]) -> None:
    result = await execute_dag(dag, None, limit=LIMIT)
    assert result.succeeded


async def run_fsmflow(deps: list[list[int]], ran: list[Any]) -> None:
    result = await execute_dag(build(deps, ran), None, limit=LIMIT)
    assert result.succeeded


async def run_floor(deps: list[list[int]], ran: list[Any]) -> None:
    """Dependency counting by hand: spawn a task the moment the last dependency is done."""
    n = len(deps)
    dependents: list[list[int]] = [[] for _ in range(n)]
    waiting = [len(ds) for ds in deps]
    for i, ds in enumerate(deps):
        for d in ds:
            dependents[d].append(i)
    limiter = trio.CapacityLimiter(LIMIT)

    async with trio.open_nursery() as nursery:

        async def run(i: int) -> None:
            async with limiter:
                ran.append(i)
            for child in dependents[i]:
                waiting[child] -= 1
                if waiting[child] == 0:
                    nursery.start_soon(run, child)

        for i in range(n):
            if waiting[i] == 0:
                nursery.start_soon(run, i)


async def run_level_by_level(deps: list[list[int]], ran: list[Any]) -> None:
    depth: list[int] = []
    for ds in deps:
        depth.append(1 + max((depth[d] for d in ds), default=-1))
    levels: dict[int, list[int]] = {}
    for i, d in enumerate(depth):
        levels.setdefault(d, []).append(i)
    limiter = trio.CapacityLimiter(LIMIT)

    async def run(i: int) -> None:
        async with limiter:
            ran.append(i)

    for level in sorted(levels):
        async with trio.open_nursery() as nursery:
            for i in levels[level]:
                nursery.start_soon(run, i)


Body = Callable[[list[list[int]], list[Any]], Coroutine[Any, Any, None]]


def timed(name: str, body: Body, deps: list[list[int]]) -> Callable[[int, int], float]:
    """A runner for ``measure_rounds``: one warm-up run, one timed run, then the check.
    (The operation count is the processors of the DAG, fixed by ``deps``.)"""

    def run(operations: int, warmup: int) -> float:
        trio.run(body, deps, [])
        ran: list[Any] = []
        gc.collect()
        start = time.perf_counter()
        trio.run(body, deps, ran)
        seconds = time.perf_counter() - start
        check(name, deps, ran)
        return seconds

    return run


def timed_prebuilt(deps: list[list[int]]) -> Callable[[int, int], float]:
    def run(operations: int, warmup: int) -> float:
        trio.run(run_fsmflow_built, build(deps, []))
        ran: list[Any] = []
        dag = build(deps, ran)
        gc.collect()
        start = time.perf_counter()
        trio.run(run_fsmflow_built, dag)
        seconds = time.perf_counter() - start
        check("fsmflow (prebuilt)", deps, ran)
        return seconds

    return run


def peak_memory(body: Body, deps: list[list[int]]) -> int:
    gc.collect()
    tracemalloc.start()
    trio.run(body, deps, [])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


@attrs.frozen
class Contestant:
    name: str
    body: Body


FSMFLOW_BUILT = "fsmflow execute_dag (DAG built beforehand)"
FSMFLOW = "fsmflow DagBuilder + execute_dag"
LEVELS = "level-by-level"
FLOOR = "hand-written dependency counting (floor)"


def main() -> None:
    settings = parse_settings("DAG executor: fsmflow, level-by-level and a hand-written floor.")
    n = PROCESSORS // 10 if settings.quick else PROCESSORS
    deps = random_dependencies(n)
    contestants = [
        Contestant(FSMFLOW, run_fsmflow),
        Contestant(LEVELS, run_level_by_level),
        Contestant(FLOOR, run_floor),
    ]
    runners = [(FSMFLOW_BUILT, n, timed_prebuilt(deps))]
    runners += [(c.name, n, timed(c.name, c.body, deps)) for c in contestants]
    # The operation count is the DAG's size in every mode: --quick shrinks the DAG.
    fixed = Settings(quick=False, repeats=settings.repeats, json_path=settings.json_path)
    results = {m.name: m for m in measure_rounds(runners, fixed)}
    peaks = {c.name: peak_memory(c.body, deps) for c in contestants}
    floor = results[FLOOR]
    print()
    print(
        f"DAG: {n:,} no-op processors, up to 3 random dependencies each, limit {LIMIT}; "
        f"medians (min..max) of {settings.repeats} interleaved rounds"
    )
    rows = [
        [
            m.name,
            m.summary(),
            f"{1e3 * n / m.median_rate:.1f} ms",
            f"{peaks[m.name] / 1e6:.1f} MB" if m.name in peaks else "",
            ratio(m, floor),
        ]
        for m in results.values()
    ]
    print(
        format_table(
            ["contestant", "processors/s", "wall time", "peak memory", "rate vs floor"], rows
        )
    )
    print()
    print(f"fsmflow (built beforehand) / floor: {ratio(results[FSMFLOW_BUILT], floor)}")
    print(f"fsmflow / level-by-level: {ratio(results[FSMFLOW], results[LEVELS])}")
    if settings.json_path is not None:
        write_json(
            settings.json_path,
            {
                "benchmark": "dag",
                "processors": n,
                "rounds": settings.repeats,
                "environment": environment(["fsmflow", "trio"]),
                "results": [m.as_json() for m in results.values()],
                "peak_bytes": peaks,
            },
        )


if __name__ == "__main__":
    main()
