"""How a tree ends: auto-shutdown on significant children (OTP's ``auto_shutdown``), and
children that ignore being stopped (abandoned after their deadline, reported in the
tree's outcome). On trio and asyncio, under virtual time."""

from __future__ import annotations

import logging

import anyio
import pytest

from fsmflow.supervisor import (
    AutoShutdown,
    ChildSpec,
    ChildState,
    ChildTemplate,
    ExitKind,
    RestartBackoff,
    RestartType,
    Running,
    ShuttingDown,
    Stopped,
    SupervisionTree,
    SupervisorPool,
)

from ._tree_clock import each_backend_mock_clock
from ._tree_workers import FOREVER, Life, Recorder, Worker

CANCELLED = ExitKind.CANCELLED
TERMINATED = ExitKind.TERMINATED
FAILED = ExitKind.FAILED
ENDS = Life(lasts=1, crashes=False)
CRASHES = Life(lasts=1, crashes=True)
HALF_SECOND = RestartBackoff(initial=0.5, jitter=0.0)


async def run_for(tree: SupervisionTree, seconds: float) -> None:
    """Run ``tree``; shut it down after ``seconds`` unless it ended before."""
    async with anyio.create_task_group() as tasks:
        handle = await tree.start(tasks)
        with anyio.move_on_after(seconds):
            await handle.outcome()
        handle.shutdown()


# -- auto-shutdown --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("restart", "life", "shuts_down"),
    [
        (RestartType.TRANSIENT, ENDS, True),
        (RestartType.TRANSIENT, CRASHES, False),  # restarted, so it did not end
        (RestartType.TEMPORARY, ENDS, True),
        (RestartType.TEMPORARY, CRASHES, True),
    ],
)
@each_backend_mock_clock
async def test_any_significant_child_ending_shuts_the_tree_down(
    restart: RestartType, life: Life, shuts_down: bool
) -> None:
    recorder = Recorder()
    tree = SupervisionTree(
        "tree",
        [
            ChildSpec("a", recorder.factory("a")),
            ChildSpec("s", recorder.factory("s", life, FOREVER), restart, significant=True),
            ChildSpec("b", recorder.factory("b")),
        ],
        auto_shutdown=AutoShutdown.ANY_SIGNIFICANT,
        backoff=HALF_SECOND,
        journal=recorder.journal,
    )

    await run_for(tree, 10)

    outcome = tree.last_outcome
    assert outcome is not None and outcome.exit is TERMINATED
    if shuts_down:
        assert anyio.current_time() == 1.0
        assert outcome.final_state == Stopped(
            "auto_shutdown (any_significant): significant child 's' ended"
        )
        # The others are stopped in reverse start order.
        assert [(c, k) for _, c, k in recorder.exits()][-2:] == [("b", CANCELLED), ("a", CANCELLED)]
    else:
        assert anyio.current_time() == 10.0
        assert outcome.final_state == Stopped()
    assert recorder.completions("tree") == [TERMINATED]


@each_backend_mock_clock
async def test_all_significant_waits_for_the_last_significant_child() -> None:
    recorder = Recorder()
    tree = SupervisionTree(
        "tree",
        [
            ChildSpec("a", recorder.factory("a")),
            ChildSpec("s1", recorder.factory("s1", ENDS), RestartType.TRANSIENT, significant=True),
            ChildSpec(
                "s2",
                recorder.factory("s2", Life(lasts=3, crashes=False)),
                RestartType.TEMPORARY,
                significant=True,
            ),
        ],
        auto_shutdown=AutoShutdown.ALL_SIGNIFICANT,
    )
    states: list[object] = []

    async with anyio.create_task_group() as tasks:
        handle = await tree.start(tasks)
        await anyio.sleep(2)
        states.append(handle.state)
        assert handle.child_status("s1").state is ChildState.STOPPED
        outcome = await handle.outcome()

    assert states == [Running()]  # s1 ended at 1, but s2 still runs
    assert anyio.current_time() == 3.0
    assert outcome.final_state == Stopped(
        "auto_shutdown (all_significant): the last significant child, 's2', ended"
    )


@each_backend_mock_clock
async def test_terminating_a_significant_child_does_not_shut_the_tree_down() -> None:
    recorder = Recorder()
    tree = SupervisionTree(
        "tree",
        [ChildSpec("s", recorder.factory("s"), RestartType.TRANSIENT, significant=True)],
        auto_shutdown=AutoShutdown.ANY_SIGNIFICANT,
    )
    async with anyio.create_task_group() as tasks:
        handle = await tree.start(tasks)
        await handle.terminate_child("s")
        await anyio.sleep(5)
        assert not handle.done
        handle.shutdown()


