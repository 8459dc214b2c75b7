"""Dynamic children through the tree's handle: start, terminate, restart and delete a
child of a running tree, which_children / count_children, requests from many tasks, and
a pool of identical children started with their own arguments (OTP's
simple_one_for_one). On trio and asyncio, under virtual time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from fsmflow.supervisor import (
    ChildAlreadyPresent,
    ChildCounts,
    ChildNotFound,
    ChildNotStopped,
    ChildSpec,
    ChildStartError,
    ChildState,
    ChildTemplate,
    ExitKind,
    PoolHandle,
    RestartBackoff,
    RestartIntensity,
    RestartStrategy,
    RestartType,
    Running,
    Stopped,
    SupervisionTree,
    SupervisorPool,
    TreeHandle,
    TreeNotRunning,
)

from ._tree_clock import each_backend_mock_clock
from ._tree_workers import FOREVER, Life, Recorder, Worker

FAILED = ExitKind.FAILED
CANCELLED = ExitKind.CANCELLED
RUNNING = ChildState.RUNNING
RESTARTING = ChildState.RESTARTING
STOPPED = ChildState.STOPPED
HALF_SECOND = RestartBackoff(initial=0.5, jitter=0.0)


@asynccontextmanager
async def running(tree: SupervisionTree) -> AsyncIterator[TreeHandle]:
    """Start ``tree``; shut it down when the block ends."""
    async with anyio.create_task_group() as tasks:
        handle = await tree.start(tasks)
        yield handle
        handle.shutdown()


def states(handle: TreeHandle | PoolHandle[int]) -> dict[str, ChildState]:
    return {status.child_id: status.state for status in handle.which_children()}


# -- start_child ----------------------------------------------------------------------------


@each_backend_mock_clock
async def test_start_child_adds_a_child_last_and_returns_once_it_started() -> None:
    recorder = Recorder()
    tree = SupervisionTree("tree", [ChildSpec("a", recorder.factory("a"))], backoff=HALF_SECOND)
    async with running(tree) as handle:
        await anyio.sleep(1)
        status = await handle.start_child(ChildSpec("b", recorder.factory("b")))
        assert (status.child_id, status.state, status.restarts) == ("b", RUNNING, 0)
        assert recorder.of("running")[-1] == (1.0, "b")  # it started before the reply
        await handle.start_child(ChildSpec("c", recorder.factory("c", Life(lasts=1), FOREVER)))
        assert states(handle) == {"a": RUNNING, "b": RUNNING, "c": RUNNING}
        assert handle.count_children() == ChildCounts(3, 3, 0, 0, 0)
        await anyio.sleep(1.2)
        # A dynamic child is restarted by the strategy like any other.
        assert states(handle)["c"] is RESTARTING
        assert handle.count_children() == ChildCounts(3, 2, 1, 0, 0)
        await anyio.sleep(5)
        assert handle.child_status("c").restarts == 1
    # The shutdown stops dynamic children first: reverse start order.
    assert [child for _, child, _ in recorder.exits()][-3:] == ["c", "b", "a"]


@each_backend_mock_clock
async def test_start_child_refusals() -> None:
    recorder = Recorder()
    tree = SupervisionTree("tree", [ChildSpec("a", recorder.factory("a"))])
    async with running(tree) as handle:
        with pytest.raises(ChildAlreadyPresent) as present:
            await handle.start_child(ChildSpec("a", recorder.factory("a")))
        assert present.value.state is RUNNING and present.value.child_id == "a"

        def refuse() -> Worker:
            raise OSError("no database")

        with pytest.raises(ChildStartError, match=r"'b' could not start.*no database") as info:
            await handle.start_child(ChildSpec("b", refuse))
        assert isinstance(info.value.__cause__, Exception)
        broken = Life(cannot_start="build_state_machine")
        with pytest.raises(ChildStartError, match="build_state_machine is broken"):
            await handle.start_child(ChildSpec("c", recorder.factory("c", broken)))
        with pytest.raises(ValueError, match=r"'d' is significant.*NEVER"):
            await handle.start_child(
                ChildSpec("d", recorder.factory("d"), RestartType.TRANSIENT, significant=True)
            )
        with pytest.raises(TypeError, match="ChildSpec"):
            await handle.start_child("e")  # type: ignore[arg-type]
        # Nothing of a refused start is kept, and no restart was counted.
        assert list(states(handle)) == ["a"]
        assert handle.history == ()


@each_backend_mock_clock
async def test_requests_from_many_tasks_are_served_one_by_one() -> None:
    recorder = Recorder()
    tree = SupervisionTree("tree", [])
    async with running(tree) as handle:
        results: dict[str, ChildState] = {}

        async def add(child: str) -> None:
            results[child] = (
                await handle.start_child(ChildSpec(child, recorder.factory(child)))
            ).state

        async with anyio.create_task_group() as callers:
            for i in range(20):
                callers.start_soon(add, f"w{i}")
        assert results == {f"w{i}": RUNNING for i in range(20)}
        assert handle.count_children().running == 20
        # Each child started only after the one before it reported started.
        steps = [e.what for e in recorder.entries if e.what in ("start", "running")]
        assert steps == ["start", "running"] * 20


# -- terminate, restart, delete -----------------------------------------------------------


@each_backend_mock_clock
async def test_terminate_restart_and_delete_a_child() -> None:
    recorder = Recorder()
    tree = SupervisionTree(
        "tree",
        [ChildSpec(c, recorder.factory(c), shutdown_timeout=2) for c in "abc"],
        journal=recorder.journal,
    )
    async with running(tree) as handle:
        await anyio.sleep(1)
        await handle.terminate_child("b")
        assert states(handle) == {"a": RUNNING, "b": STOPPED, "c": RUNNING}
        assert recorder.completions("b") == [CANCELLED]
        await anyio.sleep(5)
        assert states(handle)["b"] is STOPPED  # a terminated child is never restarted
        assert handle.history == ()

        status = await handle.restart_child("b")
        assert (status.state, status.restarts) == (RUNNING, 1)
        with pytest.raises(ChildNotStopped) as not_stopped:
            await handle.restart_child("b")
        assert not_stopped.value.state is RUNNING
        with pytest.raises(ChildNotStopped):
            await handle.delete_child("b")

        await handle.terminate_child("b")
        await handle.terminate_child("b")  # terminating a stopped child changes nothing
        await handle.delete_child("b")
        assert list(states(handle)) == ["a", "c"]
        for request in (handle.terminate_child, handle.restart_child, handle.delete_child):
            with pytest.raises(ChildNotFound, match="no child 'b'"):
                await request("b")
    assert handle.history == ()
    assert recorder.completions("tree") == [ExitKind.TERMINATED]


@each_backend_mock_clock
async def test_terminating_a_child_that_waits_to_restart_cancels_the_restart() -> None:
    recorder = Recorder()
    tree = SupervisionTree(
        "tree",
        [
            ChildSpec("a", recorder.factory("a")),
            ChildSpec("x", recorder.factory("x", Life(lasts=1))),
        ],
        backoff=RestartBackoff(initial=10, jitter=0),
    )
    async with running(tree) as handle:
        await anyio.sleep(2)
        assert states(handle)["x"] is RESTARTING
        for request in (handle.restart_child, handle.delete_child):
            with pytest.raises(ChildNotStopped) as info:
                await request("x")
            assert info.value.state is RESTARTING
        await handle.terminate_child("x")
        assert isinstance(handle.state, Running)
        await anyio.sleep(20)
        assert states(handle) == {"a": RUNNING, "x": STOPPED}
        assert [child for _, child in recorder.of("start")] == ["a", "x"]


@each_backend_mock_clock
async def test_a_temporary_child_is_forgotten_once_terminated() -> None:
    recorder = Recorder()
    tree = SupervisionTree(
        "tree", [ChildSpec("t", recorder.factory("t"), restart=RestartType.TEMPORARY)]
    )
    async with running(tree) as handle:
        await handle.terminate_child("t")
        assert handle.which_children() == ()


@each_backend_mock_clock
async def test_a_group_restart_brings_back_a_terminated_child() -> None:
    """OTP: a child stopped with terminate_child keeps its spec, and a one_for_all
    restart starts every child whose spec the tree holds."""
    recorder = Recorder()
    tree = SupervisionTree(
        "tree",
        [
            ChildSpec("a", recorder.factory("a")),
            ChildSpec("x", recorder.factory("x", Life(lasts=2), FOREVER)),
        ],
        strategy=RestartStrategy.ONE_FOR_ALL,
        backoff=HALF_SECOND,
    )
    async with running(tree) as handle:
        await handle.terminate_child("a")
        await anyio.sleep(3)
        assert states(handle) == {"a": RUNNING, "x": RUNNING}
    assert tree.history[0].restarted == ("a", "x")


# -- the run's lifetime -------------------------------------------------------------------


@each_backend_mock_clock
async def test_requests_outside_the_run_are_refused() -> None:
    recorder = Recorder()
    tree = SupervisionTree("tree", [ChildSpec("a", recorder.factory("a"))])
    async with running(tree) as handle:
        pass
    assert (await handle.outcome()).final_state == Stopped()
    with pytest.raises(TreeNotRunning, match="'tree': the tree is not running"):
        await handle.start_child(ChildSpec("b", recorder.factory("b")))
    with pytest.raises(TreeNotRunning):
        await handle.terminate_child("a")


@each_backend_mock_clock
async def test_a_request_queued_when_the_run_ends_is_answered() -> None:
    recorder = Recorder()
    tree = SupervisionTree("tree", [ChildSpec("a", recorder.factory("a", Life(linger=3)))])
    async with anyio.create_task_group() as tasks:
        handle = await tree.start(tasks)
        tree.shutdown()
        await anyio.sleep(1)  # the tree is busy stopping 'a' and reads no requests
        # (The deadline turns "never answered" into a failure instead of a hang.)
        with pytest.raises(TreeNotRunning), anyio.fail_after(100):
            await handle.start_child(ChildSpec("b", recorder.factory("b")))
    assert "b" not in {child for _, child in recorder.of("start")}


@each_backend_mock_clock
async def test_a_cancelled_caller_does_not_withdraw_its_request() -> None:
    recorder = Recorder()
    tree = SupervisionTree("tree", [ChildSpec("a", recorder.factory("a", Life(linger=2)))])
    async with running(tree) as handle:
        with anyio.move_on_after(0.5):
            await handle.terminate_child("a")
        assert states(handle)["a"] is RUNNING  # still stopping
        await anyio.sleep(2)
        assert states(handle)["a"] is STOPPED


# -- pools ------------------------------------------------------------------------------------


class Args:
    """What each pool child is started with."""

    def __init__(self, name: str, life: Life) -> None:
        self.name = name
        self.life = life


@each_backend_mock_clock
async def test_a_pool_starts_children_from_its_template_with_their_arguments() -> None:
    recorder = Recorder()
    made: list[str] = []

    def make(args: Args) -> Worker:
        made.append(args.name)
        recorder.log(args.name, "start")
        return Worker(args.name, args.life, recorder)

    pool = SupervisorPool[Args](
        "pool",
        ChildTemplate("conn", make),
        intensity=RestartIntensity(max_restarts=10, period=100),
        backoff=HALF_SECOND,
    )
    async with anyio.create_task_group() as tasks:
        handle = await pool.start(tasks)
        assert handle.which_children() == ()
        first = await handle.start_child(Args("alpha", Life(lasts=1, crashes=True)))
        second = await handle.start_child(Args("beta", FOREVER))
        assert (first.child_id, second.child_id) == ("conn-1", "conn-2")
        await anyio.sleep(2)
        # conn-1 crashed and was restarted with its own arguments.
        assert made == ["alpha", "beta", "alpha"]
        assert handle.child_status("conn-1").restarts == 1
        await handle.terminate_child("conn-2")
        assert [s.child_id for s in handle.which_children()] == ["conn-1"]
        third = await handle.start_child(Args("gamma", FOREVER))
        assert third.child_id == "conn-3"
        handle.shutdown()
    assert pool.strategy_label == "simple_one_for_one"


@each_backend_mock_clock
async def test_a_pool_forgets_children_that_ended_for_good() -> None:
    recorder = Recorder()
    pool = SupervisorPool[float](
        "pool",
        ChildTemplate(
            "job",
            lambda lasts: Worker("job", Life(lasts=lasts, crashes=False), recorder),
            restart=RestartType.TRANSIENT,
        ),
    )
    async with anyio.create_task_group() as tasks:
        handle = await pool.start(tasks)
        for lasts in (1.0, 2.0, 100.0):
            await handle.start_child(lasts)
        await anyio.sleep(3)
        assert [s.child_id for s in handle.which_children()] == ["job-3"]
        handle.shutdown()


@each_backend_mock_clock
async def test_a_pool_stops_all_its_children_at_once() -> None:
    recorder = Recorder()
    lives = [Life(linger=1), Life(linger=3), Life(linger=2)]
    pool = SupervisorPool[int](
        "pool",
        ChildTemplate("w", lambda i: Worker(f"w{i}", lives[i], recorder), shutdown_timeout=5),
    )
    async with anyio.create_task_group() as tasks:
        handle = await pool.start(tasks)
        for i in range(3):
            await handle.start_child(i)
        await anyio.sleep(1)
        handle.shutdown()
    assert sorted(recorder.of("stopping")) == [(1.0, "w0"), (1.0, "w1"), (1.0, "w2")]
    assert sorted(recorder.exits()) == [
        (2.0, "w0", CANCELLED),
        (3.0, "w2", CANCELLED),
        (4.0, "w1", CANCELLED),
    ]
    assert anyio.current_time() == 4.0


@each_backend_mock_clock
async def test_restart_child_that_cannot_start_leaves_it_stopped() -> None:
    recorder = Recorder()
    tree = SupervisionTree(
        "tree",
        [ChildSpec("x", recorder.factory("x", FOREVER, Life(cannot_start="initial_context")))],
    )
    async with running(tree) as handle:
        await handle.terminate_child("x")
        with pytest.raises(ChildStartError, match="initial_context is broken"):
            await handle.restart_child("x")
        status = handle.child_status("x")
        assert status.state is STOPPED and status.restarts == 1
        assert status.last_outcome is not None and status.last_outcome.exit is FAILED
        await anyio.sleep(5)
        assert handle.child_status("x").state is STOPPED  # not restarted by the strategy
        assert handle.history == ()


# -- nested handles, the run --------------------------------------------------------------


@each_backend_mock_clock
async def test_the_handles_of_nested_trees_and_pools() -> None:
    recorder = Recorder()

    def make_inner() -> SupervisionTree:
        return SupervisionTree("inner", [ChildSpec("x", recorder.factory("x"))])

    def make_pool() -> SupervisorPool[str]:
        return SupervisorPool[str](
            "pool", ChildTemplate("p", lambda name: Worker(name, FOREVER, recorder))
        )

    tree = SupervisionTree(
        "outer",
        [
            ChildSpec("inner", make_inner),
            ChildSpec("pool", make_pool),
            ChildSpec("leaf", recorder.factory("leaf")),
        ],
    )
    async with running(tree) as handle:
        inner = handle.child_tree("inner")
        assert inner.name == "inner"
        await inner.start_child(ChildSpec("y", recorder.factory("y")))
        assert [s.child_id for s in inner.which_children()] == ["x", "y"]
        pool = handle.child_pool("pool", str)
        assert (await pool.start_child("worker")).child_id == "p-1"
        with pytest.raises(TypeError, match="'leaf' of 'outer' is not a running SupervisionTree"):
            handle.child_tree("leaf")
        with pytest.raises(TypeError, match="is not a running SupervisorPool"):
            handle.child_pool("inner", str)
        with pytest.raises(ChildNotFound):
            handle.child_tree("nope")
        await handle.terminate_child("inner")
        with pytest.raises(TypeError, match="'inner' of 'outer' is not running"):
            handle.child_tree("inner")
    # The inner tree stopped in order: its dynamic child first.
    assert [child for _, child, _ in recorder.exits()][:2] == ["y", "x"]


@each_backend_mock_clock
async def test_cancelling_the_handle_cancels_every_child() -> None:
    recorder = Recorder()
    tree = SupervisionTree(
        "tree", [ChildSpec(c, recorder.factory(c)) for c in "ab"], journal=recorder.journal
    )
    async with anyio.create_task_group() as tasks:
        handle = await tree.start(tasks)
        assert not handle.done
        handle.cancel()
        outcome = await handle.outcome()
    assert handle.done and outcome.exit is ExitKind.CANCELLED
    assert recorder.completions("tree") == [ExitKind.CANCELLED]
    assert sorted(recorder.completions("a") + recorder.completions("b"), key=str) == [
        CANCELLED,
        CANCELLED,
    ]


@pytest.mark.parametrize("raise_on_failure", [True, False])
@each_backend_mock_clock
async def test_a_tree_that_gives_up_after_its_start_fails_into_the_task_group(
    raise_on_failure: bool,
) -> None:
    recorder = Recorder()
    tree = SupervisionTree(
        "tree",
        [ChildSpec("x", recorder.factory("x", Life(lasts=1)))],
        intensity=RestartIntensity(max_restarts=0, period=10),
    )
    raised: list[BaseException] = []
    try:
        async with anyio.create_task_group() as tasks:
            handle = await tree.start(tasks, raise_on_failure=raise_on_failure)
            outcome = await handle.outcome()
    except BaseExceptionGroup as group:
        raised.extend(group.exceptions)
    assert outcome.exit is FAILED
    if raise_on_failure:
        assert [type(e).__name__ for e in raised] == ["RestartIntensityExceeded"]
        assert raised[0] is outcome.error
    else:
        assert raised == []


@each_backend_mock_clock
async def test_a_bug_while_serving_a_request_is_loud() -> None:
    recorder = Recorder()
    tree = SupervisionTree("tree", [ChildSpec("a", recorder.factory("a"))])

    def broken_add(spec: ChildSpec) -> None:
        raise RuntimeError("tree bug")

    async with anyio.create_task_group() as tasks:
        handle = await tree.start(tasks, raise_on_failure=False)
        tree.context.add = broken_add  # type: ignore[method-assign,assignment]
        with pytest.raises(RuntimeError, match="tree bug"):
            await handle.start_child(ChildSpec("b", recorder.factory("b")))
        outcome = await handle.outcome()
    # The fault escalates: every child stopped, then the tree fails naming the bug.
    assert outcome.exit is FAILED and "tree bug" in str(outcome.error)
    assert recorder.completions("a") == [CANCELLED]
