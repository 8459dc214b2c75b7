"""One process per thread, with real processes on SQLite and PostgreSQL.

Each child (``_kill_child.py``) runs the same checkpointed thread of ``kill_graph``,
whose ``tick`` node appends ``PID N`` to an effects file every time it runs. After every
scenario the thread must hold exactly what an uninterrupted run produces — every kept
checkpoint restores to the uninterrupted run's state at its step, the final state is its
final state — and:

* two processes on one thread never run a step twice and never interleave their
  checkpoints (each checkpoint carries the fencing token it was written under: one
  contiguous block per owner, tokens growing);
* a process that finds the thread held is refused, naming the holder (the holder's
  process id is in its owner id); a standby waits and takes over when the holder ends;
* SIGKILL the active one: the standby takes over once its lease expires and finishes the
  run, re-running at most the tick that was in flight;
* SIGSTOP the active one past its TTL, let the standby take over, SIGCONT it: its writes
  are refused, it stops (``GraphLeaseLost``), and nothing it did after the takeover is
  stored.

The ``test_*_rounds`` variants repeat the kill and stop scenarios at random moments and
are marked ``slow``. Set ``FSMFLOW_KILL_SEED`` to replay.
"""

from __future__ import annotations

import os
import queue
import random
import signal
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import trio

from fsmflow.graph import CheckpointRecord, load_run, state_history

from ._graphs import Counter, kill_graph, states_by_step, stored_records
from ._processes import KINDS, open_target, spawn
from ._targets import store_target

LIMIT = 12
#: A short lease, so that takeovers happen within a second.
TTL = "1.0"
#: Guards against a hung child; never a timing assertion.
PATIENCE = 60.0


class Child:
    """A child process whose output lines are collected as they come."""

    def __init__(self, target: tuple[str, str], thread: str, effects: Path, *options: str):
        self.process = spawn(
            "tests.graph._kill_child",
            [*target, thread, str(LIMIT), "--ttl", TTL, "--effects", str(effects), *options],
        )
        self.lines: list[str] = []
        self._new: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._new.put(line.strip())
        self._new.put(None)

    def wait_for(self, wanted: Callable[[str], bool]) -> str:
        """The first line (seen or to come) that ``wanted`` accepts."""
        for line in self.lines:
            if wanted(line):
                return line
        deadline = time.monotonic() + PATIENCE
        while True:
            new = self._new.get(timeout=max(deadline - time.monotonic(), 0.01))
            if new is None:
                raise AssertionError(f"child {self.pid} ended first: {self.lines} {self.err()}")
            self.lines.append(new)
            if wanted(new):
                return new

    def finish(self) -> int:
        code = self.process.wait(timeout=PATIENCE)
        self._reader.join(timeout=PATIENCE)
        while True:
            line = self._new.get_nowait() if not self._new.empty() else None
            if line is None:
                break
            self.lines.append(line)
        return code

    def err(self) -> str:
        stderr = self.process.stderr
        return "" if stderr is None or self.process.poll() is None else stderr.read()

    def saved(self) -> list[int]:
        """The steps of the checkpoints it reported stored."""
        return [int(line.split()[1]) for line in self.lines if line.startswith("saved ")]

    def numbers(self) -> set[int]:
        """The numbers of the checkpoints it reported stored."""
        return {int(line.split()[2]) for line in self.lines if line.startswith("saved ")}

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGCONT)
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@contextmanager
def children() -> Iterator[list[Child]]:
    started: list[Child] = []
    try:
        yield started
    finally:
        for child in started:
            child.stop()


def _starts_with(prefix: str) -> Callable[[str], bool]:
    return lambda line: line.startswith(prefix)


def _effects(path: Path) -> list[tuple[int, int]]:
    """``(pid, n)`` per tick that ran, in order."""
    if not path.exists():
        return []
    return [(int(p), int(n)) for p, n in (line.split() for line in path.read_text().splitlines())]


