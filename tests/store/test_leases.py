"""Leases and fencing, run against every backend: who may write for a resource, until when."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import trio

from fsmflow.store import (
    Append,
    DropLease,
    Fence,
    Lease,
    LeaseHeld,
    LeaseLost,
    MemoryStore,
    OfferLease,
    Put,
    ReleaseLease,
    SqliteStore,
    Store,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _expire(store: Store, lease: Lease) -> None:
    """Sleep until ``lease`` has expired on the store's clock."""
    await _until(store, lease.expires_at)


async def _until(store: Store, at: float) -> None:
    """Sleep until the store's clock has passed ``at``."""
    await trio.sleep(max(0.0, at - await store.clock()) + 0.01)
    assert await store.clock() > at


async def test_acquire_names_the_holder_while_held(store: Store) -> None:
    lease = await store.acquire_lease("reactor:prices", "worker-a", 30)
    assert (lease.resource, lease.owner, lease.token) == ("reactor:prices", "worker-a", 1)
    assert lease.expires_at > await store.clock()
    with pytest.raises(LeaseHeld) as caught:
        await store.acquire_lease("reactor:prices", "worker-b", 30)
    assert caught.value.holder == "worker-a"
    assert 0 < caught.value.expires_in <= 30
    assert "worker-a" in str(caught.value) and "expires in" in str(caught.value)
    # The same owner id does not get a second copy: an owner names one holder.
    with pytest.raises(LeaseHeld):
        await store.acquire_lease("reactor:prices", "worker-a", 30)
    assert await store.get_lease("reactor:prices") == lease


async def test_takeover_only_after_expiry_and_tokens_grow(store: Store) -> None:
    first = await store.acquire_lease("run:1", "a", 0.05)
    await _expire(store, first)
    second = await store.acquire_lease("run:1", "b", 30)
    assert second.token > first.token
    # The old owner's renewal, write and release are all refused.
    with pytest.raises(LeaseLost) as caught:
        await store.renew_lease(first, 30)
    assert caught.value.current_owner == "b" and caught.value.current_token == second.token
    with pytest.raises(LeaseLost):
        await store.write_batch([Put("ns", "k", b"stale")], fence=first.fence)
    assert await store.release_lease(first) is False
    assert await store.get("ns", "k") is None
    # A release keeps the token, so the next owner's is larger still.
    assert await store.release_lease(second) is True
    third = await store.acquire_lease("run:1", "c", 30)
    assert third.token > second.token


async def test_fenced_batch_fails_whole_and_applies_nothing(store: Store) -> None:
    first = await store.acquire_lease("run:2", "a", 0.05)
    assert await store.write_batch([Put("ns", "k", b"v1")], fence=first.fence) == [1]
    await _expire(store, first)
    second = await store.acquire_lease("run:2", "b", 30)
    with pytest.raises(LeaseLost):
        await store.write_batch(
            [Put("ns", "k", b"stale"), Append("q", b"x"), Put("ns", "other", b"y")],
            fence=first.fence,
        )
    stored = await store.get("ns", "k")
    assert stored is not None and stored.value == b"v1"
    assert await store.get("ns", "other") is None
    assert await store.length("q") == 0
    assert await store.write_batch([Put("ns", "k", b"v2")], fence=second.fence) == [2]


async def test_renewal_extends_and_survives_a_lapse_nobody_used(store: Store) -> None:
    lease = await store.acquire_lease("run:3", "a", 0.05)
    await _expire(store, lease)
    renewed = await store.renew_lease(lease, 30)
    assert renewed.token == lease.token and renewed.expires_at > lease.expires_at
    assert await store.write_batch([Put("ns", "k", b"v")], fence=lease.fence) == [1]
    with pytest.raises(LeaseHeld):
        await store.acquire_lease("run:3", "b", 30)


