"""The workflow the kill tests run in worker processes: three steps whose every
execution and effect is recorded in a ledger database (``FSMFLOW_CHAOS_LEDGER``, an
outside system to the store under test), keyed by the step's idempotency key, and two
undos. An execution row stays ``done=0`` while its step runs, so the kill test can aim a
kill inside a step and tell afterwards where each kill landed."""

from __future__ import annotations

import os
import random
import sqlite3
import time

import attrs

from fsmflow.durable import RetryPolicy, StepContext, Workflow


@attrs.frozen
class Job:
    n: int
    fail: bool = False
    #: Seconds the first step lingers (the fencing test stops a worker inside it).
    linger: float = 0.0


class Refused(Exception):
    """The last step refuses a failing job: its undos run."""


def ledger_path() -> str:
    return os.environ["FSMFLOW_CHAOS_LEDGER"]


def create_ledger(path: str) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(
        "CREATE TABLE IF NOT EXISTS executions (key TEXT NOT NULL, pid INTEGER NOT NULL,"
        " done INTEGER NOT NULL DEFAULT 0)"
    )
    db.execute("CREATE TABLE IF NOT EXISTS effects (key TEXT PRIMARY KEY, pid INTEGER NOT NULL)")
    db.close()


def _record(ctx: StepContext, linger: float = 0.0) -> None:
    """Note that this step runs, take a little while, then apply its effect once per
    idempotency key (an outside system that deduplicates by the key)."""
    db = sqlite3.connect(ledger_path(), timeout=60, isolation_level=None)
    try:
        execution = db.execute(
            "INSERT INTO executions (key, pid) VALUES (?, ?)", (ctx.idempotency_key, os.getpid())
        ).lastrowid
        time.sleep(linger or random.uniform(0.005, 0.05))
        db.execute(
            "INSERT OR IGNORE INTO effects VALUES (?, ?)", (ctx.idempotency_key, os.getpid())
        )
        db.execute("UPDATE executions SET done=1 WHERE rowid=?", (execution,))
    finally:
        db.close()


chaos = Workflow("chaos", input=Job, output=int, retention=3600.0)
_NO_RETRY_ON_REFUSAL = RetryPolicy(attempts=3, initial_delay=0.0, give_up_on=(Refused,))


@chaos.step(blocking=True, retry=_NO_RETRY_ON_REFUSAL)
def first(ctx: StepContext, job: Job) -> int:
    _record(ctx, job.linger)
    return job.n * 3


@first.undo
def undo_first(ctx: StepContext, job: Job, x: int) -> None:
    _record(ctx)


@chaos.step(first, blocking=True, retry=_NO_RETRY_ON_REFUSAL)
def second(ctx: StepContext, job: Job, x: int) -> int:
    _record(ctx)
    return x + 7


@second.undo
def undo_second(ctx: StepContext, job: Job, y: int) -> None:
    _record(ctx)


@chaos.step(first, second, blocking=True, retry=_NO_RETRY_ON_REFUSAL)
def third(ctx: StepContext, job: Job, x: int, y: int) -> int:
    _record(ctx)
    if job.fail:
        raise Refused(f"job {job.n} refused")
    return x * y


def expected(job: Job) -> int | None:
    """The output of an uninterrupted run (``None``: it ends COMPENSATED)."""
    if job.fail:
        return None
    return (job.n * 3) * (job.n * 3 + 7)