async def _history(target: tuple[str, str], thread: str) -> list[CheckpointRecord]:
    """Check every kept checkpoint and the final state against an uninterrupted run;
    return the records, oldest first."""
    reference = await states_by_step(kill_graph(LIMIT), Counter())
    graph = kill_graph(LIMIT)
    async with await open_target(*target) as store:
        restored = await load_run(store, graph, thread)
        assert restored.status == "completed" and restored.state == reference[-1]
        for snapshot in await state_history(graph, thread, store=store):
            assert snapshot.state == reference[snapshot.step], snapshot.checkpoint
        return await stored_records(store, thread)


def _blocks(records: list[CheckpointRecord]) -> list[int]:
    """The tokens of the history in checkpoint order, one per contiguous block; they must
    grow (a block per owner, never interleaved)."""
    tokens = [r.token for r in sorted(records, key=lambda r: r.checkpoint)]
    blocks = [t for i, t in enumerate(tokens) if i == 0 or t != tokens[i - 1]]
    assert blocks == sorted(set(blocks)), f"interleaved checkpoints: tokens {tokens}"
    return blocks


def _taken_over(records: list[CheckpointRecord], before: Child, after: Child) -> None:
    """The history is ``before``'s up to where ``after`` took over, and from there exactly
    what ``after`` stored: every checkpoint ``after`` reported is stored as it wrote it
    (its token), nothing else follows it, nothing of ``before`` was overwritten."""
    blocks = _blocks(records)
    assert len(blocks) == 2 and blocks[1] == blocks[0] + 1, blocks
    by_number = {r.checkpoint: r for r in records}
    theirs = after.numbers()
    assert theirs and all(by_number[n].token == blocks[1] for n in theirs), (
        f"checkpoints the standby stored were overwritten: {theirs}, "
        f"{[(r.checkpoint, r.token) for r in records]}"
    )
    assert {n for n in by_number if n >= min(theirs)} == theirs
    assert all(by_number[n].token == blocks[0] for n in before.numbers())


def _check_once(effects: list[tuple[int, int]], twice: int) -> None:
    """Every tick ran, and at most ``twice`` of them twice (the one in flight at a kill)."""
    counts = Tally(n for _, n in effects)
    assert set(counts) == set(range(LIMIT)), counts
    repeated = [n for n, c in counts.items() if c > 1]
    assert len(repeated) <= twice and all(counts[n] == 2 for n in repeated), counts


# -- the scenarios ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_two_processes_on_one_thread_never_run_a_step_twice(kind: str, tmp_path: Path) -> None:
    effects, gate = tmp_path / "effects", tmp_path / "gate"
    with store_target(kind, tmp_path) as target, children() as started:
        holder = Child(target, "t", effects, "--gate", str(gate), "--gate-at", "3")
        started.append(holder)
        holder.wait_for(_starts_with("saved 4"))  # it owns the thread, and waits at tick 3
        refused = Child(target, "t", effects, "--no-standby")
        standby = Child(target, "t", effects)
        started += [refused, standby]
        line = refused.wait_for(_starts_with("held "))
        assert f":{holder.pid}:" in line, line  # the holder's owner id names its process
        assert refused.finish() == 4
        gate.touch()
        assert holder.finish() == 0, holder.err()
        assert standby.finish() == 0, standby.err()
        final = f"final {len(trio.run(states_by_step, kill_graph(LIMIT), Counter())) - 1}"
        assert final in holder.lines and final in standby.lines
        # The standby took over after the holder ended, found it completed: ran nothing.
        assert {pid for pid, _ in _effects(effects)} == {holder.pid}
        _check_once(_effects(effects), twice=0)
        records = trio.run(_history, target, "t")
    assert len(_blocks(records)) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_two_processes_racing_to_start_a_thread(kind: str, tmp_path: Path) -> None:
    effects = tmp_path / "effects"
    with store_target(kind, tmp_path) as target, children() as started:
        started += [Child(target, "t", effects) for _ in range(2)]
        for child in started:
            assert child.finish() == 0, child.err()
        _check_once(_effects(effects), twice=0)
        assert len({pid for pid, _ in _effects(effects)}) == 1
        assert len(_blocks(trio.run(_history, target, "t"))) == 1


