"""Supervision trees: strategies, restart types, intensity, backoff, orderly shutdown,
nesting. All time is trio's ``MockClock`` (``autojump_clock``), so every expected instant
below is exact; two tests run on asyncio instead, with no clock assertions."""

from __future__ import annotations

import itertools
import logging
import random

import anyio
import pytest
import trio
from trio.testing import MockClock

from fsmflow.cli import main as cli_main
from fsmflow.supervisor import (
    ChildSpec,
    EventLoopDirective,
    ExitKind,
    Failed,
    RestartBackoff,
    Restarting,
    RestartIntensity,
    RestartIntensityExceeded,
    RestartStrategy,
    RestartType,
    Running,
    RunOutcome,
    Stopped,
    SupervisionTree,
    SupervisorError,
    TreeContext,
    TreeEvent,
    TreeState,
)

from ._tree_workers import FOREVER, Finished, Life, Recorder, Worker

FAILED = ExitKind.FAILED
CANCELLED = ExitKind.CANCELLED
TERMINATED = ExitKind.TERMINATED

#: Restart after half a second, no jitter: restart times are exact.
HALF_SECOND = RestartBackoff(initial=0.5, jitter=0.0)
#: Restart at once.
AT_ONCE = RestartBackoff(initial=0.0, jitter=0.0)


async def run_until_shutdown(tree: SupervisionTree, after: float) -> RunOutcome[TreeState]:
    """Run ``tree`` and ask for an orderly shutdown ``after`` seconds."""

    async def shut_down_later() -> None:
        await trio.sleep(after)
        tree.shutdown()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(shut_down_later)
        outcome = await tree.run()
        nursery.cancel_scope.cancel()
    return outcome


def workers(recorder: Recorder, *ids: str, **lives: tuple[Life, ...]) -> list[ChildSpec]:
    return [ChildSpec(i, recorder.factory(i, *lives.get(i, ()))) for i in ids]


# -- strategies -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("strategy", "stopped", "restarted"),
    [
        (RestartStrategy.ONE_FOR_ONE, [], ["b"]),
        (RestartStrategy.ONE_FOR_ALL, ["d", "c", "a"], ["a", "b", "c", "d"]),
        (RestartStrategy.REST_FOR_ONE, ["d", "c"], ["b", "c", "d"]),
    ],
)
async def test_strategy_decides_which_children_restart_and_in_which_order(
    autojump_clock: MockClock, strategy: RestartStrategy, stopped: list[str], restarted: list[str]
) -> None:
    recorder = Recorder()
    children = workers(recorder, "a", "b", "c", "d", b=(Life(lasts=1), FOREVER))
    tree = SupervisionTree("tree", children, strategy=strategy, backoff=HALF_SECOND)

    outcome = await run_until_shutdown(tree, 10)

    assert outcome.exit is TERMINATED and outcome.final_state == Stopped()
    exits = recorder.exits()
    assert exits[0] == (1.0, "b", FAILED)
    # The group is stopped in reverse start order before anything restarts.
    assert exits[1 : 1 + len(stopped)] == [(1.0, child, CANCELLED) for child in stopped]
    starts = recorder.of("start")
    assert starts[:4] == [(0.0, "a"), (0.0, "b"), (0.0, "c"), (0.0, "d")]
    assert starts[4:] == [(1.5, child) for child in restarted]
    # The orderly shutdown stops everything in reverse start order.
    assert exits[1 + len(stopped) :] == [(10.0, c, CANCELLED) for c in ("d", "c", "b", "a")]
    (record,) = tree.history
    assert (record.child_id, record.exit, record.at) == ("b", FAILED, 1.0)
    assert (record.restarted, record.delay) == (tuple(restarted), 0.5)
    assert record.error is not None and "b crashed" in record.error
    assert {s.child_id: s.restarts for s in tree.children_status()} == {
        c: int(c in restarted) for c in "abcd"
    }


