"""Supervision tree benchmark: start and stop 10 000 dynamic children.

Each contestant, under ``trio.run``, starts N children one after the other, each only
once the one before reported that it started, then stops them all and waits until every
one has ended. Every child is an idle supervisor (its one state blocks until it is
cancelled; its completion event counts it). Contestants:

* **fsmflow pool**: a ``SupervisorPool`` (OTP's simple_one_for_one); ``await
  handle.start_child(i)`` per child, then ``handle.shutdown()`` stops them all at once;
* **fsmflow tree**: a ``SupervisionTree``; ``await handle.start_child(ChildSpec(...))``
  per child, then ``handle.shutdown()`` stops them one by one in reverse start order;
* **start_supervisor, no tree**: the same supervisors started by hand with
  ``start_supervisor`` in a nursery, waiting for each one's first dispatch, then
  cancelled all at once: what the supervisors themselves cost, without a tree;
* **nursery floor**: ``await nursery.start(task)`` per child, each a bare task that calls
  ``task_status.started()`` and sleeps until cancelled; then the nursery is cancelled.

Reports children per second for the start and for the stop, medians with their spread
over interleaved rounds (see ``_common``), and the ratios to the floor. Results are
checked after timing: every child started and ended exactly once.
``python bench/bench_tree.py [--quick] [--repeats N] [--json PATH]``
"""

from __future__ import annotations

import gc
import time
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio
from _common import Measurement, Settings, environment, format_table, parse_settings, write_json

from fsmflow import FsmBuilder, FsmSpec, SelfSupervised, Transition, goto, start_supervisor
from fsmflow.supervisor import (
    ChildSpec,
    ChildTemplate,
    EventLoopDirective,
    RestartType,
    SupervisionTree,
    SupervisorPool,
)

CHILDREN = 10_000

# -- the children -----------------------------------------------------------------------


@attrs.frozen
class Idling:
    pass


@attrs.frozen
class Done:
    pass


@attrs.frozen
class Wake:
    pass


def _wake(state: Idling, event: Wake, ctx: None) -> Transition[Idling | Done, None]:
    return goto(Done())


_SPEC: FsmSpec[Idling | Done, Wake, None, None] | None = None


def idle_spec() -> FsmSpec[Idling | Done, Wake, None, None]:
    global _SPEC
    if _SPEC is None:
        builder = FsmBuilder[Idling | Done, Wake, None, None](
            states=Idling | Done, events=Wake, initial=Idling, name="idle"
        )
        builder.when(Idling).on(Wake, _wake, to=[Done])
        _SPEC = builder.build()
    return _SPEC


@attrs.define
class Tally:
    """How many children began their first dispatch and how many ended."""

    started: int = 0
    ended: int = 0


class Idle(SelfSupervised[Idling | Done, Wake, None, None]):
    """Blocks in its one state until cancelled; counts its start and its end."""

    def __init__(self, name: str, tally: Tally, began: trio.Event | None = None) -> None:
        super().__init__(name)
        self.tally = tally
        self.began = began

    @classmethod
    def fsm_spec(cls) -> FsmSpec[Idling | Done, Wake, None, None]:
        return idle_spec()

    def initial_context(self) -> None:
        return None

    def event_for_action_error(self, msg: str) -> Wake:
        return Wake()

    async def dispatch_state(self, state: Idling | Done, ctx: None) -> EventLoopDirective[Wake]:
        self.tally.started += 1
        if self.began is not None:
            self.began.set()
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def write_completion_event(self) -> None:
        self.tally.ended += 1


# -- contestants ------------------------------------------------------------------------

#: One timed run: ``(children, tally) -> (seconds to start them, seconds to stop them)``.
Body = Callable[[int, Tally], Awaitable[tuple[float, float]]]


async def fsmflow_pool(children: int, tally: Tally) -> tuple[float, float]:
    pool = SupervisorPool[int](
        "pool",
        ChildTemplate("idle", lambda i: Idle("idle", tally), restart=RestartType.TEMPORARY),
    )
    async with trio.open_nursery() as nursery:
        handle = await pool.start(nursery)
        start = time.perf_counter()
        for i in range(children):
            await handle.start_child(i)
        started = time.perf_counter()
        handle.shutdown()
        await handle.outcome()
        stopped = time.perf_counter()
    return started - start, stopped - started


