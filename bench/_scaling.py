"""The shape of a scaling measurement, shared by ``bench/bench_scaling.py`` and the
``bench/scaling_*.py`` modules that define the cases.

A case times the same operation at a small and a large size of the work and reports the
growth factor (large time over small time). Work that grows linearly with the size shows
a factor close to ``large / small``; the aim says how much growth is acceptable. Sizes are
timed in interleaved rounds after a warm-up, and the factor uses the medians.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs


@attrs.frozen
class ScalingCase:
    """One operation measured at two sizes."""

    #: What is measured, e.g. ``"FsmBuilder.build()"``.
    name: str
    #: What the size counts, e.g. ``"states"``.
    unit: str
    small: int
    large: int
    #: The largest acceptable growth factor (median time at ``large`` / at ``small``).
    aim: float
    #: ``run(size) -> seconds``: sets up the work for ``size`` untimed, times the measured
    #: operation, checks that it was really done, and returns the seconds it took.
    run: Callable[[int], float]