@each_backend_mock_clock
async def test_a_tree_that_shut_itself_down_ended_normally_for_its_parent() -> None:
    recorder = Recorder()

    def make_inner() -> SupervisionTree:
        return SupervisionTree(
            "inner",
            [
                ChildSpec(
                    "job", recorder.factory("job", ENDS), RestartType.TRANSIENT, significant=True
                )
            ],
            auto_shutdown=AutoShutdown.ANY_SIGNIFICANT,
        )

    outer = SupervisionTree(
        "outer",
        [
            ChildSpec("inner", make_inner, RestartType.TRANSIENT),
            ChildSpec("a", recorder.factory("a")),
        ],
    )
    await run_for(outer, 5)

    inner = outer.child_status("inner")
    assert inner.state is ChildState.STOPPED and inner.restarts == 0
    assert inner.last_outcome is not None and inner.last_outcome.exit is TERMINATED
    assert outer.history == ()


@each_backend_mock_clock
async def test_a_pool_with_all_significant_ends_with_its_last_child() -> None:
    recorder = Recorder()
    pool = SupervisorPool[float](
        "pool",
        ChildTemplate(
            "job",
            lambda lasts: Worker("job", Life(lasts=lasts, crashes=False), recorder),
            restart=RestartType.TEMPORARY,
            significant=True,
        ),
        auto_shutdown=AutoShutdown.ALL_SIGNIFICANT,
    )
    async with anyio.create_task_group() as tasks:
        handle = await pool.start(tasks)
        for lasts in (1.0, 4.0, 2.0):
            await handle.start_child(lasts)
        outcome = await handle.outcome()
    assert anyio.current_time() == 4.0
    assert isinstance(outcome.final_state, Stopped) and "'job-2'" in outcome.final_state.reason


@each_backend_mock_clock
async def test_the_shutdown_reason_is_visible_while_shutting_down() -> None:
    recorder = Recorder()
    tree = SupervisionTree(
        "tree",
        [
            ChildSpec("slow", recorder.factory("slow", Life(linger=2))),
            ChildSpec("s", recorder.factory("s", ENDS), RestartType.TEMPORARY, significant=True),
        ],
        auto_shutdown=AutoShutdown.ANY_SIGNIFICANT,
    )
    async with anyio.create_task_group() as tasks:
        handle = await tree.start(tasks)
        state = await handle.wait_for(lambda s: isinstance(s, ShuttingDown))
    assert isinstance(state, ShuttingDown) and "'s' ended" in state.reason


# -- children that ignore being stopped -------------------------------------------------------


@each_backend_mock_clock
async def test_a_child_that_ignores_shutdown_is_abandoned_and_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = Recorder()
    tree = SupervisionTree(
        "tree",
        [
            ChildSpec("a", recorder.factory("a")),
            ChildSpec(
                "stubborn", recorder.factory("stubborn", Life(ignores_stop=100)), shutdown_timeout=2
            ),
            ChildSpec("c", recorder.factory("c")),
        ],
        journal=recorder.journal,
    )
    seen: dict[str, object] = {}

    async def watch() -> None:
        await tree.watcher.wait_for(lambda s: isinstance(s, Stopped))
        seen["at"] = anyio.current_time()
        seen["stubborn"] = tree.child_status("stubborn").state
        seen["counts"] = tree.count_children()

    with caplog.at_level(logging.WARNING, logger="fsmflow.supervisor"):
        async with anyio.create_task_group() as tasks:
            handle = await tree.start(tasks)
            tasks.start_soon(watch)
            await anyio.sleep(1)
            handle.shutdown()
            outcome = await handle.outcome()

    # The tree stopped waiting for it at its deadline, stopped 'a', and said so ...
    assert outcome.exit is TERMINATED
    assert outcome.final_state == Stopped("shutdown requested", abandoned=("stubborn",))
    assert seen["at"] == 3.0 and seen["stubborn"] is ChildState.ABANDONED
    assert [(c, at) for at, c, _ in recorder.exits()] == [
        ("c", 1.0),
        ("a", 3.0),
        ("stubborn", 101.0),
    ]
    assert recorder.completions("tree") == [TERMINATED]
    assert any("'stubborn' did not stop" in r.getMessage() for r in caplog.records)
    # ... but its run returns only once that task ended: nothing outlives the tree.
    assert anyio.current_time() == 101.0
    assert tree.child_status("stubborn").state is ChildState.STOPPED


@each_backend_mock_clock
async def test_an_abandoned_pool_child_is_reported() -> None:
    recorder = Recorder()
    pool = SupervisorPool[float](
        "pool",
        ChildTemplate(
            "w",
            lambda ignores: Worker("w", Life(ignores_stop=ignores), recorder),
            shutdown_timeout=1,
        ),
    )
    async with anyio.create_task_group() as tasks:
        handle = await pool.start(tasks)
        for ignores in (0.0, 30.0, 0.5):
            await handle.start_child(ignores)
        handle.shutdown()
        outcome = await handle.outcome()
    assert outcome.final_state == Stopped(abandoned=("w-2",))
    assert anyio.current_time() == 30.0