async def test_a_grouped_restart_stops_temporary_siblings_for_good(
    autojump_clock: MockClock,
) -> None:
    recorder = Recorder()
    children = [
        ChildSpec("a", recorder.factory("a")),
        ChildSpec("temp", recorder.factory("temp"), restart=RestartType.TEMPORARY),
        ChildSpec("b", recorder.factory("b", Life(lasts=1), FOREVER)),
    ]
    tree = SupervisionTree(
        "tree", children, strategy=RestartStrategy.ONE_FOR_ALL, backoff=HALF_SECOND
    )

    await run_until_shutdown(tree, 5)

    assert tree.history[0].restarted == ("a", "b")
    assert recorder.of("start")[3:] == [(1.5, "a"), (1.5, "b")]
    temp = tree.child_status("temp")
    assert not temp.running and temp.restarts == 0
    assert temp.last_outcome is not None and temp.last_outcome.exit is CANCELLED


async def test_a_child_that_ended_for_good_stays_out_of_later_group_restarts(
    autojump_clock: MockClock,
) -> None:
    recorder = Recorder()
    children = [
        ChildSpec(
            "done", recorder.factory("done", Life(lasts=1, crashes=False)), RestartType.TRANSIENT
        ),
        ChildSpec("b", recorder.factory("b", Life(lasts=2), FOREVER)),
    ]
    tree = SupervisionTree(
        "tree", children, strategy=RestartStrategy.ONE_FOR_ALL, backoff=HALF_SECOND
    )

    await run_until_shutdown(tree, 5)

    assert tree.history[0].restarted == ("b",)
    assert [child for _, child in recorder.of("start")] == ["done", "b", "b"]


# -- restart types ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("restart", "crashes", "restarted"),
    [
        (RestartType.PERMANENT, True, True),
        (RestartType.PERMANENT, False, True),
        (RestartType.TRANSIENT, True, True),
        (RestartType.TRANSIENT, False, False),
        (RestartType.TEMPORARY, True, False),
        (RestartType.TEMPORARY, False, False),
    ],
)
async def test_restart_type_decides_whether_an_exit_is_restarted(
    autojump_clock: MockClock, restart: RestartType, crashes: bool, restarted: bool
) -> None:
    recorder = Recorder()
    life = Life(lasts=1, crashes=crashes)
    tree = SupervisionTree(
        "tree",
        [ChildSpec("x", recorder.factory("x", life, FOREVER), restart=restart)],
        backoff=HALF_SECOND,
    )

    await run_until_shutdown(tree, 5)

    assert recorder.of("start") == [(0.0, "x"), (1.5, "x")][: 1 + restarted]
    assert len(tree.history) == int(restarted)
    assert recorder.completions("x")[0] is (FAILED if crashes else TERMINATED)


