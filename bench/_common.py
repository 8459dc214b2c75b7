"""Timing and reporting helpers shared by the benchmarks in ``bench/``.

Every benchmark follows the same method so that its figures can be compared with each
other and over time: all contestants run in one process, in rounds; in each round every
contestant is set up afresh, warmed up, then timed once with :func:`time.perf_counter`
around a fixed number of operations. The median round is reported with the spread of all
rounds (:meth:`Measurement.summary`); ratios between contestants are ratios of medians
(:func:`ratio`). Interleaving the rounds spreads a burst of load from elsewhere on the
machine over all contestants instead of penalising whichever ran during it. Only ratios
measured in the same run are meaningful; absolute rates depend on the machine.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import attrs

#: Rounds (timed runs per contestant) unless ``--repeats`` says otherwise.
DEFAULT_REPEATS = 5
#: ``--quick`` divides every operation count by this (and uses fewer repeats).
QUICK_DIVISOR = 10
QUICK_REPEATS = 3


@attrs.frozen
class Settings:
    """What the command line asked for."""

    quick: bool
    repeats: int
    json_path: Path | None

    def operations(self, full: int) -> int:
        """The operation count for one timed run: ``full``, or a tenth of it in quick mode."""
        return max(1, full // QUICK_DIVISOR) if self.quick else full

    def warmup(self, operations: int) -> int:
        """Untimed operations run before the timed runs: a tenth of one run, at least one."""
        return max(1, operations // 10)


def parse_settings(description: str, argv: Sequence[str] | None = None) -> Settings:
    """The options every benchmark accepts: ``--quick``, ``--repeats N``, ``--json PATH``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"divide every operation count by {QUICK_DIVISOR} and run {QUICK_REPEATS} times",
    )
    parser.add_argument("--repeats", type=int, help="rounds: timed runs per contestant")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    args = parser.parse_args(argv)
    repeats = args.repeats or (QUICK_REPEATS if args.quick else DEFAULT_REPEATS)
    if repeats < 1:
        parser.error("--repeats must be at least 1")
    return Settings(quick=args.quick, repeats=repeats, json_path=args.json)


@attrs.frozen
class Measurement:
    """The timed runs of one contestant; rates are operations per second."""

    name: str
    operations: int
    seconds: tuple[float, ...]

    @property
    def best_rate(self) -> float:
        return self.operations / min(self.seconds)

    @property
    def median_rate(self) -> float:
        return self.operations / statistics.median(self.seconds)

    @property
    def min_rate(self) -> float:
        return self.operations / max(self.seconds)

    @property
    def max_rate(self) -> float:
        return self.operations / min(self.seconds)

    def summary(self, scale: float = 1.0, digits: int = 0) -> str:
        """``"median (min..max)"`` of the rates, each multiplied by ``scale``."""
        values = (self.median_rate * scale, self.min_rate * scale, self.max_rate * scale)
        median, low, high = (f"{v:,.{digits}f}" for v in values)
        return f"{median} ({low}..{high})"

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "operations_per_run": self.operations,
            "seconds": list(self.seconds),
            "best_rate": self.best_rate,
            "median_rate": self.median_rate,
            "min_rate": self.min_rate,
            "max_rate": self.max_rate,
        }


def ratio(ours: Measurement, theirs: Measurement) -> str:
    """``ours / theirs`` as ``"median (min..max)"``: the ratio of the median rates, and the
    range it spans over the rounds (each round paired with the same round of the other,
    as they ran side by side)."""
    pairs = [
        (ours.operations / a) / (theirs.operations / b)
        for a, b in zip(ours.seconds, theirs.seconds, strict=True)
    ]
    return f"{ours.median_rate / theirs.median_rate:.2f}x ({min(pairs):.2f}..{max(pairs):.2f})"


#: One timed run of a contestant: ``(operations, warmup) -> seconds``. It sets up its
#: subject, runs ``warmup`` operations untimed, times ``operations`` more with
#: :func:`time_sync` or :func:`time_async`, and checks that the work was really done.
Runner = Callable[[int, int], float]


def time_sync(body: Callable[[int], object], operations: int, warmup: int) -> float:
    """Run ``body(warmup)`` untimed, then return the seconds ``body(operations)`` takes.

    A full collection before timing keeps one contestant's garbage from being collected
    on another's clock; the collector stays enabled while timing, as in real use.
    """
    body(warmup)
    gc.collect()
    start = time.perf_counter()
    body(operations)
    return time.perf_counter() - start


async def time_async(
    body: Callable[[int], Awaitable[object]], operations: int, warmup: int
) -> float:
    """:func:`time_sync` for a coroutine function; it awaits nothing of its own, so it runs
    under any event loop (``trio.run`` or ``asyncio.run``)."""
    await body(warmup)
    gc.collect()
    start = time.perf_counter()
    await body(operations)
    return time.perf_counter() - start


def measure_rounds(
    runners: Sequence[tuple[str, int, Runner]], settings: Settings
) -> list[Measurement]:
    """Time each ``(name, full operation count, runner)`` once per round, round after round,
    and return their measurements in the given order."""
    seconds: list[list[float]] = [[] for _ in runners]
    for round_ in range(1, settings.repeats + 1):
        for (_, full, run), runs in zip(runners, seconds, strict=True):
            operations = settings.operations(full)
            runs.append(run(operations, settings.warmup(operations)))
        print(f"  round {round_}/{settings.repeats} done", flush=True)
    return [
        Measurement(name, settings.operations(full), tuple(runs))
        for (name, full, _), runs in zip(runners, seconds, strict=True)
    ]


def environment(distributions: Iterable[str]) -> dict[str, Any]:
    """The machine and the versions the figures were measured with."""
    versions = {}
    for name in distributions:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "packages": versions,
    }


def format_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A plain-text table: the first column left-aligned, the others right-aligned."""
    table = [list(headers), *map(list, rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(table[0]), rule, *map(line, table[1:])])


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
