"""SIGKILL at random moments: a checkpointed graph run in a real subprocess is killed —
during start-up, while it restores, while it runs — and started again, over and over.

After every kill the thread's newest checkpoint must restore to exactly the state an
uninterrupted run had at that step (every step of the graph writes several deltas
through every reducer, so a checkpoint that lost one shows), the restarted run must
continue from that checkpoint (never from an older one, so no committed step runs
twice; the child reports each checkpoint it stored, so "newest" is checked against what
it had committed), and every so often every checkpoint the thread keeps must restore too. When a
run completes, its final state must be the uninterrupted run's, and the next kills go
to a new thread; the last thread is let finish and checked whole.

Both run on SQLite and on PostgreSQL (the real server). Each run holds its thread's lease
and the next child is a standby: it takes over once the killed one's lease expires (a
short TTL here), so this also checks that a lease left by a dead process never blocks a
thread for good. ``test_a_few_kills`` runs in the normal suite; ``test_hundreds_of_kills``
is marked ``slow`` (``nox -s slow``). Set ``FSMFLOW_KILL_SEED`` to replay a sequence of
kill points.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import trio

from fsmflow.graph import CheckpointNotFound, load_run, state_history

from ._graphs import Counter, kill_graph, states_by_step
from ._processes import KINDS, open_target, spawn
from ._targets import store_target

LIMIT = 40
#: Kills land anywhere in this window after the child starts: its imports and start-up
#: take a good part of it, then it restores and runs.
MAX_DELAY = 1.2


def _child(target: tuple[str, str], thread: str) -> subprocess.Popen[str]:
    return spawn("tests.graph._kill_child", [*target, thread, str(LIMIT)])


async def _restored(
    target: tuple[str, str], thread: str, reference: list[Counter], full: bool
) -> int:
    """Check the thread's newest checkpoint (and with ``full`` every checkpoint it keeps)
    against the uninterrupted run; return the newest checkpoint's step (-1: none yet)."""
    graph = kill_graph(LIMIT)
    async with await open_target(*target) as store:
        try:
            restored = await load_run(store, graph, thread)
        except CheckpointNotFound:
            return -1
        assert restored.state == reference[restored.step], f"checkpoint {restored.checkpoint}"
        if full:
            for snapshot in await state_history(graph, thread, store=store):
                assert snapshot.state == reference[snapshot.step], snapshot.checkpoint
        return restored.step


def run_kills(target: tuple[str, str], kills: int, check_every: int) -> tuple[int, int]:
    """Kill ``kills`` children; returns how many kills landed and how many runs completed."""
    seed = int(os.environ.get("FSMFLOW_KILL_SEED", time.time_ns() % 2**32))
    rng = random.Random(seed)
    reference = trio.run(states_by_step, kill_graph(LIMIT), Counter())
    thread_number = 0
    thread = "t0"
    last_step = -1
    landed = completed = 0
    for index in range(kills):
        process = _child(target, thread)
        time.sleep(rng.uniform(0, MAX_DELAY))
        process.send_signal(signal.SIGKILL)
        out, err = process.communicate(timeout=60)
        starts = [int(line.split()[1]) for line in out.splitlines() if line.startswith("start ")]
        if starts:
            assert starts[0] == max(last_step, 0), (
                f"seed {seed}: the run restarted at step {starts[0]}, its newest checkpoint "
                f"was at step {last_step}"
            )
        if process.returncode == 0:
            finals = [line for line in out.splitlines() if line.startswith("final ")]
            assert finals == [f"final {len(reference) - 1}"], f"seed {seed}: {out}"
        else:
            assert process.returncode == -signal.SIGKILL, f"seed {seed}: crashed:\n{err}"
            landed += 1
        full = index % check_every == check_every - 1 or process.returncode == 0
        step = trio.run(_restored, target, thread, reference, full)
        saved = [int(line.split()[1]) for line in out.splitlines() if line.startswith("saved ")]
        assert step >= max(saved, default=last_step), (
            f"seed {seed}: the child reported a checkpoint at step {max(saved)}, the newest "
            f"restores to step {step}"
        )
        last_step = step
        if process.returncode == 0:
            assert step == len(reference) - 1
            completed += 1
            thread_number += 1
            thread, last_step = f"t{thread_number}", -1
    # Let the last thread finish: its final state and every checkpoint it keeps.
    process = _child(target, thread)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, f"seed {seed}: {err}"
    assert f"final {len(reference) - 1}" in out.splitlines()
    assert trio.run(_restored, target, thread, reference, True) == len(reference) - 1
    return landed, completed


@pytest.mark.parametrize("kind", KINDS)
def test_a_few_kills(kind: str, tmp_path: Path) -> None:
    with store_target(kind, tmp_path) as target:
        landed, _ = run_kills(target, kills=6, check_every=3)
    assert landed >= 3


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "kills"), [("sqlite", 150), ("postgres", 100)])
def test_hundreds_of_kills(kind: str, kills: int, tmp_path: Path) -> None:
    with store_target(kind, tmp_path) as target:
        landed, completed = run_kills(target, kills=kills, check_every=25)
    # Some children finish their thread before the kill comes (then a new thread starts).
    assert landed >= kills * 3 // 5 and completed >= 1