@pytest.mark.parametrize(
    ("restart", "restarted"), [(RestartType.PERMANENT, True), (RestartType.TRANSIENT, False)]
)
async def test_a_child_cancelled_by_someone_else_ended_normally(
    autojump_clock: MockClock, restart: RestartType, restarted: bool
) -> None:
    recorder = Recorder()
    tree = SupervisionTree(
        "tree", [ChildSpec("x", recorder.factory("x"), restart=restart)], backoff=HALF_SECOND
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(tree.run)
        await trio.sleep(1)
        handle = tree.child_handle("x")
        assert handle is not None
        handle.cancel()
        await trio.sleep(1)
        assert tree.child_status("x").running is restarted
        tree.shutdown()

    assert [record.exit for record in tree.history] == [CANCELLED] * restarted


# -- intensity ------------------------------------------------------------------------


async def test_exceeding_the_intensity_stops_children_in_reverse_order_and_fails_upward(
    autojump_clock: MockClock,
) -> None:
    recorder = Recorder()
    tree = SupervisionTree(
        "tree",
        workers(recorder, "a", "b", "c", b=(Life(lasts=1),)),
        intensity=RestartIntensity(max_restarts=2, period=10),
        backoff=AT_ONCE,
        journal=recorder.journal,
    )

    with pytest.raises(RestartIntensityExceeded) as info:
        await tree.run()

    error = info.value
    assert isinstance(error, SupervisorError)
    assert [(r.child_id, r.exit, r.at, r.restarted) for r in error.history] == [
        ("b", FAILED, 1.0, ("b",)),
        ("b", FAILED, 2.0, ("b",)),
        ("b", FAILED, 3.0, ()),
    ]
    assert error.history == tree.history
    assert error.intensity == RestartIntensity(2, 10)
    assert "restart intensity exceeded" in str(error) and "b crashed" in str(error)
    assert recorder.exits()[-3:] == [
        (3.0, "b", FAILED),
        (3.0, "c", CANCELLED),
        (3.0, "a", CANCELLED),
    ]
    assert isinstance(tree.state, Failed)
    assert tree.last_outcome is not None and tree.last_outcome.exit is FAILED
    assert error.outcome == tree.last_outcome
    assert recorder.completions("tree") == [FAILED]
    assert not any(status.running for status in tree.children_status())


@pytest.mark.parametrize(("period", "fails_at"), [(5.0, None), (7.0, 9.0)])
async def test_the_intensity_window_slides_on_the_loop_clock(
    autojump_clock: MockClock, period: float, fails_at: float | None
) -> None:
    recorder = Recorder()
    tree = SupervisionTree(
        "tree",
        workers(recorder, "x", x=(Life(lasts=3),)),
        intensity=RestartIntensity(max_restarts=2, period=period),
        backoff=AT_ONCE,
    )

    if fails_at is None:
        outcome = await run_until_shutdown(tree, 20)
        assert outcome.exit is TERMINATED
        assert [r.at for r in tree.history] == [3.0, 6.0, 9.0, 12.0, 15.0, 18.0]
    else:
        with pytest.raises(RestartIntensityExceeded):
            await tree.run()
        assert trio.current_time() == fails_at


# -- backoff --------------------------------------------------------------------------


async def test_backoff_grows_exponentially_up_to_its_maximum(autojump_clock: MockClock) -> None:
    recorder = Recorder()
    tree = SupervisionTree(
        "tree",
        workers(recorder, "x", x=(Life(lasts=0),)),
        intensity=RestartIntensity(max_restarts=10, period=100),
        backoff=RestartBackoff(initial=1, factor=2, maximum=5, jitter=0),
    )

    outcome = await run_until_shutdown(tree, 20)

    assert [at for at, _ in recorder.of("start")] == [0.0, 1.0, 3.0, 7.0, 12.0, 17.0]
    assert [r.delay for r in tree.history] == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert outcome.final_state == Stopped()  # shut down while the last restart waited


async def test_backoff_jitter_comes_from_the_injected_random(autojump_clock: MockClock) -> None:
    backoff = RestartBackoff(initial=1, factor=2, maximum=8, jitter=0.5)
    expected_rng = random.Random(42)
    expected = [backoff.delay(n, expected_rng) for n in range(4)]
    recorder = Recorder()
    tree = SupervisionTree(
        "tree",
        workers(
            recorder, "x", x=(Life(lasts=0), Life(lasts=0), Life(lasts=0), Life(lasts=0), FOREVER)
        ),
        intensity=RestartIntensity(max_restarts=10, period=100),
        backoff=backoff,
        rng=random.Random(42),
    )

    await run_until_shutdown(tree, 30)

    assert [r.delay for r in tree.history] == expected
    starts = [at for at, _ in recorder.of("start")]
    assert [b - a for a, b in itertools.pairwise(starts)] == pytest.approx(expected)
    assert len(set(expected)) == 4 and expected != [1.0, 2.0, 4.0, 8.0]


def test_backoff_delay_and_validation() -> None:
    plain = RestartBackoff(initial=1, factor=3, maximum=10, jitter=0)
    assert [plain.delay(n, random.Random(0)) for n in range(4)] == [1, 3, 9, 10]
    jittery = RestartBackoff(initial=4, maximum=4, jitter=0.25)
    rng = random.Random(1)
    assert all(3 <= jittery.delay(n, rng) <= 5 for n in range(50))
    assert RestartBackoff(initial=0).delay(5, rng) == 0
    for bad in (
        {"initial": -1},
        {"initial": 2, "maximum": 1},
        {"factor": 0.5},
        {"jitter": 1.0},
    ):
        with pytest.raises(ValueError):
            RestartBackoff(**bad)


def test_configuration_is_validated() -> None:
    with pytest.raises(ValueError, match="max_restarts"):
        RestartIntensity(max_restarts=-1)
    with pytest.raises(ValueError, match="period"):
        RestartIntensity(period=0)
    with pytest.raises(ValueError, match="shutdown_timeout"):
        ChildSpec("x", Recorder().factory("x"), shutdown_timeout=-1)
    with pytest.raises(ValueError, match="duplicate child ids x"):
        SupervisionTree("tree", [ChildSpec("x", Recorder().factory("x"))] * 2)
    with pytest.raises(ValueError, match="history_limit"):
        SupervisionTree("tree", [], history_limit=0)


# -- orderly shutdown -------------------------------------------------------------------


async def test_orderly_shutdown_gives_each_child_its_own_deadline(
    autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    children = [
        ChildSpec("a", recorder.factory("a", Life(linger=2)), shutdown_timeout=5),
        ChildSpec("b", recorder.factory("b", Life(linger=4)), shutdown_timeout=1),
        ChildSpec("c", recorder.factory("c")),
    ]
    tree = SupervisionTree("tree", children, journal=recorder.journal)

    with caplog.at_level(logging.WARNING, logger="fsmflow.supervisor"):
        outcome = await run_until_shutdown(tree, 10)

    assert outcome.exit is TERMINATED and outcome.final_state == Stopped()
    # c stops at once; b ignores cancellation past its 1s deadline, so the tree moves on
    # to a at 11; a lingers 2s, within its 5s.
    assert recorder.of("stopping") == [(10.0, "c"), (10.0, "b"), (11.0, "a")]
    assert recorder.exits() == [
        (10.0, "c", CANCELLED),
        (13.0, "a", CANCELLED),
        (14.0, "b", CANCELLED),
    ]
    # No child outlives the tree: its run returns once b, left behind, has finished.
    assert trio.current_time() == 14.0
    assert any("'b' did not stop within" in r.getMessage() for r in caplog.records)
    assert recorder.completions("tree") == [TERMINATED]
    assert tree.watcher.closed and tree.state == Stopped()


async def test_shutdown_before_the_run_starts_no_child(autojump_clock: MockClock) -> None:
    recorder = Recorder()
    tree = SupervisionTree("tree", workers(recorder, "a", "b"))
    tree.shutdown()
    tree.shutdown()

    outcome = await tree.run()

    assert outcome.exit is TERMINATED and outcome.final_state == Stopped()
    assert recorder.entries == []
    assert [s.running for s in tree.children_status()] == [False, False]


async def test_the_watcher_follows_the_tree(autojump_clock: MockClock) -> None:
    recorder = Recorder()
    tree = SupervisionTree(
        "tree", workers(recorder, "x", x=(Life(lasts=1), FOREVER)), backoff=HALF_SECOND
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(tree.run)
        restarting = await tree.watcher.wait_for(lambda s: isinstance(s, Restarting))
        assert isinstance(restarting, Restarting)
        assert [(p.child_id, p.due) for p in restarting.pending] == [("x", 1.5)]
        assert not tree.child_status("x").running
        await tree.watcher.wait_for(lambda s: isinstance(s, Running))
        assert trio.current_time() == 1.5
        assert tree.child_status("x").running and tree.child_status("x").restarts == 1
        tree.shutdown()
    assert tree.watcher.closed and tree.watcher.current() == Stopped()


# -- completion events, factories -------------------------------------------------------


async def test_a_crashing_child_writes_one_completion_event_per_run(
    autojump_clock: MockClock,
) -> None:
    recorder = Recorder()
    crash = Life(lasts=1)
    tree = SupervisionTree(
        "tree",
        workers(recorder, "x", x=(crash, crash, crash, FOREVER)),
        backoff=AT_ONCE,
        journal=recorder.journal,
    )

    await run_until_shutdown(tree, 10)

    assert len(recorder.of("start")) == 4
    assert recorder.completions("x") == [FAILED, FAILED, FAILED, CANCELLED]
    assert recorder.completions("tree") == [TERMINATED]


async def test_a_factory_that_raises_is_a_failed_run(autojump_clock: MockClock) -> None:
    recorder = Recorder()
    make = recorder.factory("x")
    calls = 0

    def flaky_factory() -> Worker:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("no connection")
        return make()

    contexts = 0

    def context_factory() -> None:
        nonlocal contexts
        contexts += 1

    tree = SupervisionTree(
        "tree",
        [ChildSpec("x", flaky_factory, context_factory=context_factory)],
        backoff=HALF_SECOND,
    )

    await run_until_shutdown(tree, 5)

    (record,) = tree.history
    assert (record.exit, record.at) == (FAILED, 0.0)
    assert record.error is not None and "could not start: OSError: no connection" in record.error
    assert recorder.of("start") == [(0.5, "x")]
    assert contexts == 1
    assert recorder.completions("x") == [CANCELLED]  # the failed start wrote none


async def test_the_child_spec_initial_state_is_used(autojump_clock: MockClock) -> None:
    recorder = Recorder()
    tree = SupervisionTree(
        "tree",
        [
            ChildSpec(
                "x",
                recorder.factory("x"),
                restart=RestartType.TRANSIENT,
                initial_state=Finished(),
            )
        ],
    )

    await run_until_shutdown(tree, 1)

    status = tree.child_status("x")
    assert status.last_outcome is not None and status.last_outcome.exit is TERMINATED
    assert status.last_outcome.final_state == Finished() and status.restarts == 0


class FaultyTree(SupervisionTree):
    """A tree whose own dispatch breaks once it is running (a stand-in for a tree bug)."""

    async def dispatch_state(
        self, state: TreeState, ctx: TreeContext
    ) -> EventLoopDirective[TreeEvent]:
        if isinstance(state, Running):
            raise RuntimeError("tree bug")
        return await super().dispatch_state(state, ctx)


async def test_a_fault_of_the_tree_itself_stops_children_then_fails(
    autojump_clock: MockClock,
) -> None:
    recorder = Recorder()
    tree = FaultyTree("tree", workers(recorder, "a", "b"))

    with pytest.raises(SupervisorError, match="tree bug") as info:
        await tree.run()

    assert not isinstance(info.value, RestartIntensityExceeded)
    assert recorder.exits() == [(0.0, "b", CANCELLED), (0.0, "a", CANCELLED)]
    assert isinstance(tree.state, Failed) and "tree bug" in tree.state.reason


# -- nesting --------------------------------------------------------------------------


async def test_an_inner_tree_that_gives_up_is_restarted_by_the_outer_one(
    autojump_clock: MockClock,
) -> None:
    recorder = Recorder()
    make_worker = recorder.factory("w", Life(lasts=1))

    def make_inner() -> SupervisionTree:
        return SupervisionTree(
            "inner",
            [ChildSpec("w", make_worker)],
            intensity=RestartIntensity(max_restarts=1, period=10),
            backoff=AT_ONCE,
            journal=recorder.journal,
        )

    outer = SupervisionTree(
        "outer",
        [ChildSpec("inner", make_inner), ChildSpec("steady", recorder.factory("steady"))],
        backoff=HALF_SECOND,
    )

    outcome = await run_until_shutdown(outer, 5)

    assert outcome.exit is TERMINATED
    assert [(r.child_id, r.exit, r.at, r.delay) for r in outer.history] == [
        ("inner", FAILED, 2.0, 0.5),
        ("inner", FAILED, 4.5, 1.0),
    ]
    assert all(r.error and "restart intensity exceeded" in r.error for r in outer.history)
    assert recorder.completions("inner") == [FAILED, FAILED]
    inner = outer.child_status("inner")
    assert inner.restarts == 1 and inner.last_outcome is not None
    assert isinstance(inner.last_outcome.error, RestartIntensityExceeded)
    assert [at for at, child in recorder.of("start") if child == "w"] == [0.0, 1.0, 2.5, 3.5]
    assert outer.child_status("steady").restarts == 0


async def test_an_orderly_shutdown_reaches_into_inner_trees_in_order(
    autojump_clock: MockClock,
) -> None:
    recorder = Recorder()

    def make_inner() -> SupervisionTree:
        return SupervisionTree("inner", workers(recorder, "x", "y"), journal=recorder.journal)

    outer = SupervisionTree(
        "outer",
        [
            ChildSpec("a", recorder.factory("a")),
            ChildSpec("inner", make_inner),
            ChildSpec("b", recorder.factory("b")),
        ],
    )

    await run_until_shutdown(outer, 10)

    assert [child for _, child, _ in recorder.exits()] == ["b", "y", "x", "a"]
    assert recorder.completions("inner") == [TERMINATED]


# -- the spec ---------------------------------------------------------------------------


def test_the_spec_is_reachable_from_the_class_and_draws(
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = SupervisionTree.fsm_spec()
    assert spec is SupervisionTree.fsm_spec()
    assert spec.state_names() == (
        "Starting",
        "Running",
        "Restarting",
        "ShuttingDown",
        "Escalating",
        "Stopped",
        "Failed",
    )
    assert cli_main(["diagram", "fsmflow.supervisor:SupervisionTree"]) == 0
    diagram = capsys.readouterr().out
    assert "Restarting" in diagram and "ChildExited" in diagram


# -- asyncio ----------------------------------------------------------------------------


def test_restarts_and_shutdown_on_asyncio() -> None:
    recorder = Recorder()
    crash = Life(lasts=0)
    tree = SupervisionTree(
        "tree",
        [
            ChildSpec("flaky", recorder.factory("flaky", crash, crash, FOREVER)),
            ChildSpec("steady", recorder.factory("steady")),
        ],
        backoff=AT_ONCE,
        journal=recorder.journal,
    )

    async def body() -> RunOutcome[TreeState]:
        async with anyio.create_task_group() as tasks:
            result: list[RunOutcome[TreeState]] = []

            async def run() -> None:
                result.append(await tree.run())

            tasks.start_soon(run)
            await tree.watcher.wait_for(
                lambda s: isinstance(s, Running) and tree.child_status("flaky").restarts == 2
            )
            tree.shutdown()
        return result[0]

    outcome = anyio.run(body, backend="asyncio")

    assert outcome.exit is TERMINATED
    assert [(r.child_id, r.exit) for r in tree.history] == [("flaky", FAILED)] * 2
    assert recorder.completions("flaky") == [FAILED, FAILED, CANCELLED]
    assert recorder.completions("steady") == [CANCELLED]
    assert tree.child_status("steady").restarts == 0


def test_intensity_exceeded_on_asyncio() -> None:
    recorder = Recorder()
    tree = SupervisionTree(
        "tree",
        workers(recorder, "steady", "flaky", flaky=(Life(lasts=0),)),
        intensity=RestartIntensity(max_restarts=2, period=60),
        backoff=AT_ONCE,
    )

    async def body() -> None:
        await tree.run()

    with pytest.raises(RestartIntensityExceeded) as info:
        anyio.run(body, backend="asyncio")

    assert [r.restarted for r in info.value.history] == [("flaky",), ("flaky",), ()]
    assert recorder.completions("steady") == [CANCELLED]
    assert recorder.completions("flaky") == [FAILED] * 3
