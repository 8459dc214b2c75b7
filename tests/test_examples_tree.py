"""The supervision-tree example ends the way its docstring says it does."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import pytest
from trio.testing import MockClock

from examples import supervision_tree
from examples.supervision_tree import FLAKY_CRASHES, JOBS, TICK
from fsmflow.cli import main as cli_main
from fsmflow.supervisor import ChildCounts, ExitKind, RestartBackoff, Stopped

ROOT = Path(__file__).resolve().parent.parent


async def test_the_flaky_worker_is_restarted_while_the_steady_one_carries_on(
    autojump_clock: MockClock,
) -> None:
    report = await supervision_tree.main()

    assert report.outcome.exit is ExitKind.TERMINATED
    assert report.outcome.final_state == Stopped()
    assert report.restarts == {"steady": 0, "flaky": FLAKY_CRASHES, "jobs": 0}
    # The pool shut itself down once its last (significant) job was done; being
    # transient, it was not restarted.
    assert report.pool_outcome.exit is ExitKind.TERMINATED
    assert isinstance(report.pool_outcome.final_state, Stopped)
    assert "all_significant" in report.pool_outcome.final_state.reason
    assert [(r.child_id, r.exit, r.restarted) for r in report.history] == [
        ("flaky", ExitKind.FAILED, ("flaky",))
    ] * FLAKY_CRASHES
    assert all(r.error and "lost its connection" in r.error for r in report.history)
    # Each crashed run did 2 ticks of work; the fourth run kept going until the shutdown.
    assert report.ticks["flaky"] > 2 * FLAKY_CRASHES


async def test_the_backoff_grows_between_crashes(autojump_clock: MockClock) -> None:
    report = await supervision_tree.main()

    delays = [r.delay for r in report.history]
    assert delays == sorted(delays)
    # Each run crashes 3 ticks after it started, so crashes are 3 ticks plus a delay apart.
    crashes = [r.at for r in report.history]
    gaps = [b - a for a, b in itertools.pairwise(crashes)]
    assert gaps == pytest.approx([d + 3 * TICK for d in delays[:-1]])
    backoff = RestartBackoff(initial=0.02, factor=2, maximum=0.2, jitter=0.25)
    assert all(
        (1 - backoff.jitter) * backoff.initial * backoff.factor**n
        <= delay
        <= (1 + backoff.jitter) * backoff.initial * backoff.factor**n
        for n, delay in enumerate(delays)
    )


async def test_one_completion_event_per_run_and_the_steady_worker_never_stopped_early(
    autojump_clock: MockClock,
) -> None:
    report = await supervision_tree.main()

    by_worker = {
        name: [c.exit for c in report.completions if c.supervisor == name]
        for name in ("steady", "flaky", "jobs", "workers")
    }
    assert by_worker == {
        "steady": [ExitKind.CANCELLED],
        "flaky": [ExitKind.FAILED] * FLAKY_CRASHES + [ExitKind.CANCELLED],
        "jobs": [ExitKind.TERMINATED],
        "workers": [ExitKind.TERMINATED],
    }
    # The pool ended itself after its last job; the orderly shutdown then stops the later
    # child first.
    stopped = [c.supervisor for c in report.completions if c.supervisor in by_worker]
    assert stopped[-3:] == ["flaky", "steady", "workers"]
    assert report.ticks["steady"] > report.ticks["flaky"]


async def test_the_pool_runs_each_job_with_its_arguments(autojump_clock: MockClock) -> None:
    report = await supervision_tree.main()

    assert report.pool_counts == ChildCounts(
        specs=3, running=3, restarting=0, stopped=0, abandoned=0
    )
    # resize crashed half-way and was restarted with the same arguments; every job ended.
    assert [(r.child_id, r.exit) for r in report.pool_history] == [("job-2", ExitKind.FAILED)]
    by_job = {
        job.name: [c.exit for c in report.completions if c.supervisor == job.name] for job in JOBS
    }
    assert by_job == {
        "thumbnails": [ExitKind.TERMINATED],
        "resize": [ExitKind.FAILED, ExitKind.TERMINATED],
        "index": [ExitKind.TERMINATED],
    }
    # While they ran, the tree's picture showed the pool and its three running jobs.
    assert "simple_one_for_one" in report.diagram
    for n in (1, 2, 3):
        assert f"job-{n}<br/>transient, significant<br/>running" in report.diagram
    assert "class " in report.diagram and " current" in report.diagram


def test_the_tree_draws_from_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["diagram", "examples.supervision_tree:build_tree"]) == 0
    out = capsys.readouterr().out
    assert out.startswith('---\ntitle: "supervision tree workers"')
    for child in ("steady", "flaky"):
        assert f'"{child}<br/>permanent"' in out
    assert '"jobs<br/>transient"' in out


def test_the_example_runs_as_a_script() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "examples.supervision_tree"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "tree terminated in Stopped(" in result.stdout
    assert "restarts: {'steady': 0, 'flaky': 3, 'jobs': 0}" in result.stdout
    assert "jobs: job-2 failed; restarted" in result.stdout
    assert 'jobs terminated in Stopped(reason="auto_shutdown (all_significant)' in result.stdout
