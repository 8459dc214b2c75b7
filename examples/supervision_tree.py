"""A supervision tree keeps a flaky worker going while a steady one carries on, and runs
a pool of jobs started on demand.

"Let it crash": the workers handle no errors at all (``max_consecutive_failures = 0``
makes any error end the run). The tree starts ``steady``, ``flaky`` and the ``jobs``
pool in that order, each once the one before has started. It restarts the flaky worker,
one-for-one, after a growing backoff, never touching the others. The pool (OTP's
``simple_one_for_one``) starts one job per request, each with its own arguments; a job
finishes after its ticks, and the one that crashes is restarted with the same arguments.
The jobs are significant and the pool shuts itself down once the last one is done
(``AutoShutdown.ALL_SIGNIFICANT``); being transient, it is not restarted. Once the flaky
worker holds, an orderly shutdown stops the rest in reverse start order.

Run it with ``python -m examples.supervision_tree`` (well under a second), draw the tree
with ``fsmflow diagram examples.supervision_tree:build_tree`` (``running_diagram()``
draws it while its jobs run), or the tree's own machine with
``fsmflow diagram fsmflow.supervisor:SupervisionTree``.
"""

from __future__ import annotations

import random
from collections import Counter

import attrs
import trio
from trio.testing import MockClock

from fsmflow import FsmBuilder, FsmSpec, SelfSupervised, Transition, stay
from fsmflow.diagrams import to_mermaid
from fsmflow.supervisor import (
    TERMINATE,
    AutoShutdown,
    ChildCounts,
    ChildSpec,
    ChildTemplate,
    CompletionEvent,
    EventLoopDirective,
    MemoryJournal,
    RestartBackoff,
    RestartIntensity,
    RestartRecord,
    RestartStrategy,
    RestartType,
    Running,
    RunOutcome,
    SupervisionTree,
    SupervisorPool,
    TreeState,
    Trigger,
)

#: How many runs of the flaky worker crash before one stays up.
FLAKY_CRASHES = 3
#: Seconds between two ticks of work.
TICK = 0.01


@attrs.frozen
class Job:
    """What one job of the pool is started with."""

    name: str
    ticks: int
    #: Its first run crashes half-way (the pool restarts it with these same arguments).
    crashes_once: bool = False


#: The jobs ``main`` asks the pool for.
JOBS = (Job("thumbnails", 5), Job("resize", 8, crashes_once=True), Job("index", 12))


@attrs.frozen
class Working:
    """The workers' only state: they work until they are done, crash or are stopped."""


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
    """Ticks every :data:`TICK` seconds; crashes after ``crash_after`` ticks and is done
    after ``done_after`` ticks, if given."""

    max_consecutive_failures = 0

    def __init__(
        self,
        name: str,
        journal: MemoryJournal,
        crash_after: int | None,
        done_after: int | None = None,
    ) -> None:
        super().__init__(name, journal=journal)
        self.crash_after = crash_after
        self.done_after = done_after
        self.ticks = 0

    @classmethod
    def fsm_spec(cls) -> FsmSpec[Working, Tick | Crash, Tally, CountTick]:
        return worker_spec()

    def initial_context(self) -> Tally:
        return Tally()

    def event_for_action_error(self, msg: str) -> Tick | Crash:
        return Crash(msg)

    async def dispatch_state(self, state: Working, ctx: Tally) -> EventLoopDirective[Tick | Crash]:
        await trio.sleep(TICK)
        if self.crash_after is not None and self.ticks >= self.crash_after:
            raise ConnectionError(f"{self.name} lost its connection after {self.ticks} ticks")
        if self.done_after is not None and self.ticks >= self.done_after:
            return TERMINATE
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
    #: The pool's restarts (the job that crashed once).
    pool_history: tuple[RestartRecord, ...]
    #: How the pool ended (it shut itself down).
    pool_outcome: RunOutcome[TreeState]
    #: The pool's children while every job was running.
    pool_counts: ChildCounts
    #: The tree drawn (Mermaid) while every job was running.
    diagram: str


