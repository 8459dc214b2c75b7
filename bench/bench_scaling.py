"""Cost that grows with the work, not faster: growth factors of fsmflow's operations.

Every ``bench/scaling_*.py`` module defines ``CASES``, a list of
:class:`~_scaling.ScalingCase`. This script times each case at its small and its large
size in interleaved rounds (after one warm-up run of each), and prints the growth factor
of the medians with its spread next to the aim.

    python bench/bench_scaling.py            # every case
    python bench/bench_scaling.py --quick    # 3 rounds
    python bench/bench_scaling.py -k graph   # cases whose name contains "graph"
"""

from __future__ import annotations

import argparse
import gc
import importlib
import statistics
import sys
from pathlib import Path

from _common import format_table
from _scaling import ScalingCase

HERE = Path(__file__).resolve().parent


def discover() -> list[ScalingCase]:
    """Every case of every ``scaling_*.py`` module next to this script, in file order."""
    sys.path.insert(0, str(HERE))
    cases: list[ScalingCase] = []
    for path in sorted(HERE.glob("scaling_*.py")):
        cases += importlib.import_module(path.stem).CASES
    return cases


def measure(case: ScalingCase, rounds: int) -> tuple[list[float], list[float]]:
    """Seconds at the small and at the large size, ``rounds`` each, interleaved."""
    case.run(case.small)
    case.run(case.large)
    small: list[float] = []
    large: list[float] = []
    for _ in range(rounds):
        gc.collect()
        small.append(case.run(case.small))
        gc.collect()
        large.append(case.run(case.large))
    return small, large


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds instead of 5")
    parser.add_argument("--repeats", type=int, help="rounds per size")
    parser.add_argument("-k", dest="keyword", help="only cases whose name contains this")
    args = parser.parse_args(argv)
    rounds = args.repeats or (3 if args.quick else 5)
    rows = []
    missed = 0
    for case in discover():
        if args.keyword and args.keyword not in case.name:
            continue
        small, large = measure(case, rounds)
        growth = statistics.median(large) / statistics.median(small)
        low, high = min(large) / max(small), max(large) / min(small)
        met = growth <= case.aim
        missed += not met
        rows.append(
            [
                case.name,
                f"{case.small:,} -> {case.large:,} {case.unit}",
                f"{statistics.median(small) * 1e3:.2f} ms",
                f"{statistics.median(large) * 1e3:.2f} ms",
                f"{growth:.1f}x ({low:.1f}..{high:.1f})",
                f"<= {case.aim:g}x",
                "met" if met else "MISSED",
            ]
        )
        print(f"  {case.name}: {growth:.1f}x", flush=True)
    print()
    print(
        format_table(
            ["case", "sizes", "small", "large", "growth (spread)", "aim", ""],
            rows,
        )
    )
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
