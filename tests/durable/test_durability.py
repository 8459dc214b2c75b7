"""Durability under fire with real worker processes on one SQLite file (``nox -s
durability``; the default test run skips these). Each test runs ``tests/durable/chaos.py``
in a process of its own, because that script forks its workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.durability

ROOT = Path(__file__).resolve().parents[2]


def _chaos(tmp_path: Path, *args: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "tests.durable.chaos", *args, "--dir", str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def test_sigkill_at_random_moments_loses_nothing(tmp_path: Path) -> None:
    """200 SIGKILLs of worker processes (trio and asyncio ones) while runs keep coming:
    every started run ends as an uninterrupted run would (completed with the same output,
    or compensated with both undos), each step or undo is journaled once, and the steps
    executed again number at most the kills (one per kill: each worker runs one run)."""
    report = _chaos(tmp_path, "kill", "--kills", "200", "--workers", "4")
    assert report["kills"] == 200
    assert report["wrong"] == []
    assert report["distinct_steps"] == report["steps_expected"]
    assert report["effects"] == report["steps_expected"]
    assert report["reruns"] <= report["kills"]
    assert report["max_executions_per_step"] <= 1 + report["kills"]


def test_a_stopped_worker_is_fenced_off(tmp_path: Path) -> None:
    """A worker SIGSTOPped inside a step past its lease; another takes the run over and
    finishes it; the first, continued, has its writes refused and stops the run: the
    step ran in both, its output was committed once."""
    report = _chaos(tmp_path, "fence", "--ttl", "1.0")
    assert report["wrong"] == []
    assert report["first_step_ran_in"] == 2
    assert report["stale_worker_lost_lease"] == 1
    assert report["distinct_steps"] == 3 and report["reruns"] == 1


def test_workers_racing_over_many_runs_run_each_step_once(tmp_path: Path) -> None:
    """Four worker processes over 1,000 runs on one SQLite file, no kills: every run
    ends once and every step's effect (keyed by its idempotency key) is applied exactly
    once, by exactly one execution."""
    report = _chaos(tmp_path, "race", "--runs", "1000", "--workers", "4")
    assert report["wrong"] == []
    assert report["executions"] == report["steps_expected"] == report["effects"]
    assert report["max_executions_per_step"] == 1
