"""The supervision-tree example ends the way its docstring says it does."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import pytest
from trio.testing import MockClock

from examples import supervision_tree
from examples.supervision_tree import FLAKY_CRASHES, TICK
from fsmflow.supervisor import ExitKind, RestartBackoff, Stopped

ROOT = Path(__file__).resolve().parent.parent


async def test_the_flaky_worker_is_restarted_while_the_steady_one_carries_on(
    autojump_clock: MockClock,
) -> None:
    report = await supervision_tree.main()

    assert report.outcome.exit is ExitKind.TERMINATED
    assert report.outcome.final_state == Stopped()
    assert report.restarts == {"steady": 0, "flaky": FLAKY_CRASHES}
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
        for name in ("steady", "flaky", "workers")
    }
    assert by_worker == {
        "steady": [ExitKind.CANCELLED],
        "flaky": [ExitKind.FAILED] * FLAKY_CRASHES + [ExitKind.CANCELLED],
        "workers": [ExitKind.TERMINATED],
    }
    # The orderly shutdown stops the later child first.
    stopped = [c.supervisor for c in report.completions if c.exit is ExitKind.CANCELLED]
    assert stopped == ["flaky", "steady"]
    assert report.ticks["steady"] > report.ticks["flaky"]


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
    assert "tree terminated in Stopped()" in result.stdout
    assert "restarts: {'steady': 0, 'flaky': 3}" in result.stdout
