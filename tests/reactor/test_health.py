"""Reactor health: ``Warming`` until every accumulator is healthy, ``Degraded`` while one
is down, ``Live`` again once it is back; the supervision tree restarts failed sources with
backoff, on the loop's clock."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

import pytest
import trio
from trio.testing import MockClock

from fsmflow.reactor import (
    AccumulatorHealth,
    Degraded,
    Live,
    PassThrough,
    Paused,
    PushAccumulator,
    Reactor,
    ReactorState,
    StreamAccumulator,
    Warming,
    start_reactor,
)
from fsmflow.supervisor import RestartBackoff, RestartIntensity, RestartIntensityExceeded

from ._support import NUMBERS, PRICES, Doubler, Price, Recorder, stop, until

BACKOFF = RestartBackoff(initial=1.0, maximum=1.0, jitter=0.0)


class Feed:
    """A stream source the test controls: ints are delivered, exceptions raised, and
    every connection counts."""

    def __init__(self) -> None:
        self.connections = 0
        self.send, self.receive = trio.open_memory_channel[int | Exception](math.inf)

    def stream(self) -> AsyncIterator[int]:
        self.connections += 1
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[int]:
        async for item in self.receive:
            if isinstance(item, Exception):
                raise item
            yield item


class GatedDoubler:
    """Doubles ints, like :class:`Doubler`, but its ``init`` waits until the test opens
    the gate (an async ``init``)."""

    def __init__(self) -> None:
        self.inits = 0
        self.gate = trio.Event()

    async def init(self) -> None:
        self.inits += 1
        await self.gate.wait()

    def process(self, event: int) -> int:
        return event * 2


async def record_states(
    handle_changes: AsyncIterator[ReactorState], into: list[ReactorState]
) -> None:
    async for state in handle_changes:
        into.append(state)


async def test_warming_until_every_accumulator_is_healthy(autojump_clock: MockClock) -> None:
    handler = GatedDoubler()
    feed = Feed()
    numbers = StreamAccumulator(NUMBERS, handler, feed.stream)
    prices = PushAccumulator(PRICES, PassThrough[Price]())
    graph = Recorder()
    reactor = Reactor("health", graph, accumulators=[numbers, prices])
    async with trio.open_nursery() as nursery:
        handle = await start_reactor(nursery, reactor)
        await handle.wait_for(lambda s: s == Warming(healthy=1, waiting=1))
        assert numbers.health.current() is AccumulatorHealth.STARTING
        assert prices.health.current() is AccumulatorHealth.PUSH_ONLY
        await prices.push(Price("A", 1.0))
        await handle.force_fire()
        await trio.sleep(1)
        assert graph.snapshots == [], "no firing while warming"
        assert handle.get_state().cache[PRICES] == Price("A", 1.0), "but boundaries are taken"
        handler.gate.set()
        await handle.wait_for(lambda s: s == Live())
        await until(lambda: len(graph.snapshots) == 1)
        assert numbers.health.current() is AccumulatorHealth.LIVE
        await stop(handle)
    assert numbers.health.current() is AccumulatorHealth.STOPPED
    assert numbers.health.closed


async def test_degraded_while_a_source_is_down_and_live_once_it_is_back(
    autojump_clock: MockClock,
) -> None:
    feed = Feed()
    handler = Doubler()
    numbers = StreamAccumulator(NUMBERS, handler, feed.stream)
    graph = Recorder()
    reactor = Reactor("health", graph, accumulators=[numbers], restart_backoff=BACKOFF)
    states: list[ReactorState] = []
    async with trio.open_nursery() as nursery:
        handle = await start_reactor(nursery, reactor)
        nursery.start_soon(record_states, handle.changes(), states)
        await handle.wait_for(lambda s: s == Live())
        feed.send.send_nowait(1)
        await until(lambda: graph.values(NUMBERS) == [2])
        feed.send.send_nowait(ConnectionError("feed dropped"))
        await handle.wait_for(lambda s: isinstance(s, Degraded))
        down_at = trio.current_time()
        assert handle.state == Degraded(("numbers",))
        assert handle.get_state().accumulators["numbers"] in (
            AccumulatorHealth.DISCONNECTED,
            AccumulatorHealth.STARTING,
        )
        await handle.wait_for(lambda s: s == Live())
        assert trio.current_time() - down_at == pytest.approx(1.0), "the restart backoff"
        assert (feed.connections, handler.inits) == (2, 2), "a restart reconnects and re-inits"
        feed.send.send_nowait(3)
        await until(lambda: graph.values(NUMBERS) == [2, 6])
        tree = handle.tree
        assert tree is not None and [r.child_id for r in tree.history] == ["numbers"]
        await stop(handle)
    assert [type(s).__name__ for s in states[-4:]] == ["Live", "Degraded", "Live", "Stopped"]


async def test_paused_follows_health_changes(autojump_clock: MockClock) -> None:
    feed = Feed()
    numbers = StreamAccumulator(NUMBERS, Doubler(), feed.stream)
    reactor = Reactor("health", Recorder(), accumulators=[numbers], restart_backoff=BACKOFF)
    async with trio.open_nursery() as nursery:
        handle = await start_reactor(nursery, reactor)
        await handle.wait_for(lambda s: s == Live())
        await handle.pause()
        await handle.wait_for(lambda s: s == Paused(Live()))
        feed.send.send_nowait(OSError("gone"))
        await handle.wait_for(lambda s: s == Paused(Degraded(("numbers",))))
        assert handle.health == Degraded(("numbers",))
        await handle.wait_for(lambda s: s == Paused(Live()))
        await handle.resume()
        await handle.wait_for(lambda s: s == Live())
        await stop(handle)


async def test_paused_while_warming_resumes_to_warming(autojump_clock: MockClock) -> None:
    handler = GatedDoubler()
    numbers = StreamAccumulator(NUMBERS, handler, Feed().stream)
    async with trio.open_nursery() as nursery:
        handle = await start_reactor(nursery, Reactor("h", Recorder(), accumulators=[numbers]))
        await handle.pause()
        await handle.wait_for(lambda s: s == Paused(Warming(healthy=0, waiting=1)))
        handler.gate.set()
        await handle.wait_for(lambda s: s == Paused(Live()))
        await handle.resume()
        await handle.wait_for(lambda s: s == Live())
        await stop(handle)


async def test_a_source_that_keeps_failing_ends_the_reactor(autojump_clock: MockClock) -> None:
    def broken() -> AsyncIterator[int]:
        raise ConnectionRefusedError("no feed")

    numbers = StreamAccumulator(NUMBERS, Doubler(), broken)
    reactor = Reactor(
        "doomed",
        Recorder(),
        accumulators=[numbers],
        restart_backoff=BACKOFF,
        restart_intensity=RestartIntensity(max_restarts=2, period=60.0),
    )
    with pytest.RaisesGroup(RestartIntensityExceeded, flatten_subgroups=True):
        async with trio.open_nursery() as nursery:
            handle = await start_reactor(nursery, reactor)
            await trio.sleep(10)
            pytest.fail(f"the reactor should have failed, it is {handle.state}")
    assert numbers.health.current() is AccumulatorHealth.STOPPED
