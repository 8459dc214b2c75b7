"""The price monitor example: it checks every quote once the thresholds arrived, and a
run checks first the quotes an earlier run accepted but never checked."""

from __future__ import annotations

from pathlib import Path

import trio
from trio.testing import MockClock

from examples import price_monitor
from examples.price_monitor import QUOTES, THRESHOLDS, Quote, Thresholds
from fsmflow.reactor import (
    InputStrategy,
    PassThrough,
    PushAccumulator,
    Reactor,
    start_reactor,
)
from fsmflow.store import SqliteStore

from ._support import Recorder, is_live, until


async def test_every_quote_is_checked_against_the_current_thresholds(
    tmp_path: Path, autojump_clock: MockClock
) -> None:
    report = await price_monitor.main(tmp_path / "monitor.sqlite3", quotes=30)
    assert report.resumed == 0 and report.checked == 30
    assert report.alerts
    for alert in report.alerts:
        direction, limit = alert.reason.split()
        price = alert.quote.price
        assert price > float(limit) if direction == "above" else price < float(limit)


async def test_quotes_accepted_by_a_killed_run_are_checked_by_the_next(
    tmp_path: Path, autojump_clock: MockClock
) -> None:
    path = tmp_path / "monitor.sqlite3"
    backlog = [Quote("earlier", seq, "ACME", 200.0 + seq) for seq in (1, 2, 3)]
    async with await SqliteStore.open(path) as store, trio.open_nursery() as nursery:
        reactor = Reactor(
            "price-monitor",
            Recorder(),
            accumulators=[
                PushAccumulator(QUOTES, PassThrough[Quote]()),
                PushAccumulator(THRESHOLDS, PassThrough[Thresholds]()),
            ],
            strategy=InputStrategy.SEQUENTIAL,
            store=store,
        )
        handle = await start_reactor(nursery, reactor)
        await handle.wait_for(is_live)
        await handle.send_boundary(THRESHOLDS, Thresholds(90.0, 110.0))
        await until(lambda: handle.get_state().firings == 1)
        await handle.pause()
        for quote in backlog:
            await handle.send_boundary(QUOTES, quote)
        await until(lambda: handle.get_state().pending == 3)
        handle.cancel()  # an abrupt end: no orderly stop

    report = await price_monitor.main(path, quotes=5)
    assert report.resumed == 3
    assert [a.quote for a in report.alerts[:3]] == backlog, "the backlog is checked first"
    assert report.checked == 3 + 5
