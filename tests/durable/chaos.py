"""Worker processes under fire, for the durability tests (run as a script, because it
forks: ``python -m tests.durable.chaos kill|fence|race --dir DIR [--store DSN --schema
NAME]``). The store is a SQLite file in ``DIR``, or with ``--store`` a schema of a
PostgreSQL database (created by the worker processes, dropped by the caller). Prints one
JSON object: what happened and what the stored runs look like afterwards.

* ``kill``: worker processes (concurrency 1 each) are SIGKILLed while runs keep being
  started; each is replaced at once. The kills take turns at three kinds of moment: at
  random, inside a step (aimed: a victim whose step is running), and during start-up and
  recovery (a fresh worker opening the store and claiming the runs the last kill left
  behind). Where each kill landed is reported. Afterwards every run must have ended as
  an uninterrupted run would, with one journal entry per step or undo, and the steps
  executed more than once must number at most the kills.
* ``fence``: a worker is SIGSTOPped inside a step past its lease, another takes the run
  over and finishes it, then the first is SIGCONTed: its commit must be refused.
* ``race``: worker processes race over many runs without kills: every step runs once.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import trio

from fsmflow.durable import RunSettings, RunStatus, Worker, start_run
from fsmflow.durable._records import RUNS, decode_record, journal_log
from fsmflow.store import Store, open_store

from .chaos_workflows import Job, chaos, create_ledger, expected

_BACKENDS = ("trio", "asyncio")
_forks = 0


class Target:
    """Where the runs are stored: a SQLite file, or a schema of a PostgreSQL database."""

    def __init__(self, directory: Path, dsn: str | None, schema: str | None) -> None:
        self.location = dsn or str(directory / "runs.sqlite3")
        self.options: dict[str, Any] = {} if dsn is None else {"schema": schema or "fsmflow"}

    async def open(self) -> Store:
        return await open_store(self.location, **self.options)


def _serve(target: Target, ttl: float, concurrency: int, log: str, backend: str) -> None:
    """A forked child: run a worker until killed (workers alternate between trio and
    asyncio, so both backends share the same runs). Writes ``log`` once it is serving
    and every 0.2 s after."""

    async def main() -> None:
        store = await target.open()
        worker = Worker(
            store,
            [chaos],
            concurrency=concurrency,
            lease_ttl=ttl,
            poll_interval=0.05,
            settings=RunSettings(inline_wait=0.5),
        )
        async with anyio.create_task_group() as tg:
            await tg.start(worker.run)
            while True:
                report = json.dumps({"lost": worker.stats.lost, "backend": backend})
                await anyio.Path(log).write_text(report)
                await anyio.sleep(0.2)

    try:
        anyio.run(main, backend=backend)
    finally:
        os._exit(0)


def _fork_worker(target: Target, ttl: float, concurrency: int, log: str) -> int:
    global _forks
    backend = _BACKENDS[_forks % 2]
    _forks += 1
    pid = os.fork()
    if pid == 0:
        _serve(target, ttl, concurrency, log.replace("PID", str(os.getpid())), backend)
    return pid


async def _start(target: Target, jobs: list[tuple[str, Job]]) -> None:
    async with await target.open() as store:
        for run_id, job in jobs:
            await start_run(store, chaos, job, run_id=run_id)


async def _all_final(target: Target, run_ids: list[str]) -> bool:
    async with await target.open() as store:
        for run_id in run_ids:
            stored = await store.get(RUNS, run_id)
            if stored is None or not decode_record(stored.value, run_id).status.is_final:
                return False
    return True


async def _inspect(target: Target, jobs: dict[str, Job]) -> dict[str, Any]:
    """Compare every run with what an uninterrupted run of its job gives."""
    wrong: list[str] = []
    async with await target.open() as store:
        for run_id, job in jobs.items():
            stored = await store.get(RUNS, run_id)
            if stored is None:
                wrong.append(f"{run_id}: lost")
                continue
            record = decode_record(stored.value, run_id)
            kinds = [e.value.split(b"\n", 1)[0] for e in await store.read(journal_log(run_id))]
            want = expected(job)
            if want is None:
                good = record.status is RunStatus.COMPENSATED and len(kinds) == 4
                good = good and sum(b'"k":"undo"' in k for k in kinds) == 2
            else:
                good = record.status is RunStatus.COMPLETED and record.result == str(want)
                good = good and len(kinds) == 3
            if not good:
                wrong.append(f"{run_id}: {record.status.value} {record.result} {kinds}")
    return {"wrong": wrong}


def _ledger(ledger: str) -> dict[str, Any]:
    import sqlite3

    db = sqlite3.connect(ledger)
    executions = db.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM executions").fetchone()
    effects = db.execute("SELECT COUNT(*) FROM effects").fetchone()[0]
    per_key = db.execute(
        "SELECT MAX(n) FROM (SELECT COUNT(*) AS n FROM executions GROUP BY key)"
    ).fetchone()[0]
    db.close()
    return {
        "executions": executions[0],
        "distinct_steps": executions[1],
        "effects": effects,
        "reruns": executions[0] - executions[1],
        "max_executions_per_step": per_key,
    }


def _in_step(ledger: str, pids: list[int]) -> list[int]:
    """The workers among ``pids`` whose step is running now."""
    import sqlite3

    db = sqlite3.connect(ledger, timeout=60)
    try:
        rows = db.execute("SELECT DISTINCT pid FROM executions WHERE done=0").fetchall()
    finally:
        db.close()
    running = {row[0] for row in rows}
    return [pid for pid in pids if pid in running]


def _wait_for_step(ledger: str, pids: list[int], timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _in_step(ledger, pids)
        if found:
            return found[0]
        time.sleep(0.003)
    return None


def kill(directory: Path, target: Target, kills: int, workers: int, ttl: float) -> dict[str, Any]:
    ledger = str(directory / "ledger.sqlite3")
    create_ledger(ledger)
    os.environ["FSMFLOW_CHAOS_LEDGER"] = ledger
    rng = random.Random(int(os.environ.get("FSMFLOW_CHAOS_SEED", "0")) or None)
    jobs: dict[str, Job] = {}

    def more(count: int) -> None:
        batch = []
        for _ in range(count):
            n = len(jobs)
            job = Job(n, fail=n % 5 == 0)
            jobs[f"run-{n}"] = job
            batch.append((f"run-{n}", job))
        trio.run(_start, target, batch)

    more(20)
    logs = str(directory / "worker-PID.json")
    live = [_fork_worker(target, ttl, 1, logs) for _ in range(workers)]
    landed = {"in_step": 0, "start_up": 0, "elsewhere": 0}
    aimed = {"random": 0, "in_step": 0, "start_up": 0}
    done_kills = 0
    started = time.monotonic()
    while done_kills < kills:
        how = ("random", "in_step", "start_up")[done_kills % 3]
        victim: int | None = None
        if how == "random":
            time.sleep(rng.uniform(0.02, 0.3))
        elif how == "in_step":
            victim = _wait_for_step(ledger, live, 2.0)
        else:
            time.sleep(rng.uniform(0.0, 0.02))  # the newest worker is starting up
            victim = live[-1]
        if victim is None:
            victim = live[rng.randrange(len(live))]
        live.remove(victim)
        os.kill(victim, signal.SIGKILL)
        os.waitpid(victim, 0)
        aimed[how] += 1
        if not Path(logs.replace("PID", str(victim))).exists():
            landed["start_up"] += 1
        elif _in_step(ledger, [victim]):
            landed["in_step"] += 1
        else:
            landed["elsewhere"] += 1
        done_kills += 1
        more(1)
        live.append(_fork_worker(target, ttl, 1, logs))  # the next start-up kill's victim
    chaos_seconds = time.monotonic() - started
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not trio.run(_all_final, target, list(jobs)):
        time.sleep(0.5)
    for pid in live:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    report = trio.run(_inspect, target, jobs)
    report.update(_ledger(ledger))
    report.update(
        {
            "kills": done_kills,
            "aimed": aimed,
            "landed": landed,
            "runs": len(jobs),
            "steps_expected": sum(3 if not j.fail else 5 for j in jobs.values()),
            "chaos_seconds": round(chaos_seconds, 1),
        }
    )
    return report


def fence(directory: Path, target: Target, ttl: float) -> dict[str, Any]:
    ledger = str(directory / "ledger.sqlite3")
    create_ledger(ledger)
    os.environ["FSMFLOW_CHAOS_LEDGER"] = ledger
    trio.run(_start, target, [("fenced", Job(4, linger=ttl * 3))])
    import sqlite3

    def executions() -> list[int]:
        conn = sqlite3.connect(ledger)
        rows = conn.execute("SELECT pid FROM executions WHERE key='fenced:first'").fetchall()
        conn.close()
        return [r[0] for r in rows]

    log = str(directory / "worker-PID.json")
    a = _fork_worker(target, ttl, 1, log)
    while not executions():
        time.sleep(0.01)
    os.kill(a, signal.SIGSTOP)  # inside the step, holding the lease it can no longer renew
    time.sleep(ttl * 1.5)
    b = _fork_worker(target, ttl, 1, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not trio.run(_all_final, target, ["fenced"]):
        time.sleep(0.1)
    os.kill(a, signal.SIGCONT)
    time.sleep(ttl * 3 + 1)  # A finishes its step and tries to commit
    lost = json.loads(Path(log.replace("PID", str(a))).read_text())["lost"]
    for pid in (a, b):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    report = trio.run(_inspect, target, {"fenced": Job(4)})
    report["stale_worker_lost_lease"] = lost
    report["first_step_ran_in"] = len(set(executions()))
    report.update(_ledger(ledger))
    return report


def race(directory: Path, target: Target, runs: int, workers: int) -> dict[str, Any]:
    ledger = str(directory / "ledger.sqlite3")
    create_ledger(ledger)
    os.environ["FSMFLOW_CHAOS_LEDGER"] = ledger
    jobs = {f"race-{n}": Job(n, fail=n % 10 == 0) for n in range(runs)}
    trio.run(_start, target, list(jobs.items()))
    started = time.monotonic()
    log = str(directory / "worker-PID.json")
    live = [_fork_worker(target, 10.0, 4, log) for _ in range(workers)]
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not trio.run(_all_final, target, list(jobs)):
        time.sleep(0.5)
    seconds = time.monotonic() - started
    for pid in live:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    report = trio.run(_inspect, target, jobs)
    report.update(_ledger(ledger))
    report["runs"] = runs
    report["steps_expected"] = sum(3 if not j.fail else 5 for j in jobs.values())
    report["seconds"] = round(seconds, 1)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["kill", "fence", "race"])
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--store", metavar="DSN", help="a PostgreSQL database (default: SQLite)")
    parser.add_argument("--schema", help="the PostgreSQL schema to use")
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--ttl", type=float, default=1.5)
    args = parser.parse_args(argv)
    target = Target(args.dir, args.store, args.schema)
    if args.mode == "kill":
        report = kill(args.dir, target, args.kills, args.workers, args.ttl)
    elif args.mode == "fence":
        report = fence(args.dir, target, args.ttl)
    else:
        report = race(args.dir, target, args.runs, args.workers)
    sys.stdout.write(json.dumps(report) + "\n")


if __name__ == "__main__":
    main()