async def fsmflow_tree(children: int, tally: Tally) -> tuple[float, float]:
    tree = SupervisionTree("tree", [])

    def make() -> Idle:
        return Idle("idle", tally)

    async with trio.open_nursery() as nursery:
        handle = await tree.start(nursery)
        start = time.perf_counter()
        for i in range(children):
            await handle.start_child(ChildSpec(f"c{i}", make, RestartType.TEMPORARY))
        started = time.perf_counter()
        handle.shutdown()
        await handle.outcome()
        stopped = time.perf_counter()
    return started - start, stopped - started


async def start_supervisor_by_hand(children: int, tally: Tally) -> tuple[float, float]:
    async with trio.open_nursery() as nursery:
        start = time.perf_counter()
        for _ in range(children):
            began = trio.Event()
            await start_supervisor(nursery, Idle("idle", tally, began))
            await began.wait()
        started = time.perf_counter()
        nursery.cancel_scope.cancel()
    stopped = time.perf_counter()
    return started - start, stopped - started


async def nursery_floor(children: int, tally: Tally) -> tuple[float, float]:
    async def child(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        tally.started += 1
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            tally.ended += 1

    async with trio.open_nursery() as nursery:
        start = time.perf_counter()
        for _ in range(children):
            await nursery.start(child)
        started = time.perf_counter()
        nursery.cancel_scope.cancel()
    stopped = time.perf_counter()
    return started - start, stopped - started


CONTESTANTS: dict[str, Body] = {
    "fsmflow pool": fsmflow_pool,
    "fsmflow tree": fsmflow_tree,
    "start_supervisor, no tree": start_supervisor_by_hand,
    "nursery floor": nursery_floor,
}
FLOOR = "nursery floor"


def run_once(body: Body, children: int, warmup: int) -> tuple[float, float]:
    """One round of one contestant: a warm-up run, then the timed run, checked."""
    trio.run(body, warmup, Tally())
    gc.collect()
    tally = Tally()
    seconds = trio.run(body, children, tally)
    if tally.started != children or tally.ended != children:
        raise AssertionError(f"{body.__name__}: started {tally.started}, ended {tally.ended}")
    return seconds


def measure(settings: Settings) -> tuple[list[Measurement], list[Measurement]]:
    children = settings.operations(CHILDREN)
    warmup = settings.warmup(children)
    starts: dict[str, list[float]] = {name: [] for name in CONTESTANTS}
    stops: dict[str, list[float]] = {name: [] for name in CONTESTANTS}
    for round_ in range(1, settings.repeats + 1):
        for name, body in CONTESTANTS.items():
            start, stop = run_once(body, children, warmup)
            starts[name].append(start)
            stops[name].append(stop)
        print(f"  round {round_}/{settings.repeats} done", flush=True)
    return (
        [Measurement(name, children, tuple(s)) for name, s in starts.items()],
        [Measurement(name, children, tuple(s)) for name, s in stops.items()],
    )


def table(phase: str, measurements: list[Measurement]) -> str:
    floor = next(m for m in measurements if m.name == FLOOR)
    rows = []
    for m in measurements:
        pairs = [b / a for a, b in zip(floor.seconds, m.seconds, strict=True)]
        slower = m.median_rate and floor.median_rate / m.median_rate
        spread = f"{slower:.2f}x ({min(pairs):.2f}..{max(pairs):.2f})"
        rows.append([m.name, m.summary(), "" if m is floor else spread])
    return format_table([f"{phase}", "children/s median (min..max)", "time / floor"], rows)


def main(argv: list[str] | None = None) -> int:
    settings = parse_settings(__doc__.splitlines()[0], argv)
    print(f"{settings.operations(CHILDREN):,} children per run, {settings.repeats} rounds")
    starts, stops = measure(settings)
    print()
    print(table("start", starts))
    print()
    print(table("stop", stops))
    if settings.json_path is not None:
        write_json(
            settings.json_path,
            {
                "benchmark": "tree",
                "environment": environment(["fsmflow", "trio"]),
                "start": [m.as_json() for m in starts],
                "stop": [m.as_json() for m in stops],
            },
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