def build_tree(
    journal: MemoryJournal | None = None, tallies: dict[str, Tally] | None = None
) -> SupervisionTree:
    """``steady`` first, ``flaky`` second, the ``jobs`` pool last: the shutdown stops the
    pool first and ``steady`` last."""
    journal = MemoryJournal() if journal is None else journal
    tallies = {"steady": Tally(), "flaky": Tally()} if tallies is None else tallies
    flaky_runs = 0
    crashed: set[str] = set()

    def make_flaky() -> Worker:
        nonlocal flaky_runs
        flaky_runs += 1
        return Worker("flaky", journal, crash_after=2 if flaky_runs <= FLAKY_CRASHES else None)

    def make_job(job: Job) -> Worker:
        crash_now = job.crashes_once and job.name not in crashed
        crashed.add(job.name)
        return Worker(
            job.name,
            journal,
            crash_after=job.ticks // 2 if crash_now else None,
            done_after=job.ticks,
        )

    def make_pool() -> SupervisorPool[Job]:
        return SupervisorPool[Job](
            "jobs",
            ChildTemplate("job", make_job, restart=RestartType.TRANSIENT, significant=True),
            backoff=RestartBackoff(initial=0.01, jitter=0),
            auto_shutdown=AutoShutdown.ALL_SIGNIFICANT,
            journal=journal,
        )

    return SupervisionTree(
        "workers",
        [
            ChildSpec(
                "steady",
                lambda: Worker("steady", journal, crash_after=None),
                context_factory=lambda: tallies["steady"],
            ),
            ChildSpec("flaky", make_flaky, context_factory=lambda: tallies["flaky"]),
            ChildSpec("jobs", make_pool, restart=RestartType.TRANSIENT),
        ],
        strategy=RestartStrategy.ONE_FOR_ONE,
        intensity=RestartIntensity(max_restarts=5, period=1.0),
        backoff=RestartBackoff(initial=0.02, factor=2, maximum=0.2, jitter=0.25),
        rng=random.Random(2024),
        journal=journal,
    )


async def run_example() -> Report:
    """Run the tree as the module docstring tells, and report what happened."""
    journal = MemoryJournal()
    tallies = {"steady": Tally(), "flaky": Tally()}
    tree = build_tree(journal, tallies)

    async with trio.open_nursery() as nursery:
        handle = await tree.start(nursery)
        jobs = handle.child_pool("jobs", Job)
        for job in JOBS:
            await jobs.start_child(job)
        pool_counts = jobs.count_children()
        diagram = to_mermaid(handle)
        pool_outcome = await jobs.outcome()  # the pool ends itself after the last job
        await handle.wait_for(
            lambda state: (
                isinstance(state, Running)
                and handle.child_status("flaky").restarts == FLAKY_CRASHES
            )
        )
        await trio.sleep(10 * TICK)  # let the restarted worker prove itself
        handle.shutdown()
    outcome = await handle.outcome()
    return Report(
        outcome=outcome,
        history=tree.history,
        restarts={s.child_id: s.restarts for s in tree.which_children()},
        ticks={name: tally.ticks for name, tally in tallies.items()},
        completions=list(journal.events),
        pool_history=jobs.history,
        pool_outcome=pool_outcome,
        pool_counts=pool_counts,
        diagram=diagram,
    )


async def main() -> Report:
    started = trio.current_time()
    report = await run_example()
    outcome = report.outcome
    for record in report.history:
        print(
            f"{record.at - started:.3f}s  {record.child_id} {record.exit.value}; "
            f"restarted after {record.delay:.3f}s"
        )
    for record in report.pool_history:
        print(f"{record.at - started:.3f}s  jobs: {record.child_id} {record.exit.value}; restarted")
    pool_outcome = report.pool_outcome
    print(f"jobs {pool_outcome.exit.value} in {pool_outcome.final_state}")
    print(f"tree {outcome.exit.value} in {outcome.final_state}")
    print(f"restarts: {report.restarts}, ticks: {report.ticks}")
    exits = Counter((c.supervisor, c.exit.value) for c in report.completions)
    print("completion events:", ", ".join(f"{s} {e} x{n}" for (s, e), n in exits.items()))
    return report


def running_diagram() -> str:
    """The tree drawn while its jobs run (Mermaid), on trio's mock clock so that it is the
    same every time; the docs show it."""
    return trio.run(run_example, clock=MockClock(autojump_threshold=0)).diagram


if __name__ == "__main__":
    trio.run(main)
