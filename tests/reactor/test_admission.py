"""The pending bound where boundaries enter a reactor, and receipts of acceptance."""

from __future__ import annotations

import anyio
import pytest
import trio

from fsmflow.reactor import BoundaryArrived, NotAccepted, Receipt
from fsmflow.reactor._admission import BoundaryInlet, PendingLimit
from fsmflow.reactor._fsm import ReactorEvent
from fsmflow.supervisor import ExternalChannelClosed


def test_once_full_admitting_resumes_when_a_batch_has_drained() -> None:
    limit = PendingLimit(5, batch=2)
    assert [limit.try_admit() for _ in range(6)] == [True] * 5 + [False]
    limit.settle()
    assert not limit.try_admit(), "one place free is not a batch"
    limit.settle()
    assert limit.pending == 3
    assert [limit.try_admit() for _ in range(3)] == [True, True, False]


def test_restored_boundaries_count_and_hold_producers_back() -> None:
    limit = PendingLimit(4, batch=1)
    limit.add(10)
    assert not limit.try_admit()
    limit.settle(7)
    assert limit.try_admit() and limit.pending == 4


def test_no_limit_admits_everything_and_counts_nothing() -> None:
    limit = PendingLimit(None)
    assert all(limit.try_admit() for _ in range(1000))
    limit.add(5)
    limit.settle(3)
    assert limit.pending == 0


async def test_a_waiting_producer_is_woken_by_room_or_by_the_end() -> None:
    limit = PendingLimit(1)
    assert limit.try_admit()
    admitted = trio.Event()

    async def producer() -> None:
        await limit.admit()
        admitted.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(producer)
        await trio.testing.wait_all_tasks_blocked()
        assert not admitted.is_set()
        limit.settle()
    assert admitted.is_set() and limit.pending == 1

    with pytest.RaisesGroup(ExternalChannelClosed):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(limit.admit)
            await trio.testing.wait_all_tasks_blocked()
            limit.close()


class FullChannel:
    """A sender whose channel is always full."""

    async def send(self, event: ReactorEvent, /) -> None:
        await trio.sleep_forever()

    def send_nowait(self, event: ReactorEvent, /) -> None:
        raise anyio.WouldBlock


async def test_a_send_that_fails_or_is_cancelled_gives_its_place_back() -> None:
    limit = PendingLimit(3)
    inlet = BoundaryInlet(FullChannel(), limit)
    with pytest.raises(anyio.WouldBlock):
        inlet.send_nowait(BoundaryArrived("numbers", 1))
    with trio.move_on_after(0.01):
        await inlet.send(BoundaryArrived("numbers", 1))
    assert limit.pending == 0


async def test_a_receipt_serves_one_boundary_and_reports_its_fate() -> None:
    receipt = Receipt()
    receipt.use()
    with pytest.raises(ValueError, match="fresh one"):
        receipt.use()
    receipt.accept()
    receipt.refuse("too late: accepted already")
    await receipt.wait()
    assert receipt.accepted

    refused = Receipt()

    async def refuse_soon() -> None:
        await trio.sleep(0.01)
        refused.refuse("stopped")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(refuse_soon)
        with pytest.raises(NotAccepted, match="stopped"):
            await refused.wait()
    assert not refused.accepted
