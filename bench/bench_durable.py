"""Durable runs: a three-step workflow on SQLite and on PostgreSQL, fsmflow beside DBOS
Transact and the raw commit floor on the same database, in one process (and four
fsmflow worker processes beside them).

Contestants, per database, each timed from the first start to the last result of N
workflows, every commit durable (SQLite: WAL, ``synchronous=FULL``; PostgreSQL: the
server's ``fsync=on``, ``synchronous_commit=on``), each round on a fresh database file,
schema or database:

* ``raw commit``: the floor — 3 N single-row transactions (an upsert of one small row),
  one after another in this thread: what a step's checkpoint cannot beat one at a time.
* ``fsmflow, 1 worker``: ``start_run`` N times, one in-process :class:`Worker`
  (concurrency 16) runs them; ``RunHandle.result`` for each.
* ``fsmflow, 4 processes``: the same with four ``fsmflow worker`` processes (started and
  ready before the clock starts). On SQLite, which has no cross-process notifications,
  the workers and this process look for each other's every 10 ms (``--poll-interval``).
* ``DBOS``: DBOS Transact with its system database on the same database,
  ``DBOS.start_workflow`` N times (its executor runs them in threads), three
  ``@DBOS.step`` s per workflow.

Results are checked after timing (every output right). ``--quick`` for a short run;
``--backend sqlite|postgres`` for one database only. PostgreSQL is the server at
``FSMFLOW_BENCH_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``);
the benchmark creates its databases there and drops them at the end.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import psycopg
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    Measurement,
    Settings,
    environment,
    format_table,
    measure_rounds,
    parse_settings,
    ratio,
    write_json,
)
from fsmflow.durable import StepContext, Worker, Workflow, start_run
from fsmflow.store import Store, open_store

WORKFLOWS = 200
#: How often SQLite listeners in the four-process contestant look for other processes'
#: notifications (the workers' and this process's result waiters').
SQLITE_POLL = 0.01
ROOT = Path(__file__).resolve().parent.parent
SERVER = os.environ.get("FSMFLOW_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")

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


class Databases:
    """Fresh databases, one per contestant and round: SQLite files in a scratch
    directory, PostgreSQL databases on the server; all removed by :meth:`close`."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="bench-durable-"))
        self.count = 0
        self.created: list[str] = []

    def new(self, backend: str, name: str) -> str:
        """A new, empty database of ``backend``: a file path or a DSN."""
        self.count += 1
        if backend == "sqlite":
            return str(self.root / f"{self.count}-{name}.sqlite3")
        database = f"fsmflow_bench_{os.getpid()}_{self.count}_{secrets.token_hex(3)}"
        with psycopg.connect(SERVER, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{database}"')
        self.created.append(database)
        return _url(database)

    def drop(self, location: str) -> None:
        if location.startswith("postgresql"):
            database = location.rsplit("/", 1)[1]
            with psycopg.connect(SERVER, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            self.created.remove(database)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        for database in list(self.created):
            self.drop(_url(database))


def _url(database: str) -> str:
    """The URL of ``database`` on the benchmark's server (a URL that DBOS accepts too)."""
    return SERVER.rsplit("/", 1)[0] + "/" + database


def raw_commits(dbs: Databases, backend: str) -> Callable[[int, int], float]:
    def run(operations: int, warmup: int) -> float:
        location = dbs.new(backend, "raw")
        if backend == "sqlite":
            db = sqlite3.connect(location, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB)")

            def commit(i: int) -> None:
                db.execute("BEGIN IMMEDIATE")
                db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (f"k{i}", b"x" * 64))
                db.execute("COMMIT")

            def count() -> int:
                return int(db.execute("SELECT COUNT(*) FROM kv").fetchone()[0])

        else:
            pg = psycopg.connect(location, autocommit=True)
            pg.execute("CREATE TABLE kv (key text PRIMARY KEY, value bytea)")

            def commit(i: int) -> None:
                pg.execute(
                    "INSERT INTO kv VALUES (%s, %s)"
                    " ON CONFLICT (key) DO UPDATE SET value=excluded.value",
                    (f"k{i}", b"x" * 64),
                )

            def count() -> int:
                return int((pg.execute("SELECT COUNT(*) FROM kv").fetchone() or (0,))[0])

        def body(workflows: int) -> None:
            for i in range(3 * workflows):
                commit(i)

        try:
            body(warmup)
            start = time.perf_counter()
            body(operations)
            seconds = time.perf_counter() - start
            assert count() == 3 * max(operations, warmup)
        finally:
            if backend == "sqlite":
                db.close()
            else:
                pg.close()
            dbs.drop(location)
        return seconds

    return run


async def _start_and_wait(store: Store, count: int, base: int) -> list[int]:
    handles = [await start_run(store, three, base + i) for i in range(count)]
    return [await h.result() for h in handles]


def fsmflow_in_process(dbs: Databases, backend: str) -> Callable[[int, int], float]:
    def run(operations: int, warmup: int) -> float:
        location = dbs.new(backend, "one")

        async def main() -> float:
            async with await open_store(location) as store:
                worker = Worker(store, [three], concurrency=16)
                async with anyio.create_task_group() as tg:
                    await tg.start(worker.run)
                    await _start_and_wait(store, warmup, 10**6)
                    start = time.perf_counter()
                    results = await _start_and_wait(store, operations, 0)
                    seconds = time.perf_counter() - start
                    tg.cancel_scope.cancel()
                assert results == [i + 3 for i in range(operations)]
                return seconds

        try:
            return trio.run(main)
        finally:
            dbs.drop(location)

    return run


def fsmflow_processes(dbs: Databases, backend: str, workers: int) -> Callable[[int, int], float]:
    def run(operations: int, warmup: int) -> float:
        location = dbs.new(backend, "pool")
        trio.run(_touch, location)
        command = [sys.executable, "-m", "fsmflow", "worker", "bench.bench_durable:three"]
        command += ["--store", location, "--concurrency", "16"]
        if backend == "sqlite":
            # SQLite has no cross-process notification: a listener polls a counter.
            command += ["--poll-interval", str(SQLITE_POLL)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        pool = [
            subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE)
            for _ in range(workers)
        ]
        try:
            for process in pool:
                assert process.stderr is not None
                process.stderr.readline()  # "worker ... serving ..." once it is ready

            async def main() -> float:
                options = {"poll_interval": SQLITE_POLL} if backend == "sqlite" else {}
                async with await open_store(location, **options) as store:
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
            dbs.drop(location)

    return run


async def _touch(location: str) -> None:
    async with await open_store(location):
        pass


_dbos_workflow: Any = None


def _dbos_three() -> Any:
    """DBOS's three-step workflow, registered once (DBOS wants unique names)."""
    global _dbos_workflow
    if _dbos_workflow is None:
        from dbos import DBOS

        @DBOS.step()
        def d_one(n: int) -> int:
            return n + 1

        @DBOS.workflow()
        def d_three(n: int) -> int:
            return d_one(d_one(d_one(n)))

        _dbos_workflow = d_three
    return _dbos_workflow


def dbos_runner(dbs: Databases, backend: str) -> Callable[[int, int], float]:
    from dbos import DBOS

    d_three = _dbos_three()

    def run(operations: int, warmup: int) -> float:
        location = dbs.new(backend, "dbos")
        url = f"sqlite:///{location}" if backend == "sqlite" else location
        DBOS(config={"name": "bench", "system_database_url": url})
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
            dbs.drop(location)

    return run


def _contestants(dbs: Databases, backend: str) -> list[tuple[str, int, Any]]:
    label = "SQLite" if backend == "sqlite" else "PostgreSQL"
    runners: list[tuple[str, int, Any]] = [
        (f"{label}: raw commit (3 per workflow)", WORKFLOWS, raw_commits(dbs, backend)),
        (f"{label}: fsmflow, 1 worker", WORKFLOWS, fsmflow_in_process(dbs, backend)),
        (f"{label}: fsmflow, 4 processes", WORKFLOWS, fsmflow_processes(dbs, backend, 4)),
    ]
    try:
        runners.append((f"{label}: DBOS Transact, 1 process", WORKFLOWS, dbos_runner(dbs, backend)))
    except ImportError:
        print("DBOS Transact is not installed (pip install dbos): its rows are left out")
    return runners


def main(argv: list[str] | None = None) -> list[Measurement]:
    args = list(sys.argv[1:] if argv is None else argv)
    backends = ["sqlite", "postgres"]
    if "--backend" in args:
        at = args.index("--backend")
        backends = [args[at + 1]]
        del args[at : at + 2]
    settings: Settings = parse_settings(__doc__ or "", args)
    dbs = Databases()
    try:
        runners = [r for backend in backends for r in _contestants(dbs, backend)]
        print(
            f"durable three-step workflows on {' and '.join(backends)}: "
            f"{settings.repeats} rounds, interleaved",
            flush=True,
        )
        measured = measure_rounds(runners, settings)
    finally:
        dbs.close()
    print("(a 2-core machine shared with other work: compare ratios, not absolute rates)")
    rows = []
    for m in measured:
        label = m.name.split(":", 1)[0]
        raw = next(r for r in measured if r.name == f"{label}: raw commit (3 per workflow)")
        # How many raw commits fit in the time one of this contestant's steps takes
        # (ratio of the medians, and its range over the paired rounds).
        cost = "-" if m is raw else ratio(raw, m).replace("x", "")
        rows.append([m.name, m.summary(), m.summary(scale=3), cost])
    print(
        format_table(
            ["contestant", "workflows/s", "steps/s", "cost of a step in raw commits"], rows
        )
    )
    by_name = {m.name: m for m in measured}
    for backend in backends:
        label = "SQLite" if backend == "sqlite" else "PostgreSQL"
        dbos = by_name.get(f"{label}: DBOS Transact, 1 process")
        if dbos is None:
            continue
        for ours in ("1 worker", "4 processes"):
            mine = by_name[f"{label}: fsmflow, {ours}"]
            print(f"{label}: fsmflow ({ours}) / DBOS Transact: {ratio(mine, dbos)}")
    if settings.json_path is not None:
        write_json(
            settings.json_path,
            {
                "benchmark": "durable",
                "environment": environment(["fsmflow", "dbos", "trio", "anyio", "psycopg"]),
                "results": [m.as_json() for m in measured],
            },
        )
    return measured


if __name__ == "__main__":
    main()
