"""Durability under fire with real worker processes, on a SQLite file and on the real
PostgreSQL (``nox -s durability``; the default test run skips these). Each test runs
``tests/durable/chaos.py`` in a process of its own, because that script forks its
workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from store._backends import drop_schema, new_schema, postgres_dsn

pytestmark = pytest.mark.durability

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    """The chaos script's store arguments: none (a SQLite file in its directory), or a
    fresh schema of the test session's PostgreSQL database, dropped afterwards."""
    if request.param == "sqlite":
        yield []
        return
    dsn, schema = postgres_dsn(), new_schema()
    try:
        yield ["--store", dsn, "--schema", schema]
    finally:
        drop_schema(schema)


def _chaos(tmp_path: Path, target: list[str], *args: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "tests.durable.chaos", *args, "--dir", str(tmp_path), *target],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    backend = "postgres" if target else "sqlite"
    sys.stderr.write(f"chaos {args[0]} on {backend}: {json.dumps(report)}\n")
    return report


def test_sigkill_at_random_moments_loses_nothing(tmp_path: Path, target: list[str]) -> None:
    """200 SIGKILLs of worker processes (trio and asyncio ones) while runs keep coming,
    aimed in turn at random moments, inside steps, and at workers starting up and
    recovering: every started run ends as an uninterrupted run would (completed with the
    same output, or compensated with both undos), each step or undo is journaled once,
    and the steps executed again number at most the kills (one per kill: each worker
    runs one run)."""
    report = _chaos(tmp_path, target, "kill", "--kills", "200", "--workers", "4")
    assert report["kills"] == 200
    assert report["wrong"] == []
    assert report["distinct_steps"] == report["steps_expected"]
    assert report["effects"] == report["steps_expected"]
    assert report["reruns"] <= report["kills"]
    assert report["max_executions_per_step"] <= 1 + report["kills"]
    # The kills did land where they were aimed, not only between steps.
    assert report["landed"]["in_step"] >= 40
    assert report["landed"]["start_up"] >= 20


def test_a_stopped_worker_is_fenced_off(tmp_path: Path, target: list[str]) -> None:
    """A worker SIGSTOPped inside a step past its lease; another takes the run over and
    finishes it; the first, continued, has its writes refused and stops the run: the
    step ran in both, its output was committed once."""
    report = _chaos(tmp_path, target, "fence", "--ttl", "1.0")
    assert report["wrong"] == []
    assert report["first_step_ran_in"] == 2
    assert report["stale_worker_lost_lease"] == 1
    assert report["distinct_steps"] == 3 and report["reruns"] == 1


def test_workers_racing_over_many_runs_run_each_step_once(
    tmp_path: Path, target: list[str]
) -> None:
    """Four worker processes over 1,000 runs on one store, no kills: every run ends once
    and every step's effect (keyed by its idempotency key) is applied exactly once, by
    exactly one execution."""
    report = _chaos(tmp_path, target, "race", "--runs", "1000", "--workers", "4")
    assert report["wrong"] == []
    assert report["executions"] == report["steps_expected"] == report["effects"]
    assert report["max_executions_per_step"] == 1