def kill_round(kind: str, tmp_path: Path, rng: random.Random) -> None:
    """SIGKILL the active child at a random tick (during its sleep, or a little after);
    the standby finishes the run."""
    effects = tmp_path / "effects"
    with store_target(kind, tmp_path) as target, children() as started:
        active = Child(target, "t", effects, "--announce", "--delay", "0.08")
        started.append(active)
        active.wait_for(_starts_with("start"))
        standby = Child(target, "t", effects, "--announce")
        started.append(standby)
        at = rng.randrange(1, LIMIT - 3)
        active.wait_for(_starts_with(f"tick {at}"))
        time.sleep(rng.uniform(0, 0.08))
        active.process.send_signal(signal.SIGKILL)
        assert active.finish() == -signal.SIGKILL
        assert standby.finish() == 0, standby.err()
        start = int(standby.wait_for(_starts_with("start")).split()[1])
        assert start >= max(active.saved(), default=0), "the standby continued an older one"
        ran = _effects(effects)
        _check_once(ran, twice=1)
        # Only the tick in flight at the kill may have run twice, and it ran first in A.
        counts = Tally(n for _, n in ran)
        for n in (n for n, c in counts.items() if c == 2):
            assert [pid for pid, m in ran if m == n] == [active.pid, standby.pid]
        _taken_over(trio.run(_history, target, "t"), active, standby)


def stop_round(kind: str, tmp_path: Path, rng: random.Random, *, blocking: bool) -> None:
    """SIGSTOP the active child inside a tick, past its TTL; the standby takes over and
    writes; SIGCONT the first: its writes are refused and it stops.

    With ``blocking`` the tick blocks the event loop and the run has no stream: once
    continued, the stopped child commits the tick before anything else of it runs (its
    renewal included), so its write reaches the store and must be refused there.
    Otherwise its renewal may notice the loss first and stop it before it writes."""
    effects = tmp_path / "effects"
    with store_target(kind, tmp_path) as target, children() as started:
        mode = ("--blocking", "--plain") if blocking else ()
        active = Child(target, "t", effects, "--announce", "--delay", "0.2", *mode)
        started.append(active)
        active.wait_for(_starts_with("tick 0"))
        standby = Child(target, "t", effects, "--announce")
        started.append(standby)
        at = rng.randrange(1, LIMIT - 3)
        active.wait_for(_starts_with(f"tick {at}"))
        os.kill(active.pid, signal.SIGSTOP)  # asleep in tick `at` (0.2 s), not writing
        try:
            standby.wait_for(_starts_with("start"))
            standby.wait_for(_starts_with("saved"))  # the new owner is writing
        finally:
            os.kill(active.pid, signal.SIGCONT)
        lost = active.wait_for(_starts_with("lost"))
        assert active.finish() == 3, active.err()
        assert standby.finish() == 0, standby.err()
        start = int(standby.wait_for(_starts_with("start")).split()[1])
        assert start >= max(active.saved(), default=0)
        if not blocking:  # the stream says where it stopped: where the standby went on
            assert start <= int(lost.split()[1]) <= start + 1
        ran = _effects(effects)
        _check_once(ran, twice=1)
        # After the takeover the first one ran at most the tick it was stopped in.
        mine = [n for pid, n in ran if pid == active.pid]
        assert mine[-1] <= at and (not blocking or mine[-1] == at)
        _taken_over(trio.run(_history, target, "t"), active, standby)


def _seed() -> random.Random:
    return random.Random(int(os.environ.get("FSMFLOW_KILL_SEED", time.time_ns() % 2**32)))


@pytest.mark.parametrize("kind", KINDS)
def test_sigkill_the_active_one_and_the_standby_finishes(kind: str, tmp_path: Path) -> None:
    kill_round(kind, tmp_path, _seed())


@pytest.mark.parametrize("kind", KINDS)
def test_sigstop_the_active_one_past_its_ttl_and_it_is_fenced_off(
    kind: str, tmp_path: Path
) -> None:
    stop_round(kind, tmp_path, _seed(), blocking=True)


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_kill_and_stop_rounds(kind: str, tmp_path: Path) -> None:
    rng = _seed()
    for index in range(4):
        for name in ("kill", "stop"):
            where = tmp_path / f"{name}{index}"
            where.mkdir()
            if name == "kill":
                kill_round(kind, where, rng)
            else:
                stop_round(kind, where, rng, blocking=index % 2 == 0)