async def test_fence_on_unknown_or_released_resource_is_refused(store: Store) -> None:
    with pytest.raises(LeaseLost) as caught:
        await store.write_batch([Put("ns", "k", b"v")], fence=Fence("nobody", 1))
    assert caught.value.current_token is None
    lease = await store.acquire_lease("run:4", "a", 30)
    await store.release_lease(lease)
    with pytest.raises(LeaseLost, match="released"):
        await store.write_batch([Put("ns", "k", b"v")], fence=lease.fence)


async def test_offer_and_claim_hand_work_to_one_claimer(store: Store) -> None:
    assert await store.write_batch(
        [OfferLease("job:a"), OfferLease("job:b"), OfferLease("job:later", 3600)]
    ) == [True, True, True]
    # Offering again with a later time changes nothing; an earlier one moves it forward.
    assert await store.write_batch([OfferLease("job:a", 60)]) == [False]
    claimed = await store.claim_leases("job:", "w1", 30, limit=10)
    assert sorted(lease.resource for lease in claimed) == ["job:a", "job:b"]
    assert all(lease.owner == "w1" and lease.token == 1 for lease in claimed)
    assert await store.claim_leases("job:", "w2", 30, limit=10) == []
    assert await store.write_batch([OfferLease("job:later")]) == [True]
    (later,) = await store.claim_leases("job:", "w2", 30, limit=10)
    assert later.resource == "job:later"
    # A held lease is not offered again.
    assert await store.write_batch([OfferLease("job:later")]) == [False]
    # Other prefixes are never claimed.
    await store.write_batch([OfferLease("other:x")])
    assert await store.claim_leases("job:", "w3", 30, limit=10) == []


async def test_claim_takes_expired_leases_and_respects_limit(store: Store) -> None:
    for name in "abc":
        await store.write_batch([OfferLease(f"job:{name}")])
    first = await store.claim_leases("job:", "w1", 0.05, limit=2)
    assert len(first) == 2
    rest = await store.claim_leases("job:", "w2", 30, limit=5)
    assert len(rest) == 1
    await _expire(store, first[-1])
    retaken = await store.claim_leases("job:", "w3", 30, limit=5)
    assert sorted(lease.resource for lease in retaken) == sorted(old.resource for old in first)
    assert all(new.token == 2 for new in retaken)


async def test_claim_over_several_prefixes_in_priority_order(store: Store) -> None:
    await store.write_batch(
        [OfferLease("q/0/a"), OfferLease("q/0/b"), OfferLease("q/1/c"), OfferLease("q/2/d", 3600)]
    )
    # Level 1 first (its lease is the newest), then level 0, in one claim.
    claimed = await store.claim_leases(["q/2/", "q/1/", "q/0/"], "w1", 30, limit=2)
    assert [lease.resource for lease in claimed] == ["q/1/c", "q/0/a"]
    rest = await store.claim_leases(("q/2/", "q/1/", "q/0/"), "w2", 30, limit=5)
    assert [lease.resource for lease in rest] == ["q/0/b"]
    assert await store.claim_leases(["q/2/", "q/1/"], "w2", 30, limit=5) == []
    assert await store.claim_leases([], "w2", 30, limit=5) == []


async def test_next_claimable_is_a_read_within_a_horizon(store: Store) -> None:
    assert await store.next_claimable("job:", within=10) is None
    await store.write_batch([OfferLease("job:later", 0.3), OfferLease("job:never", math.inf)])
    await store.write_batch([OfferLease("other:now")])
    due = await store.next_claimable("job:", within=10)
    assert due is not None and 0.0 < due <= 0.3
    assert await store.next_claimable("job:", within=0.1) is None  # beyond the horizon
    assert await store.next_claimable(["nothing/", "other:"], within=0) == 0.0
    # Held leases count from their expiry; finished ones (math.inf) never.
    (held,) = await store.claim_leases("other:", "w1", 0.2, limit=1)
    expiry = await store.next_claimable(["other:"], within=10)
    assert expiry is not None and 0.0 < expiry <= 0.2
    await store.write_batch([ReleaseLease("other:now", held.token, math.inf)])
    assert await store.next_claimable(["other:"], within=math.inf) is None
    await _until(store, (await store.clock()) + (due or 0.0))
    assert await store.next_claimable("job:", within=0) == 0.0
    # It changed nothing: the lease is still there to claim.
    (claimed,) = await store.claim_leases("job:", "w2", 30, limit=5)
    assert claimed.resource == "job:later"
    with pytest.raises(ValueError, match="delay"):
        await store.next_claimable("job:", within=-1)


