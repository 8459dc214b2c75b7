"""Supervision trees: strategies, restart types, intensity, backoff, orderly shutdown,
nesting. Every test runs on trio and on asyncio, each under virtual time (trio's
``MockClock``; a virtual-time asyncio loop), so every expected instant below is exact."""

from __future__ import annotations

import itertools
import logging
import random

import anyio
import pytest

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

from ._tree_clock import each_backend_mock_clock
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
        await anyio.sleep(after)
        tree.shutdown()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(shut_down_later)
        outcome = await tree.run()
        tasks.cancel_scope.cancel()
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
@each_backend_mock_clock
async def test_strategy_decides_which_children_restart_and_in_which_order(
    strategy: RestartStrategy, stopped: list[str], restarted: list[str]
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


@each_backend_mock_clock
async def test_a_grouped_restart_stops_temporary_siblings_for_good() -> None:
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
    assert recorder.completions("temp") == [CANCELLED]
    # As in OTP, the tree forgets a temporary child once the group restart stopped it.
    assert [s.child_id for s in tree.which_children()] == ["a", "b"]


@each_backend_mock_clock
async def test_a_temporary_child_that_ended_is_forgotten() -> None:
    recorder = Recorder()
    children = [
        ChildSpec("a", recorder.factory("a")),
        ChildSpec("temp", recorder.factory("temp", Life(lasts=1)), RestartType.TEMPORARY),
    ]
    tree = SupervisionTree("tree", children)

    await run_until_shutdown(tree, 5)

    assert [s.child_id for s in tree.which_children()] == ["a"]
    assert tree.history == ()


@pytest.mark.parametrize("strategy", [RestartStrategy.ONE_FOR_ALL, RestartStrategy.REST_FOR_ONE])
@each_backend_mock_clock
async def test_a_group_restart_brings_back_a_transient_child_that_ended_normally(
    strategy: RestartStrategy,
) -> None:
    """OTP's rule: a group restart starts every child whose spec the tree holds, and a
    transient child that ended normally keeps its spec."""
    recorder = Recorder()
    children = [
        ChildSpec(
            "done",
            recorder.factory("done", Life(lasts=1, crashes=False), FOREVER),
            RestartType.TRANSIENT,
        ),
        ChildSpec("b", recorder.factory("b", Life(lasts=2), FOREVER)),
    ]
    tree = SupervisionTree("tree", children, strategy=strategy, backoff=HALF_SECOND)

    await run_until_shutdown(tree, 5)

    expected = ("done", "b") if strategy is RestartStrategy.ONE_FOR_ALL else ("b",)
    assert tree.history[0].restarted == expected
    starts = recorder.of("start")
    assert starts[:2] == [(0.0, "done"), (0.0, "b")]
    assert starts[2:] == [(2.5, child) for child in expected]
    assert recorder.completions("done")[0] is TERMINATED


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
@each_backend_mock_clock
async def test_restart_type_decides_whether_an_exit_is_restarted(
    restart: RestartType, crashes: bool, restarted: bool
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
@each_backend_mock_clock
async def test_a_child_cancelled_by_someone_else_ended_normally(
    restart: RestartType, restarted: bool
) -> None:
    recorder = Recorder()
    tree = SupervisionTree(
        "tree", [ChildSpec("x", recorder.factory("x"), restart=restart)], backoff=HALF_SECOND
    )
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(tree.run)
        await anyio.sleep(1)
        handle = tree.child_handle("x")
        assert handle is not None
        handle.cancel()
        await anyio.sleep(1)
        assert tree.child_status("x").running is restarted
        tree.shutdown()

    assert [record.exit for record in tree.history] == [CANCELLED] * restarted


# -- intensity ------------------------------------------------------------------------


@each_backend_mock_clock
async def test_exceeding_the_intensity_stops_children_in_reverse_order_and_fails_upward() -> None:
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
@each_backend_mock_clock
async def test_the_intensity_window_slides_on_the_loop_clock(
    period: float, fails_at: float | None
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
        assert anyio.current_time() == fails_at


# -- backoff --------------------------------------------------------------------------


@each_backend_mock_clock
async def test_backoff_grows_exponentially_up_to_its_maximum() -> None:
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


@each_backend_mock_clock
async def test_backoff_jitter_comes_from_the_injected_random() -> None:
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


# -- orderly shutdown -------------------------------------------------------------------


@each_backend_mock_clock
async def test_orderly_shutdown_gives_each_child_its_own_deadline(
    caplog: pytest.LogCaptureFixture,
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

    assert outcome.exit is TERMINATED
    assert outcome.final_state == Stopped("shutdown requested", abandoned=("b",))
    # c stops at once; b ignores cancellation past its 1s deadline, so the tree abandons
    # it and moves on to a at 11; a lingers 2s, within its 5s.
    assert recorder.of("stopping") == [(10.0, "c"), (10.0, "b"), (11.0, "a")]
    assert recorder.exits() == [
        (10.0, "c", CANCELLED),
        (13.0, "a", CANCELLED),
        (14.0, "b", CANCELLED),
    ]
    # No child outlives the tree: its run returns once b, left behind, has finished.
    assert anyio.current_time() == 14.0
    assert any("'b' did not stop within" in r.getMessage() for r in caplog.records)
    assert recorder.completions("tree") == [TERMINATED]
    assert tree.watcher.closed and tree.state == outcome.final_state


@each_backend_mock_clock
async def test_shutdown_before_the_run_starts_no_child() -> None:
    recorder = Recorder()
    tree = SupervisionTree("tree", workers(recorder, "a", "b"))
    tree.shutdown()
    tree.shutdown()

    outcome = await tree.run()

    assert outcome.exit is TERMINATED and outcome.final_state == Stopped()
    assert recorder.entries == []
    assert [s.running for s in tree.children_status()] == [False, False]


@each_backend_mock_clock
async def test_the_watcher_follows_the_tree() -> None:
    recorder = Recorder()
    tree = SupervisionTree(
        "tree", workers(recorder, "x", x=(Life(lasts=1), FOREVER)), backoff=HALF_SECOND
    )
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(tree.run)
        restarting = await tree.watcher.wait_for(lambda s: isinstance(s, Restarting))
        assert isinstance(restarting, Restarting)
        assert [(p.child_id, p.due) for p in restarting.pending] == [("x", 1.5)]
        assert not tree.child_status("x").running
        await tree.watcher.wait_for(lambda s: isinstance(s, Running))
        assert anyio.current_time() == 1.5
        assert tree.child_status("x").running and tree.child_status("x").restarts == 1
        tree.shutdown()
    assert tree.watcher.closed and tree.watcher.current() == Stopped()


# -- completion events, factories -------------------------------------------------------


@each_backend_mock_clock
async def test_a_crashing_child_writes_one_completion_event_per_run() -> None:
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


@each_backend_mock_clock
async def test_a_restart_whose_factory_raises_is_a_failed_run() -> None:
    recorder = Recorder()
    make = recorder.factory("x", Life(lasts=1), FOREVER)
    calls = 0

    def flaky_factory() -> Worker:
        nonlocal calls
        calls += 1
        if calls == 2:
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

    first, second = tree.history
    assert (first.exit, first.at, first.delay) == (FAILED, 1.0, 0.5)
    # The failed restart counts toward the intensity and backs off further.
    assert (second.exit, second.at, second.delay) == (FAILED, 1.5, 1.0)
    assert second.error is not None
    assert "could not start: OSError: no connection" in second.error
    assert recorder.of("start") == [(0.0, "x"), (2.5, "x")]
    assert contexts == 2
    assert recorder.completions("x") == [FAILED, CANCELLED]  # the failed start wrote none
    assert tree.child_status("x").restarts == 2


@each_backend_mock_clock
async def test_the_child_spec_initial_state_is_used() -> None:
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


@each_backend_mock_clock
async def test_a_fault_of_the_tree_itself_stops_children_then_fails() -> None:
    recorder = Recorder()
    tree = FaultyTree("tree", workers(recorder, "a", "b"))

    with pytest.raises(SupervisorError, match="tree bug") as info:
        await tree.run()

    assert not isinstance(info.value, RestartIntensityExceeded)
    assert recorder.exits() == [(0.0, "b", CANCELLED), (0.0, "a", CANCELLED)]
    assert isinstance(tree.state, Failed) and "tree bug" in tree.state.reason


# -- nesting --------------------------------------------------------------------------


@each_backend_mock_clock
async def test_an_inner_tree_that_gives_up_is_restarted_by_the_outer_one() -> None:
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


@each_backend_mock_clock
async def test_an_orderly_shutdown_reaches_into_inner_trees_in_order() -> None:
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
