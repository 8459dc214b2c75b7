"""Queue limits across every worker, enforced through the store.

* Global concurrency: ``N`` slot leases per queue, offered once; a worker claims a slot
  before it claims a run of the queue and holds it (renewed with the run's lease) until
  the run stops. A dead worker's slots expire with its leases.
* Per-key concurrency: the same with ``per_key`` slots per concurrency key, claimed after
  the run (whose record names the key); none free hands the run back for a moment.
* Rate: a fixed-window counter in the store, bumped by compare-and-set on each first
  start; a full window hands the run back until the next window opens.
"""

from __future__ import annotations

import json

from ..store import Lease, OfferLease, Put, Store, VersionConflict
from ._policy import Queue
from ._records import RATES, SLOT_LEASES

#: Compare-and-set rounds a rate check tries before it treats the window as full.
_CAS_ROUNDS = 8


def queue_slot_prefix(queue: Queue) -> str:
    return f"{SLOT_LEASES}{queue.name}/all/"


def key_slot_prefix(queue: Queue, key: str) -> str:
    return f"{SLOT_LEASES}{queue.name}/key/{key}/"


async def offer_slots(store: Store, prefix: str, count: int) -> None:
    """Make sure ``count`` slots exist under ``prefix`` (offering an existing slot again
    changes nothing)."""
    await store.write_batch([OfferLease(f"{prefix}{i}") for i in range(count)])


async def claim_queue_slots(
    store: Store, queue: Queue, owner: str, ttl: float, limit: int
) -> list[Lease]:
    assert queue.concurrency is not None
    return await store.claim_leases(queue_slot_prefix(queue), owner, ttl, limit=limit)


async def claim_key_slot(
    store: Store, queue: Queue, key: str, owner: str, ttl: float
) -> Lease | None:
    """A slot for one more run with concurrency key ``key``, or ``None`` when the key is
    at its limit."""
    assert queue.per_key is not None
    prefix = key_slot_prefix(queue, key)
    await offer_slots(store, prefix, queue.per_key)
    slots = await store.claim_leases(prefix, owner, ttl, limit=1)
    return slots[0] if slots else None


async def admit_start(store: Store, queue: Queue) -> float:
    """Count one start against the queue's rate limit. Returns 0 when admitted, else the
    seconds until the next window opens."""
    assert queue.rate is not None
    starts, period = queue.rate
    for _ in range(_CAS_ROUNDS):
        now = await store.clock()
        window = int(now // period)
        stored = await store.get(RATES, queue.name)
        count = 0
        version = 0
        if stored is not None:
            version = stored.version
            try:
                saved = json.loads(stored.value)
                if saved.get("w") == window:
                    count = int(saved.get("n", 0))
            except (ValueError, AttributeError, TypeError):
                count = 0  # a corrupt counter restarts the window rather than blocking it
        if count >= starts:
            return (window + 1) * period - now
        value = json.dumps({"w": window, "n": count + 1}).encode()
        try:
            await store.write_batch([Put(RATES, queue.name, value, expected_version=version)])
        except VersionConflict:
            continue
        return 0.0
    return period / starts
