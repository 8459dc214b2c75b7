"""The process ``test_kill.py`` kills: a durable ``SEQUENTIAL`` reactor on a SQLite file,
fed the ids 1..TOTAL in order, whose graph appends each id it fires to a ledger file.

Usage: ``python _kill_child.py DB LEDGER TOTAL``. On start it appends ``start`` to the
ledger, restores the reactor, prints ``ready``, and feeds the ids after the last one the
reactor had accepted (the highest id fired or still queued). It exits 0 once it has
fired TOTAL (the last id, so everything before it too) and committed it.
"""

from __future__ import annotations

import os
import sys

import trio

from fsmflow.reactor import (
    Completed,
    InputCache,
    InputStrategy,
    PassThrough,
    PushAccumulator,
    Reactor,
    Source,
    start_reactor,
)
from fsmflow.store import Durability, SqliteStore

IDS = Source("ids", int)
QUEUE = "reactor:kill:queue"


def fired_ids(ledger: str) -> list[int]:
    with open(ledger, encoding="utf-8") as lines:
        return [int(line) for line in lines if line.strip().isdigit()]


async def main(db: str, ledger: str, total: int) -> None:
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, b"start\n")
    last_fired = max([0, *fired_ids(ledger)])
    done = trio.Event()

    async def record(cache: InputCache) -> Completed[None]:
        fired = cache[IDS]
        os.write(fd, f"{fired}\n".encode())  # one write: a kill never tears a line
        if fired == total:
            done.set()
        return Completed(None)

    async with await SqliteStore.open(db, durability=Durability.NORMAL) as store:
        queued = [int(entry.value.partition(b"\n")[2]) for entry in await store.read(QUEUE)]
        accepted = max([last_fired, *queued])
        if accepted == total and not queued:
            done.set()
        feeder = PushAccumulator(IDS, PassThrough[int]())
        reactor = Reactor(
            "kill",
            record,
            accumulators=[feeder],
            strategy=InputStrategy.SEQUENTIAL,
            store=store,
        )
        async with trio.open_nursery() as nursery:
            handle = await start_reactor(nursery, reactor)
            print("ready", flush=True)
            for next_id in range(accepted + 1, total + 1):
                await feeder.push(next_id)
            await done.wait()
            await handle.shutdown()  # taken after the last firing's commit
    os.close(fd)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]))
