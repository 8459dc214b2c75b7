"""Resume after SIGKILL: a graph run in a real subprocess is killed at random steps and
resumed each time; the run finally reaches the same state as an uninterrupted one.

Set ``FSMFLOW_KILL_SEED`` to replay a run's kill points.
"""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import trio

from fsmflow.graph import execute, load_run, resume
from fsmflow.store import SqliteStore

from ._graphs import Counter, loop_graph

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 120
STEPS = 2 * LIMIT + 1
KILLS = 3


def spawn(db: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.graph._kill_child", str(db), "trace", str(LIMIT)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def saved_steps(process: subprocess.Popen[str], count: int, timeout: float) -> list[int]:
    """Read ``saved N`` lines until ``count`` of them arrived (or the child ended)."""
    assert process.stdout is not None
    steps: list[int] = []
    deadline = time.monotonic() + timeout
    while len(steps) < count:
        readable, _, _ = select.select([process.stdout], [], [], deadline - time.monotonic())
        assert readable, "the child stopped making progress"
        line = process.stdout.readline()
        if not line:
            break
        if line.startswith("saved "):
            steps.append(int(line.split()[1]))
    return steps


def test_resume_after_sigkill_reaches_the_same_final_state(tmp_path: Path) -> None:
    seed = int(os.environ.get("FSMFLOW_KILL_SEED", time.time_ns() % 2**32))
    rng = random.Random(seed)
    db = tmp_path / "graph.sqlite3"
    reached = 0
    for _ in range(KILLS):
        process = spawn(db)
        try:
            steps = saved_steps(process, rng.randint(1, STEPS // (KILLS + 1)), 60)
        finally:
            process.send_signal(signal.SIGKILL)
            _, err = process.communicate(timeout=30)
        assert process.returncode == -signal.SIGKILL, f"seed {seed}: the child crashed:\n{err}"
        assert steps[0] > reached, f"seed {seed}: the child did not resume past step {reached}"
        reached = steps[-1]

    async def finish() -> tuple[Counter, Counter, int]:
        async with await SqliteStore.open(db) as store:
            restored = await load_run(store, loop_graph(LIMIT), "trace")
            assert restored.step >= reached
            resumed = await resume(loop_graph(LIMIT), "trace", store=store)
        uninterrupted = await execute(loop_graph(LIMIT), Counter())
        return resumed.state, uninterrupted.state, resumed.steps

    resumed, uninterrupted, total = trio.run(finish)
    assert resumed == uninterrupted, f"seed {seed}"
    assert total == STEPS
