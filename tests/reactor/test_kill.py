"""Kill a durable ``SEQUENTIAL`` reactor with SIGKILL at random moments, hundreds of
times, and hold every restored state to what an uninterrupted run goes through.

The reactor runs in forked lives of ``_kill_child.py`` on one SQLite file, fed the ids
1, 2, 3... with a receipt each; its graph notes each id it fires in a ledger, and each
receipt that resolves is noted as acknowledged. A life resumes feeding after what its
restored reactor holds, so an acknowledged boundary is never sent again: if the reactor
kept its queue only in memory, acknowledged ids would never fire. Kills land anywhere:
while the store opens, while the reactor restores (a queue deeper than a page), while
it accepts and while it fires.

An uninterrupted run fires 1, 2, 3... once each, and its store only ever holds, after
``k`` committed firings and ``a`` accepted boundaries, the cache ``k`` and the queue
``k+1 .. a``. After every kill the test reads the store and checks that it is such a
state, that it holds every acknowledged id, that the next life restored exactly it,
and that the only id fired twice is the one whose firing had run but not committed.

``FSMFLOW_KILL_SEED`` replays a run's kill timings; ``FSMFLOW_KILLS`` sets their number.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import attrs
import pytest
import trio

from fsmflow.store import Durability, SqliteStore

CHILD = Path(__file__).with_name("_kill_child.py")
KILLS = int(os.environ.get("FSMFLOW_KILLS", "300"))
#: Lives are told to feed up to here: no life finishes before it is killed.
ENDLESS = 10**9
CACHE, QUEUE = "reactor:kill:cache", "reactor:kill:queue"


@attrs.frozen
class Stored:
    """What the store file holds: the committed cache and the queued ids."""

    cache: int
    queue: tuple[int, ...]


@attrs.define
class Life:
    """What one life wrote to the ledger."""

    restored: tuple[int, int] | None = None
    fired: list[int] = attrs.Factory(list)
    acked: list[int] = attrs.Factory(list)


def read_ledger(ledger: Path) -> list[Life]:
    lives: list[Life] = []
    for line in ledger.read_text(encoding="utf-8").splitlines():
        word, *numbers = line.split()
        if word == "start":
            lives.append(Life())
        elif word == "restored":
            lives[-1].restored = (int(numbers[0]), int(numbers[1]))
        elif word == "fired":
            lives[-1].fired.append(int(numbers[0]))
        else:
            assert word == "acked", line
            lives[-1].acked.append(int(numbers[0]))
    return lives


def read_store(db: Path) -> Stored:
    async def read() -> Stored:
        async with await SqliteStore.open(db, durability=Durability.OFF) as store:
            cached = await store.get(CACHE, "ids")
            entries = await store.read(QUEUE)
        queue = tuple(int(entry.value.partition(b"\n")[2]) for entry in entries)
        return Stored(0 if cached is None else int(cached.value), queue)

    return trio.run(read)


class Zygote:
    """Talks to the zygote process that forks the lives."""

    def __init__(self, db: Path, ledger: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(CHILD), str(db), str(ledger)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.errors = ""

    def _ask(self, command: str) -> str:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline().split()
        assert answer, f"the zygote died: {self.stderr()}"
        return answer[1]

    def run(self, until: int) -> int:
        return int(self._ask(f"run {until}"))

    def wait(self, pid: int) -> int:
        return int(self._ask(f"wait {pid}"))

    def stderr(self) -> str:
        """Stop the zygote and return what it and its lives wrote to stderr."""
        process = self.process
        assert process.stdin and process.stdout and process.stderr
        if not process.stdin.closed:
            process.stdin.close()
            process.wait(timeout=30)
            process.stdout.close()
            self.errors = process.stderr.read()
            process.stderr.close()
        return self.errors


class LedgerTail:
    """Follows the ledger as the lives append to it."""

    def __init__(self, ledger: Path) -> None:
        self.ledger = ledger
        self.offset = 0
        self.restored = 0

    def read(self) -> None:
        """Take in the lines appended since the last read."""
        if not self.ledger.exists():
            return
        with self.ledger.open("rb") as lines:
            lines.seek(self.offset)
            new = lines.read()
        complete = new[: new.rfind(b"\n") + 1]
        self.offset += len(complete)
        self.restored += complete.count(b"restored ")

    def wait_restored(self, lives: int, timeout: float) -> None:
        """Wait until ``lives`` lives have written their ``restored`` line."""
        deadline = time.monotonic() + timeout
        self.read()
        while self.restored < lives:
            assert time.monotonic() < deadline, "a life never restored its reactor"
            time.sleep(0.002)
            self.read()


def check_life(previous: Stored, life: Life, after: Stored, seed: int, index: int) -> None:
    """``life`` started from ``previous`` and was killed (or ended) leaving ``after``."""
    where = f"seed {seed}, life {index}"
    if life.restored is not None:
        assert life.restored == (previous.cache, len(previous.queue)), (
            f"{where}: restored {life.restored}, the store held {previous}"
        )
    # The uninterrupted run only ever stores cache k and queue k+1 .. a.
    assert after.queue == tuple(range(after.cache + 1, after.cache + 1 + len(after.queue))), (
        f"{where}: the store holds {after}, a state no uninterrupted run passes through"
    )
    # It fires the queue's head, then the next: 1, 2, 3..., from what it restored.
    expected = list(range(previous.cache + 1, previous.cache + 1 + len(life.fired)))
    assert life.fired == expected, f"{where}: fired {life.fired[:5]}... after {previous}"
    # A firing commits after its graph ran: the last one may not have committed yet.
    last = life.fired[-1] if life.fired else previous.cache
    assert after.cache in (last, last - 1) and after.cache >= previous.cache, (
        f"{where}: the store's cache is {after.cache}, the last firing was {last}"
    )
    accepted = after.cache + len(after.queue)
    acked = max(life.acked, default=0)
    assert acked <= accepted, (
        f"{where}: {acked} was acknowledged as accepted but the store holds only up to "
        f"{accepted}: an accepted boundary was lost"
    )


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing_accepted_and_repeats_only_uncommitted(
    tmp_path: Path,
) -> None:
    seed = int(os.environ.get("FSMFLOW_KILL_SEED", time.time_ns() % 2**32))
    rng = random.Random(seed)
    db, ledger = tmp_path / "reactor.sqlite3", tmp_path / "ledger.txt"
    zygote = Zygote(db, ledger)
    tail = LedgerTail(ledger)
    stored = [Stored(0, ())]
    try:
        for _ in range(KILLS):
            tail.read()  # every earlier life is dead: its lines are complete
            pid = zygote.run(ENDLESS)
            if rng.random() < 0.25:
                # While the life starts: opening the store, restoring the reactor.
                time.sleep(rng.uniform(0, 0.05))
            else:
                # While it works: accepting, firing, committing.
                tail.wait_restored(tail.restored + 1, timeout=60)
                time.sleep(rng.uniform(0, 0.15))
            os.kill(pid, signal.SIGKILL)
            code = zygote.wait(pid)
            assert code == -signal.SIGKILL, f"seed {seed}: a life failed:\n{zygote.stderr()}"
            stored.append(read_store(db))
        final = stored[-1].cache + len(stored[-1].queue) + 100
        pid = zygote.run(final)
        assert zygote.wait(pid) == 0, f"seed {seed}: the last life failed:\n{zygote.stderr()}"
        stored.append(read_store(db))
    finally:
        errors = zygote.stderr()
    lives = read_ledger(ledger)
    assert len(lives) == KILLS + 1, errors
    for index, life in enumerate(lives):
        check_life(stored[index], life, stored[index + 1], seed, index)

    assert stored[-1] == Stored(final, ()), f"seed {seed}: the last life left {stored[-1]}"
    fired = [value for life in lives for value in life.fired]
    repeated = len(fired) - len(set(fired))
    assert set(fired) == set(range(1, final + 1)), f"seed {seed}: not every id fired"
    restored = [life for life in lives if life.restored is not None]
    mid_queue = sum(1 for s in stored[1:-1] if len(s.queue) > 256)
    busy = sum(1 for life in lives[:-1] if life.fired)
    print(
        f"seed {seed}: {KILLS} kills, {len(lives) - len(restored)} before the reactor "
        f"had restored, {mid_queue} with more than a page queued, {busy} while firing; "
        f"{final} ids fired, {repeated} twice"
    )
    assert len(lives) - len(restored) >= KILLS // 20, f"seed {seed}: too few early kills"
    assert busy >= KILLS // 2, f"seed {seed}: too few kills landed mid-work"
    assert mid_queue >= KILLS // 10, f"seed {seed}: too few kills with a deep queue"
