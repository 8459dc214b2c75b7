"""The processes ``test_kill.py`` kills: lives of a durable ``SEQUENTIAL`` reactor on a
SQLite file, forked from a zygote that has already imported everything.

``python _kill_child.py DB LEDGER`` starts the zygote. It reads commands on stdin:

* ``run UNTIL``: fork a life (see :func:`life`) and answer ``pid N``;
* ``wait N``: reap life ``N`` and answer ``exit CODE`` (``-9`` for a SIGKILL).

Forking skips the interpreter's start-up, so the test can afford hundreds of lives, and
its kills land in the life's own start-up (opening the store, restoring the reactor) as
often as in its work. The zygote never starts an event loop or a thread, so forking it
is safe.

The zygote appends ``start`` to the ledger before it forks a life; each life appends
lines with one ``write`` each (a kill never tears one):

* ``restored C P``: the reactor restored, its cache holding ``C`` (0: none) and ``P``
  boundaries pending;
* ``fired X``: the graph ran for ``X`` (before the firing commits);
* ``acked X``: the reactor accepted ``X`` (its :class:`Receipt` resolved).

A life feeds the ids after ``C + P`` (what the restored reactor holds), one receipt each,
so a boundary the reactor once accepted is never sent again: only the reactor's store
can make it fire after a kill. It exits 0 once ``UNTIL`` has fired and committed.
"""

from __future__ import annotations

import os
import sys
import traceback

import trio

from fsmflow.reactor import (
    Completed,
    InputCache,
    InputStrategy,
    PassThrough,
    PushAccumulator,
    Reactor,
    Receipt,
    Source,
    start_reactor,
)
from fsmflow.store import Durability, SqliteStore

IDS = Source("ids", int)
NAME = "kill"
#: Larger than a page of the queue (256), so restores page the queue in.
MAX_PENDING = 600


async def life(db: str, ledger: str, until: int) -> None:
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def note(line: str) -> None:
        os.write(fd, f"{line}\n".encode())

    done = trio.Event()

    async def record(cache: InputCache) -> Completed[None]:
        fired = cache[IDS]
        note(f"fired {fired}")
        if fired == until:
            done.set()
        return Completed(None)

    async def acknowledge(receipts: trio.MemoryReceiveChannel[tuple[int, Receipt]]) -> None:
        async for value, receipt in receipts:
            await receipt.wait()
            note(f"acked {value}")

    async with await SqliteStore.open(db, durability=Durability.NORMAL) as store:
        feeder = PushAccumulator(IDS, PassThrough[int]())
        reactor = Reactor(
            NAME,
            record,
            accumulators=[feeder],
            strategy=InputStrategy.SEQUENTIAL,
            store=store,
            max_pending=MAX_PENDING,
        )
        async with trio.open_nursery() as nursery:
            handle = await start_reactor(nursery, reactor)
            state = handle.get_state()
            committed = state.cache.get(IDS) or 0
            accepted = committed + state.pending
            note(f"restored {committed} {state.pending}")
            if committed == until:
                done.set()
            send, receive = trio.open_memory_channel[tuple[int, Receipt]](MAX_PENDING)
            nursery.start_soon(acknowledge, receive)
            async with send:
                for value in range(accepted + 1, until + 1):
                    receipt = Receipt()
                    await handle.send_boundary(IDS, value, receipt=receipt)
                    await send.send((value, receipt))
            await done.wait()
            await handle.shutdown()  # taken after the last firing's commit
    os.close(fd)


def zygote(db: str, ledger: str) -> None:
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "run":
            with open(ledger, "a", encoding="utf-8") as lines:
                lines.write("start\n")  # before the fork: every life has its line
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    trio.run(life, db, ledger, int(argument))
                except BaseException:
                    traceback.print_exc()
                    code = 1
                finally:
                    sys.stderr.flush()
                    os._exit(code)
            print(f"pid {pid}", flush=True)
        elif command == "wait":
            _, status = os.waitpid(int(argument), 0)
            print(f"exit {os.waitstatus_to_exitcode(status)}", flush=True)


if __name__ == "__main__":
    zygote(sys.argv[1], sys.argv[2])
