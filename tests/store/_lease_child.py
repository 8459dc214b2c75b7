"""A worker process for the multi-process lease tests.

``python -m tests.store._lease_child TARGET SCHEMA OWNER MODE``: opens the store
(``TARGET`` a SQLite path or a PostgreSQL DSN), then

* ``hold``: acquires ``resource`` (ttl 1 s, renewing nothing) and writes fenced batches
  forever, printing ``wrote N`` after each commit and sleeping 50 ms; on LeaseLost it
  prints ``lost`` and exits 3.
* ``contend``: 20 times: acquire (retrying on LeaseHeld), write 3 fenced log entries
  ``owner:token:i``, release.
"""

from __future__ import annotations

import sys

import anyio

from fsmflow.store import Append, LeaseHeld, LeaseLost, Put, open_store


async def main(target: str, schema: str, owner: str, mode: str) -> int:
    options = {} if schema == "-" else {"schema": schema}
    async with await open_store(target, **options) as store:
        if mode == "hold":
            lease = await store.acquire_lease("resource", owner, 1.0)
            print("acquired", lease.token, flush=True)
            n = 0
            while True:
                n += 1
                try:
                    await store.write_batch(
                        [
                            Put("state", "owner", owner.encode()),
                            Append("log", f"{owner}:{n}".encode()),
                        ],
                        fence=lease.fence,
                    )
                except LeaseLost:
                    print("lost", flush=True)
                    return 3
                print("wrote", n, flush=True)
                await anyio.sleep(0.05)
        for _ in range(20):
            while True:
                try:
                    lease = await store.acquire_lease("resource", owner, 5.0)
                    break
                except LeaseHeld:
                    await anyio.sleep(0.002)
            for i in range(3):
                await store.write_batch(
                    [Append("log", f"{owner}:{lease.token}:{i}".encode())], fence=lease.fence
                )
            await store.release_lease(lease)
    return 0


if __name__ == "__main__":
    target, schema, owner, mode = sys.argv[1:5]
    sys.exit(anyio.run(main, target, schema, owner, mode))
