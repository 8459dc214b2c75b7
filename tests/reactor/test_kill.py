"""Kill a durable ``SEQUENTIAL`` reactor with SIGKILL at random moments, many times over,
and restart it each time: every accepted boundary fires, in order, and only the one in
flight at a kill may fire a second time.

The reactor runs in a real subprocess (``_kill_child.py``) on a SQLite file; its graph
appends each fired id to a ledger, and each process start appends ``start``. Kills land
anywhere: while importing, while restoring, while feeding and firing. Set
``FSMFLOW_KILL_SEED`` to replay a run's kill timings.
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

CHILD = Path(__file__).with_name("_kill_child.py")
TOTAL = 5000
KILLS = 15


def spawn(db: Path, ledger: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), str(db), str(ledger), str(TOTAL)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_ready(process: subprocess.Popen[str], timeout: float) -> bool:
    """Whether the child said ``ready`` (it restored its state) within ``timeout``."""
    assert process.stdout is not None
    readable, _, _ = select.select([process.stdout], [], [], timeout)
    return bool(readable) and process.stdout.readline().strip() == "ready"


def kill(process: subprocess.Popen[str]) -> str:
    """SIGKILL ``process`` (if it still runs) and return what it wrote to stderr."""
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    _, err = process.communicate(timeout=30)
    assert process.returncode in (0, -signal.SIGKILL), f"the child crashed:\n{err}"
    return err


def segments(ledger: Path) -> list[list[int]]:
    """The ids each process fired, one list per process start."""
    runs: list[list[int]] = []
    for token in ledger.read_text(encoding="utf-8").split():
        if token == "start":
            runs.append([])
        else:
            runs[-1].append(int(token))
    return runs


def test_sigkill_at_random_moments_loses_no_accepted_boundary(tmp_path: Path) -> None:
    seed = int(os.environ.get("FSMFLOW_KILL_SEED", time.time_ns() % 2**32))
    rng = random.Random(seed)
    db, ledger = tmp_path / "reactor.sqlite3", tmp_path / "ledger.txt"
    for attempt in range(KILLS):
        process = spawn(db, ledger)
        try:
            if attempt % 4 == 0:
                time.sleep(rng.uniform(0.05, 0.6))  # anywhere, startup included
            else:
                assert wait_ready(process, 60), f"seed {seed}: the child never got ready"
                time.sleep(rng.uniform(0.0, 0.25))
        finally:
            kill(process)

    final = spawn(db, ledger)
    _, err = final.communicate(timeout=120)
    assert final.returncode == 0, f"seed {seed}: the last run failed:\n{err}"

    runs = segments(ledger)
    fired = [i for run in runs for i in run]
    assert set(fired) == set(range(1, TOTAL + 1)), f"seed {seed}: boundaries were lost"
    previous, refired = 0, 0
    for run in runs:
        for index, current in enumerate(run):
            if index == 0 and current == previous:
                refired += 1  # the one in flight when the last process was killed
            else:
                assert current == previous + 1, (
                    f"seed {seed}: {current} fired after {previous} (run {runs.index(run)})"
                )
            previous = current
    assert refired <= KILLS
    interrupted = sum(1 for run in runs[:-1] if run and run[-1] < TOTAL)
    assert interrupted >= KILLS // 3, f"seed {seed}: too few kills landed mid-work"
