"""A supervision tree keeps a flaky worker going while a steady one carries on.

"Let it crash": the workers handle no errors at all (``max_consecutive_failures = 0``
makes any error end the run). The tree restarts the flaky one, one-for-one, after a
growing backoff, never touching the steady one; then an orderly shutdown stops both in
reverse start order. Run it with ``python -m examples.supervision_tree`` (well under a
second), or draw the tree's own machine with
``fsmflow diagram fsmflow.supervisor:SupervisionTree``.
"""

from __future__ import annotations

import random
from collections import Counter

import attrs
import trio

from fsmflow import FsmBuilder, FsmSpec, SelfSupervised, Transition, stay
from fsmflow.supervisor import (
    ChildSpec,
    CompletionEvent,
    EventLoopDirective,
    MemoryJournal,
    RestartBackoff,
    RestartIntensity,
    RestartRecord,
    RestartStrategy,
    Running,
    RunOutcome,
    SupervisionTree,
    TreeState,
    Trigger,
)

#: How many runs of the flaky worker crash before one stays up.
FLAKY_CRASHES = 3
#: Seconds between two ticks of work.
TICK = 0.01


@attrs.frozen
class Working:
    """The workers' only state: they work until they crash or are stopped."""


@attrs.frozen
class Tick:
    """One unit of work done."""


@attrs.frozen
class Crash:
    """An error in ``dispatch_state``; with no tolerance for failures it ends the run."""

    message: str


@attrs.define
class Tally:
    """A worker's context: the work done over all its runs (the context factory hands
    every run of one child the same tally, so the count survives restarts)."""

    ticks: int = 0


@attrs.frozen
class CountTick:
    async def execute(self, ctx: Tally) -> None:
        ctx.ticks += 1


def _count(state: Working, event: Tick, ctx: Tally) -> Transition[Working, CountTick]:
    return stay(CountTick())


_SPEC: FsmSpec[Working, Tick | Crash, Tally, CountTick] | None = None


def worker_spec() -> FsmSpec[Working, Tick | Crash, Tally, CountTick]:
    global _SPEC
    if _SPEC is None:
        builder = FsmBuilder[Working, Tick | Crash, Tally, CountTick](
            states=Working, events=Tick | Crash, initial=Working, name="worker"
        )
        builder.when(Working).on(Tick, _count)
        _SPEC = builder.build()
    return _SPEC


class Worker(SelfSupervised[Working, Tick | Crash, Tally, CountTick]):
    """Ticks every :data:`TICK` seconds; crashes after ``crash_after`` ticks if given."""

    max_consecutive_failures = 0

    def __init__(self, name: str, journal: MemoryJournal, crash_after: int | None) -> None:
        super().__init__(name, journal=journal)
        self.crash_after = crash_after
        self.ticks = 0

    @classmethod
    def fsm_spec(cls) -> FsmSpec[Working, Tick | Crash, Tally, CountTick]:
        return worker_spec()

    def event_for_action_error(self, msg: str) -> Tick | Crash:
        return Crash(msg)

    async def dispatch_state(self, state: Working, ctx: Tally) -> EventLoopDirective[Tick | Crash]:
        await trio.sleep(TICK)
        if self.crash_after is not None and self.ticks >= self.crash_after:
            raise ConnectionError(f"{self.name} lost its connection after {self.ticks} ticks")
        self.ticks += 1
        return Trigger(Tick())


@attrs.frozen
class Report:
    """What ``main`` returns: how the tree ended and what happened on the way."""

    outcome: RunOutcome[TreeState]
    history: tuple[RestartRecord, ...]
    restarts: dict[str, int]
    ticks: dict[str, int]
    completions: list[CompletionEvent]


def build_tree(journal: MemoryJournal, tallies: dict[str, Tally]) -> SupervisionTree:
    """``steady`` first, ``flaky`` second: the shutdown stops ``flaky`` first."""
    flaky_runs = 0

    def make_flaky() -> Worker:
        nonlocal flaky_runs
        flaky_runs += 1
        return Worker("flaky", journal, crash_after=2 if flaky_runs <= FLAKY_CRASHES else None)

    return SupervisionTree(
        "workers",
        [
            ChildSpec(
                "steady",
                lambda: Worker("steady", journal, crash_after=None),
                context_factory=lambda: tallies["steady"],
            ),
            ChildSpec("flaky", make_flaky, context_factory=lambda: tallies["flaky"]),
        ],
        strategy=RestartStrategy.ONE_FOR_ONE,
        intensity=RestartIntensity(max_restarts=5, period=1.0),
        backoff=RestartBackoff(initial=0.02, factor=2, maximum=0.2, jitter=0.25),
        rng=random.Random(2024),
        journal=journal,
    )


async def main() -> Report:
    started = trio.current_time()
    journal = MemoryJournal()
    tallies = {"steady": Tally(), "flaky": Tally()}
    tree = build_tree(journal, tallies)

    async def shut_down_once_flaky_holds() -> None:
        await tree.watcher.wait_for(
            lambda state: (
                isinstance(state, Running) and tree.child_status("flaky").restarts == FLAKY_CRASHES
            )
        )
        await trio.sleep(10 * TICK)  # let the restarted worker prove itself
        tree.shutdown()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(shut_down_once_flaky_holds)
        outcome = await tree.run()

    report = Report(
        outcome=outcome,
        history=tree.history,
        restarts={s.child_id: s.restarts for s in tree.children_status()},
        ticks={name: tally.ticks for name, tally in tallies.items()},
        completions=list(journal.events),
    )
    for record in report.history:
        print(
            f"{record.at - started:.3f}s  {record.child_id} {record.exit.value}; "
            f"restarted after {record.delay:.3f}s"
        )
    print(f"tree {outcome.exit.value} in {outcome.final_state}")
    print(f"restarts: {report.restarts}, ticks: {report.ticks}")
    exits = Counter((c.supervisor, c.exit.value) for c in report.completions)
    print("completion events:", ", ".join(f"{s} {e} x{n}" for (s, e), n in exits.items()))
    return report


if __name__ == "__main__":
    trio.run(main)
