"""``hold_lease``: renew in the background, stop at once when lost, stand by and take over."""

from __future__ import annotations

import time

import anyio
import pytest

from fsmflow.store import (
    LeaseHeld,
    LeaseLost,
    MemoryStore,
    OfferLease,
    Put,
    ReleaseLease,
    hold_lease,
    keep_lease,
)
from fsmflow.testing import each_backend


@each_backend
async def test_renews_past_the_ttl_and_releases_at_the_end() -> None:
    store = MemoryStore()
    async with hold_lease(store, "reactor:r", "a", ttl=0.15) as held:
        first = held.lease
        for _ in range(4):
            await anyio.sleep(0.1)
            with pytest.raises(LeaseHeld, match="'a'"):
                await store.acquire_lease("reactor:r", "b", 1)
        assert held.lease.expires_at > first.expires_at
        assert held.lease.token == first.token
        assert await store.write_batch([Put("ns", "k", b"v")], fence=held.fence) == [1]
    stored = await store.get_lease("reactor:r")
    assert stored is not None and stored.owner == ""
    assert (await store.acquire_lease("reactor:r", "b", 1)).token == first.token + 1


@each_backend
async def test_losing_the_lease_cancels_the_block_and_raises() -> None:
    store = MemoryStore()
    reached_end = False
    with pytest.raises(LeaseLost):
        async with hold_lease(store, "run:1", "a", ttl=0.3, renew_every=0.05) as held:
            # Someone takes it over (here: releases it under our feet).
            await store.write_batch([ReleaseLease("run:1", held.lease.token)])
            await anyio.sleep(5)
            reached_end = True
    assert held.lost.is_set() and isinstance(held.error, LeaseLost)
    assert not reached_end


@each_backend
async def test_with_on_lost_the_block_is_told_and_stops_by_itself() -> None:
    store = MemoryStore()
    told: list[BaseException] = []
    stopped = anyio.Event()

    def lost(error: BaseException) -> None:
        told.append(error)
        stopped.set()

    async with hold_lease(store, "run:3", "a", ttl=0.3, renew_every=0.05, on_lost=lost) as held:
        await store.write_batch([ReleaseLease("run:3", held.lease.token)])
        with anyio.fail_after(5):
            await stopped.wait()  # not cancelled: the block carries on until it stops
        with pytest.raises(LeaseLost):
            await store.write_batch([Put("ns", "k", b"v")], fence=held.fence)
    # No error out of the block, nothing released in the new state's name.
    assert held.lost.is_set() and told == [held.error]
    assert isinstance(held.error, LeaseLost)
    stored = await store.get_lease("run:3")
    assert stored is not None and stored.owner == "" and stored.token == held.lease.token


@each_backend
async def test_with_on_lost_a_kept_lease_is_released_at_the_end() -> None:
    store = MemoryStore()
    told: list[BaseException] = []
    async with hold_lease(store, "run:4", "a", ttl=0.2, on_lost=told.append) as held:
        await anyio.sleep(0.3)  # renewed meanwhile
    assert not told and not held.lost.is_set()
    stored = await store.get_lease("run:4")
    assert stored is not None and stored.owner == ""


@each_backend
async def test_a_block_that_released_the_lease_itself_gives_it_up() -> None:
    store = MemoryStore()
    async with hold_lease(store, "run:5", "a", ttl=0.15) as held:
        await store.write_batch(
            [Put("ns", "last", b"v"), ReleaseLease("run:5", held.lease.token)], fence=held.fence
        )
        held.give_up()
        assert held.given_up
        taken = await store.acquire_lease("run:5", "b", 30)  # at once: it is free
        await anyio.sleep(0.3)  # renewals stop: the new owner's lease is left alone
    assert not held.lost.is_set() and held.error is None
    assert await store.get_lease("run:5") == taken  # not released again on exit


@each_backend
async def test_the_blocks_own_error_comes_out_unwrapped() -> None:
    store = MemoryStore()
    with pytest.raises(KeyError):
        async with hold_lease(store, "run:2", "a", ttl=1):
            raise KeyError("mine")
    assert (await store.acquire_lease("run:2", "b", 1)).owner == "b"


@each_backend
async def test_standby_takes_over_when_the_holder_releases() -> None:
    store = MemoryStore()
    order: list[str] = []
    taken_over = anyio.Event()

    async def standby() -> None:
        async with hold_lease(store, "reactor:s", "b", ttl=30, standby=True) as held:
            order.append(f"b holds token {held.lease.token}")
            taken_over.set()

    async with anyio.create_task_group() as tg:
        async with hold_lease(store, "reactor:s", "a", ttl=30) as held:
            order.append(f"a holds token {held.lease.token}")
            tg.start_soon(standby)
            await anyio.sleep(0.05)
            order.append("a leaves")
        with anyio.fail_after(2):  # woken by the release notification, not the 30 s TTL
            await taken_over.wait()
    assert order == ["a holds token 1", "a leaves", "b holds token 2"]


@each_backend
async def test_standby_takes_over_when_the_holder_dies() -> None:
    store = MemoryStore()
    await store.acquire_lease("reactor:d", "dead", 0.2)  # never renewed
    with anyio.fail_after(3):
        async with hold_lease(store, "reactor:d", "b", ttl=5, standby=True) as held:
            assert held.lease.owner == "b" and held.lease.token == 2


def test_renew_interval_must_be_below_the_ttl() -> None:
    async def main() -> None:
        async with hold_lease(MemoryStore(), "r", "a", ttl=1, renew_every=2):
            pass

    with pytest.raises(ValueError, match="renew_every"):
        anyio.run(main)


@each_backend
async def test_keep_a_claimed_lease_and_give_it_up_in_a_write_of_its_own() -> None:
    store = MemoryStore()
    await store.write_batch([OfferLease("job:k")])
    (claimed,) = await store.claim_leases("job:", "w1", 0.15, limit=1)
    async with keep_lease(store, claimed, 0.15, renew_every=0.03) as held:
        await anyio.sleep(0.3)  # renewed past its ttl
        assert await store.claim_leases("job:", "w2", 1, limit=1) == []
        # The block's last write releases the lease itself (a durable timer, here).
        await store.write_batch(
            [Put("runs", "k", b"parked"), ReleaseLease("job:k", held.lease.token, 3600)],
            fence=held.fence,
        )
        held.give_up()
        await anyio.sleep(0.1)  # renewals refused from now on are no loss
    assert not held.lost.is_set() and held.error is None
    stored = await store.get_lease("job:k")
    # Not released a second time on exit: still the timer the block set.
    assert stored is not None and stored.owner == "" and stored.expires_at > time.time() + 3000


@each_backend
async def test_a_kept_lease_is_released_on_exit_claimable_after_release_after() -> None:
    store = MemoryStore()
    await store.write_batch([OfferLease("job:r")])
    (claimed,) = await store.claim_leases("job:", "w1", 30, limit=1)
    with pytest.raises(KeyError):
        async with keep_lease(store, claimed, 30, release_after=0.0):
            raise KeyError("the block failed without releasing")
    # Released on the way out, claimable again at once (not left to expire).
    (again,) = await store.claim_leases("job:", "w2", 30, limit=1)
    assert again.token == claimed.token + 1
