"""A price monitor on a reactor: a stream of quotes and a polled alert configuration.

* Quotes arrive from a (simulated) exchange feed as text lines; a ``StreamAccumulator``
  turns each into a ``Quote`` boundary and drops the heartbeats.
* The alert thresholds are polled from a (simulated) configuration service every second
  by a ``PollingAccumulator`` (a poll returning ``None`` means "unchanged").
* The reactor checks every quote (``SEQUENTIAL``) once both sources have delivered
  (``WHEN_ALL``), and keeps its state in a SQLite file: kill the process at any moment
  (even with ``kill -9``) and run it again, and the quotes it had accepted but not yet
  checked are checked first.

Run it from the repository root with ``python -m examples.price_monitor [DB]`` (default
``price-monitor.sqlite3``); draw the reactor with ``fsmflow diagram
fsmflow.reactor:Reactor``.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import trio

from fsmflow.reactor import (
    Completed,
    Criteria,
    InputCache,
    InputStrategy,
    PassThrough,
    PollingAccumulator,
    Reactor,
    Source,
    StreamAccumulator,
    start_reactor,
)
from fsmflow.store import SqliteStore

SYMBOLS = ("ACME", "INITECH")
#: Seconds between two quotes of the simulated feed, and seconds a check takes (slower:
#: a backlog of accepted quotes builds up, which a killed run leaves to the next one).
QUOTE_INTERVAL = 0.05
CHECK_TIME = 0.08


@attrs.frozen
class Quote:
    #: The feed session (one per run) and the quote's number in it.
    session: str
    seq: int
    symbol: str
    price: float


@attrs.frozen
class Thresholds:
    low: float
    high: float


@attrs.frozen
class Alert:
    quote: Quote
    reason: str


QUOTES = Source("quotes", Quote)
THRESHOLDS = Source("thresholds", Thresholds)


async def exchange(session: str, count: int) -> AsyncIterator[str]:
    """The simulated feed: ``count`` quotes of a random walk (the same in every
    session), and heartbeats."""
    rng = random.Random(2024)
    prices = dict.fromkeys(SYMBOLS, 100.0)
    for seq in range(1, count + 1):
        await trio.sleep(QUOTE_INTERVAL)
        if seq % 10 == 0:
            yield "HEARTBEAT"
        symbol = rng.choice(SYMBOLS)
        prices[symbol] = round(prices[symbol] * rng.uniform(0.97, 1.03), 2)
        yield f"{session} {seq} {symbol} {prices[symbol]}"


class ParseQuote:
    """The feed's handler: a quote line becomes a ``Quote``, anything else ``None``."""

    def process(self, line: str) -> Quote | None:
        parts = line.split()
        if len(parts) != 4:
            return None
        session, seq, symbol, price = parts
        return Quote(session, int(seq), symbol, float(price))


class ConfigService:
    """The simulated configuration service: the band narrows from the third poll on."""

    def __init__(self) -> None:
        self.polls = 0
        self.served: Thresholds | None = None

    async def poll(self) -> Thresholds | None:
        await trio.lowlevel.checkpoint()
        self.polls += 1
        current = Thresholds(95.0, 105.0) if self.polls < 3 else Thresholds(97.0, 103.0)
        if current == self.served:
            return None
        self.served = current
        return current


@attrs.define
class Report:
    #: Quotes accepted by an earlier run and checked by this one first.
    resumed: int = 0
    checked: int = 0
    alerts: list[Alert] = attrs.Factory(list)


def check(quote: Quote, limits: Thresholds) -> Alert | None:
    if quote.price > limits.high:
        return Alert(quote, f"above {limits.high}")
    if quote.price < limits.low:
        return Alert(quote, f"below {limits.low}")
    return None


async def main(path: str | os.PathLike[str] | None = None, quotes: int = 40) -> Report:
    """Monitor one feed session of ``quotes`` quotes, keeping state in ``path`` (a fresh
    temporary file by default), and stop once its last quote was checked."""
    if path is None:
        path = Path(tempfile.mkdtemp()) / "price-monitor.sqlite3"
    session = f"{random.getrandbits(32):08x}"
    report = Report()
    last_checked = trio.Event()

    async def monitor(cache: InputCache) -> Completed[Alert | None]:
        quote = cache[QUOTES]
        await trio.sleep(CHECK_TIME)  # a pricing model would run here
        alert = check(quote, cache[THRESHOLDS])
        report.checked += cache.updated(QUOTES)  # not for a firing on new thresholds
        if alert is not None:
            report.alerts.append(alert)
            print(f"ALERT {quote.symbol} {quote.price} {alert.reason} (#{quote.seq})")
        if quote.session == session and quote.seq == quotes:
            last_checked.set()
        return Completed(alert)

    feed = StreamAccumulator(QUOTES, ParseQuote(), lambda: exchange(session, quotes))
    config = PollingAccumulator(
        THRESHOLDS, PassThrough[Thresholds](), ConfigService().poll, interval=1.0
    )
    async with await SqliteStore.open(path) as store, trio.open_nursery() as nursery:
        reactor = Reactor(
            "price-monitor",
            monitor,
            accumulators=[feed, config],
            criteria=Criteria.WHEN_ALL,
            strategy=InputStrategy.SEQUENTIAL,
            store=store,
        )
        handle = await start_reactor(nursery, reactor)
        report.resumed = handle.get_state().pending
        if report.resumed:
            print(f"resuming: {report.resumed} quote(s) accepted before the last stop")
        await last_checked.wait()
        await handle.shutdown()
    print(f"checked {report.checked} quote(s), {len(report.alerts)} alert(s); state in {path}")
    return report


if __name__ == "__main__":
    trio.run(main, sys.argv[1] if len(sys.argv) > 1 else "price-monitor.sqlite3")
