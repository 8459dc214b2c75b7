"""Scaling cases of the DAG executor: defining and building a DAG costs the same per
processor at any size.

Each case times declaring every processor with ``DagBuilder.add`` and validating the DAG
with ``build()`` (dependency check, topological order, cycle check, the transform chain)
at 10,000 and at 100,000 processors; linear work grows 10x.

- *random dependencies*: processor ``i`` depends on up to 3 random earlier ones (seeded),
  the shape of ``bench_dag.py``;
- *transform chain*: every processor is a transform depending on the previous one, so
  the check that transforms form a chain sees every processor;
- *random dependencies, collector off*: the first case with Python's cyclic garbage
  collector paused while timing. A diagnostic, not how fsmflow runs: it separates the
  algorithm's own growth from the collector's full collections, which a 100,000
  processor build triggers several times (each walking the whole heap) and a 10,000
  processor build not at all.

Times are the process's CPU time (``time.process_time``): the work is single-threaded
and CPU-bound, and CPU time leaves out the time other processes on a shared machine
take from it.

Run through ``python bench/bench_scaling.py -k DagBuilder``.
"""

from __future__ import annotations

import gc
import random
import time
from typing import Any

from _scaling import ScalingCase

from fsmflow.dag import Dag, DagBuilder, Intent, ProcessorInput


async def noop(inp: ProcessorInput[None]) -> None:
    return None


def _random_dependencies(size: int) -> list[list[str]]:
    rnd = random.Random(7)
    return [
        [f"p{d}" for d in rnd.sample(range(i), k=min(i, rnd.randint(0, 3)))] for i in range(size)
    ]


def _check(dag: Dag[None], size: int, transforms: int) -> None:
    if len(dag) != size or len(dag.order) != size or len(dag.transform_chain) != transforms:
        raise AssertionError(f"a DAG of {size} processors came out as {dag!r}")


def _random_case(size: int) -> float:
    dependencies = _random_dependencies(size)
    start = time.process_time()
    builder = DagBuilder[None]()
    for i, after in enumerate(dependencies):
        builder.add(f"p{i}", noop, after=after)
    dag = builder.build()
    seconds = time.process_time() - start
    _check(dag, size, 0)
    return seconds


def _chain_case(size: int) -> float:
    ids = [f"t{i}" for i in range(size)]
    start = time.process_time()
    builder = DagBuilder[None]()
    previous: list[Any] = []
    for pid in ids:
        builder.add(pid, noop, after=previous, intent=Intent.TRANSFORM)
        previous = [pid]
    dag = builder.build()
    seconds = time.process_time() - start
    _check(dag, size, size)
    return seconds


def _without_collector(size: int) -> float:
    gc.collect()
    gc.disable()
    try:
        return _random_case(size)
    finally:
        gc.enable()


CASES = [
    ScalingCase(
        "DagBuilder add + build(), random dependencies",
        "processors",
        10_000,
        100_000,
        12.0,
        _random_case,
    ),
    ScalingCase(
        "DagBuilder add + build(), transform chain",
        "processors",
        10_000,
        100_000,
        12.0,
        _chain_case,
    ),
    ScalingCase(
        "DagBuilder add + build(), random dependencies, collector off",
        "processors",
        10_000,
        100_000,
        12.0,
        _without_collector,
    ),
]
