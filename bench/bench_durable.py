"""Durable runs: a three-step workflow on SQLite, fsmflow beside DBOS Transact and the
raw commit floor, in one process (four fsmflow worker processes beside them).

Contestants, each timed from the first start to the last result of N workflows, every
commit durable (SQLite WAL, ``synchronous=FULL``), each round on a fresh database file:

* ``raw commit``: the floor — 3 N plain SQLite transactions (one small row each), one
  after another in this thread: what a step's checkpoint cannot beat.
* ``fsmflow, 1 worker``: ``start_run`` N times, one in-process :class:`Worker`
  (concurrency 16) runs them.
* ``fsmflow, 4 processes``: the same with four ``fsmflow worker`` processes (started and
  ready before the clock starts).
* ``DBOS``: DBOS Transact with its SQLite system database, ``DBOS.start_workflow`` N
  times (its executor runs them in threads), three ``@DBOS.step`` s per workflow.

Results are checked after timing (every output right). ``--quick`` for a short run.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    Measurement,
    Settings,
    environment,
    format_table,
    measure_rounds,
    parse_settings,
    write_json,
)
from fsmflow.durable import StepContext, Worker, Workflow, start_run
from fsmflow.store import SqliteStore

WORKFLOWS = 200
ROOT = Path(__file__).resolve().parent.parent

three = Workflow("bench_three", input=int, output=int)


@three.step()
async def one(ctx: StepContext, n: int) -> int:
    return n + 1


@three.step(one)
async def two(ctx: StepContext, n: int, a: int) -> int:
    return a + 1


@three.step(two)
async def three_(ctx: StepContext, n: int, b: int) -> int:
    return b + 1


class Scratch:
    """A fresh directory per round, removed at the end."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="bench-durable-"))
        self.count = 0

    def path(self, name: str) -> Path:
        self.count += 1
        return self.root / f"{self.count}-{name}"

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def raw_commits(scratch: Scratch) -> Any:
    def run(operations: int, warmup: int) -> float:
        db = sqlite3.connect(scratch.path("raw.sqlite3"), isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB)")

        def body(count: int) -> None:
            for i in range(3 * count):
                db.execute("BEGIN IMMEDIATE")
                db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (f"k{i}", b"x" * 64))
                db.execute("COMMIT")

        body(warmup)
        start = time.perf_counter()
        body(operations)
        seconds = time.perf_counter() - start
        assert db.execute("SELECT COUNT(*) FROM kv").fetchone()[0] == 3 * max(operations, warmup)
        db.close()
        return seconds

    return run


async def _start_and_wait(store: SqliteStore, count: int, base: int) -> list[int]:
    handles = [await start_run(store, three, base + i) for i in range(count)]
    return [await h.result(poll_interval=0.02) for h in handles]


def fsmflow_in_process(scratch: Scratch) -> Any:
    def run(operations: int, warmup: int) -> float:
        async def main() -> float:
            async with await SqliteStore.open(scratch.path("one.sqlite3")) as store:
                worker = Worker(store, [three], concurrency=16, poll_interval=0.005)
                async with anyio.create_task_group() as tg:
                    await tg.start(worker.run)
                    await _start_and_wait(store, warmup, 10**6)
                    start = time.perf_counter()
                    results = await _start_and_wait(store, operations, 0)
                    seconds = time.perf_counter() - start
                    tg.cancel_scope.cancel()
                assert results == [i + 3 for i in range(operations)]
                return seconds

        return trio.run(main)

    return run