async def test_release_with_delay_is_a_durable_timer(store: Store) -> None:
    await store.write_batch([OfferLease("job:t")])
    (lease,) = await store.claim_leases("job:", "w1", 30, limit=1)
    # Sleep: state and release in one fenced batch, claimable again only when due.
    await store.write_batch(
        [Put("runs", "t", b"sleeping"), ReleaseLease("job:t", lease.token, 0.05)],
        fence=lease.fence,
    )
    assert await store.claim_leases("job:", "w2", 30, limit=1) == []
    stored = await store.get_lease("job:t")
    assert stored is not None
    await _until(store, stored.expires_at)
    (woken,) = await store.claim_leases("job:", "w2", 30, limit=1)
    assert woken.token == lease.token + 1
    # Released for good (math.inf) until offered again.
    await store.write_batch([ReleaseLease("job:t", woken.token, math.inf)])
    assert await store.claim_leases("job:", "w3", 30, limit=1) == []
    assert await store.write_batch([OfferLease("job:t")]) == [True]
    assert len(await store.claim_leases("job:", "w3", 30, limit=1)) == 1


async def test_drop_lease(store: Store) -> None:
    await store.acquire_lease("run:gone", "a", 30)
    assert await store.write_batch([DropLease("run:gone"), DropLease("run:never")]) == [
        True,
        False,
    ]
    assert await store.get_lease("run:gone") is None


@pytest.mark.parametrize("ttl", [0, -1, math.inf, math.nan])
async def test_bad_ttl_is_refused(store: Store, ttl: float) -> None:
    with pytest.raises(ValueError, match="ttl"):
        await store.acquire_lease("run:x", "a", ttl)


async def test_memory_store_uses_its_injected_clock() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    lease = await store.acquire_lease("r", "a", 10)
    assert lease.expires_at == 1010.0
    clock.now = 1009.0
    with pytest.raises(LeaseHeld):
        await store.acquire_lease("r", "b", 10)
    clock.now = 1010.0
    assert (await store.acquire_lease("r", "b", 10)).token == 2


async def test_sqlite_leases_are_shared_by_two_connections(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    async with await SqliteStore.open(path) as one, await SqliteStore.open(path) as two:
        lease = await one.acquire_lease("reactor:r", "process-1", 30)
        with pytest.raises(LeaseHeld, match="process-1"):
            await two.acquire_lease("reactor:r", "process-2", 30)
        assert await two.get_lease("reactor:r") == lease


def test_sqlite_claims_and_probes_walk_only_leases_due(tmp_path: Path) -> None:
    """A claim or a look-ahead reads the expiry index from the oldest due lease on, never
    the primary key's range over every lease under the prefix (finished runs' leases,
    which only grow, included)."""
    import sqlite3

    from fsmflow.store import _sqlite_sql

    db = sqlite3.connect(tmp_path / "plan.sqlite3")
    for statements in _sqlite_sql.MIGRATIONS:
        for statement in statements[1]:
            db.execute(statement)
    for query, args in (
        (_sqlite_sql._CLAIMABLE, (1.0, "a", "b", 5)),
        (_sqlite_sql._NEXT_CLAIMABLE, (1.0, "a", "b")),
    ):
        plan = " ".join(row[3] for row in db.execute("EXPLAIN QUERY PLAN " + query, args))
        assert "leases_by_expiry (expires_at<?)" in plan, plan
    db.close()