def fsmflow_processes(scratch: Scratch, workers: int) -> Any:
    def run(operations: int, warmup: int) -> float:
        db = scratch.path("pool.sqlite3")
        trio.run(_touch, db)
        pool = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "fsmflow",
                    "worker",
                    "bench.bench_durable:three",
                    "--store",
                    str(db),
                    "--concurrency",
                    "16",
                    "--poll-interval",
                    "0.005",
                ],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stderr=subprocess.PIPE,
            )
            for _ in range(workers)
        ]
        try:
            for process in pool:
                assert process.stderr is not None
                process.stderr.readline()  # "worker ... serving ..." once it is ready

            async def main() -> float:
                async with await SqliteStore.open(db) as store:
                    await _start_and_wait(store, warmup, 10**6)
                    start = time.perf_counter()
                    results = await _start_and_wait(store, operations, 0)
                    seconds = time.perf_counter() - start
                assert results == [i + 3 for i in range(operations)]
                return seconds

            return trio.run(main)
        finally:
            for process in pool:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)
                if process.stderr is not None:
                    process.stderr.close()

    return run


async def _touch(path: Path) -> None:
    async with await SqliteStore.open(path):
        pass


def dbos_runner(scratch: Scratch) -> Any:
    from dbos import DBOS

    @DBOS.step()
    def d_one(n: int) -> int:
        return n + 1

    @DBOS.workflow()
    def d_three(n: int) -> int:
        return d_one(d_one(d_one(n)))

    def run(operations: int, warmup: int) -> float:
        db = scratch.path("dbos.sqlite3")
        DBOS(config={"name": "bench", "system_database_url": f"sqlite:///{db}"})
        DBOS.launch()
        try:

            def body(count: int, base: int) -> list[int]:
                handles = [DBOS.start_workflow(d_three, base + i) for i in range(count)]
                return [h.get_result() for h in handles]

            body(warmup, 10**6)
            start = time.perf_counter()
            results = body(operations, 0)
            seconds = time.perf_counter() - start
            assert results == [i + 3 for i in range(operations)]
            return seconds
        finally:
            DBOS.destroy()

    return run


def main(argv: list[str] | None = None) -> list[Measurement]:
    settings: Settings = parse_settings(__doc__ or "", argv)
    scratch = Scratch()
    try:
        runners: list[tuple[str, int, Any]] = [
            ("raw commit (3 per workflow)", WORKFLOWS, raw_commits(scratch)),
            ("fsmflow, 1 worker", WORKFLOWS, fsmflow_in_process(scratch)),
            ("fsmflow, 4 processes", WORKFLOWS, fsmflow_processes(scratch, 4)),
        ]
        try:
            runners.append(("DBOS Transact, 1 process", WORKFLOWS, dbos_runner(scratch)))
        except ImportError:
            print("DBOS Transact is not installed (pip install dbos): its row is left out")
        print(f"durable three-step workflows on SQLite: {settings.repeats} rounds", flush=True)
        measured = measure_rounds(runners, settings)
    finally:
        scratch.close()
    raw = measured[0]
    rows = []
    for m in measured:
        # How many raw commits fit in the time one of this contestant's steps takes.
        per_step_commits = raw.median_rate / m.median_rate
        rows.append(
            [
                m.name,
                m.summary(),
                m.summary(scale=3),
                "-" if m is raw else f"{per_step_commits:.2f}",
            ]
        )
    print("(a 2-core machine shared with other work: compare ratios, not absolute rates)")
    print(
        format_table(
            ["contestant", "workflows/s", "steps/s", "cost of a step in raw commits"], rows
        )
    )
    by_name = {m.name: m for m in measured}
    ours = by_name["fsmflow, 1 worker"]
    for name, m in by_name.items():
        if name.startswith("DBOS"):
            pairs = [
                (ours.operations / a) / (m.operations / b)
                for a, b in zip(ours.seconds, m.seconds, strict=True)
            ]
            print(
                f"fsmflow (1 worker) / {name}: {ours.median_rate / m.median_rate:.2f}x "
                f"({min(pairs):.2f}..{max(pairs):.2f})"
            )
    if settings.json_path is not None:
        write_json(
            settings.json_path,
            {
                "benchmark": "durable",
                "environment": environment(["fsmflow", "dbos", "trio", "anyio"]),
                "results": [m.as_json() for m in measured],
            },
        )
    return measured


if __name__ == "__main__":
    main()
