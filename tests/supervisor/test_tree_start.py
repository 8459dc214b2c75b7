"""Acknowledged, ordered start: children begin running in order, each once the one
before reported it started; a child that cannot start fails the tree's start (OTP's
``failed_to_start_child``) while the tree starts, and is a failed run handled by the
strategy once the tree is up. On trio and asyncio, under virtual time."""

from __future__ import annotations

import anyio
import pytest

from fsmflow.supervisor import (
    ChildSpec,
    ExitKind,
    Failed,
    FailedToStartChild,
    RestartBackoff,
    RestartIntensity,
    RestartIntensityExceeded,
    RestartStrategy,
    SupervisionTree,
    SupervisorError,
)

from ._tree_clock import each_backend_mock_clock, run_with_mock_clock
from ._tree_workers import FOREVER, Life, Recorder, Worker

FAILED = ExitKind.FAILED
CANCELLED = ExitKind.CANCELLED
AT_ONCE = RestartBackoff(initial=0.0, jitter=0.0)
STEPS = ["factory", "initial_state", "initial_context", "build_state_machine"]


def broken(recorder: Recorder, child: str, step: str, *later: Life) -> ChildSpec:
    """A child whose first run cannot start at ``step`` (its later runs live ``later``)."""
    if step == "factory":

        def refuse() -> Worker:
            raise OSError(f"{child}: factory is broken")

        return ChildSpec(child, refuse)
    return ChildSpec(child, recorder.factory(child, Life(cannot_start=step), *later))


# -- ordered start ------------------------------------------------------------------------


@each_backend_mock_clock
async def test_children_begin_running_in_order_every_time() -> None:
    """Each child's factory runs only after the previous child's first dispatch began."""
    recorders = [Recorder() for _ in range(60)]
    trees = [
        SupervisionTree(f"tree{i}", [ChildSpec(c, r.factory(c)) for c in "abcd"])
        for i, r in enumerate(recorders)
    ]
    async with anyio.create_task_group() as tasks:
        for tree in trees:
            # One tree at a time, so that each starts in scheduler batches of its own
            # (trio runs a batch in reverse order half of the time).
            tasks.start_soon(tree.run)
            await anyio.sleep(0.01)
        for tree in trees:
            tree.shutdown()

    for recorder in recorders:
        steps = [(e.what, e.child) for e in recorder.entries if e.what in ("start", "running")]
        assert steps == [(what, c) for c in "abcd" for what in ("start", "running")]


@each_backend_mock_clock
async def test_a_child_tree_has_started_once_its_own_children_started() -> None:
    recorder = Recorder()

    def make_inner() -> SupervisionTree:
        return SupervisionTree("inner", [ChildSpec(c, recorder.factory(c)) for c in "xy"])

    outer = SupervisionTree(
        "outer", [ChildSpec("inner", make_inner), ChildSpec("z", recorder.factory("z"))]
    )
    async with anyio.create_task_group() as tasks:
        handle = await outer.start(tasks)
        assert [c.child_id for c in handle.which_children()] == ["inner", "z"]
        assert all(c.running for c in handle.which_children())
        handle.shutdown()

    assert [child for _, child in recorder.of("running")] == ["x", "y", "z"]
    assert [child for _, child in recorder.of("start")] == ["x", "y", "z"]


# -- a child that cannot start while the tree starts ----------------------------------------


@pytest.mark.parametrize("step", STEPS)
@each_backend_mock_clock
async def test_a_child_that_cannot_start_fails_the_tree_start(step: str) -> None:
    recorder = Recorder()
    tree = SupervisionTree(
        "tree",
        [
            ChildSpec("a", recorder.factory("a")),
            ChildSpec("b", recorder.factory("b")),
            broken(recorder, "c", step),
            ChildSpec("d", recorder.factory("d")),
        ],
        journal=recorder.journal,
    )

    with pytest.raises(FailedToStartChild) as info:
        await tree.run()

    error = info.value
    assert isinstance(error, SupervisorError) and not isinstance(error, BaseExceptionGroup)
    assert error.child_id == "c" and error.supervisor == "tree"
    assert "failed to start child 'c'" in str(error) and "is broken" in str(error)
    assert error.__cause__ is error.error and error.error is not None
    # c's run could not start, and says so in its completion event (exactly once, like
    # every run); the children already started are stopped in reverse order; d never
    # starts.
    # (A factory that raises made no supervisor, so there is no run to complete.)
    c_ran = [] if step == "factory" else [("c", FAILED)]
    assert [(child, kind) for _, child, kind in recorder.exits()] == [
        *c_ran,
        ("b", CANCELLED),
        ("a", CANCELLED),
    ]
    assert "d" not in {child for _, child in recorder.of("start")}
    assert recorder.completions("tree") == [FAILED]
    assert isinstance(tree.state, Failed) and "'c'" in tree.state.reason
    assert tree.last_outcome is not None and tree.last_outcome.exit is FAILED
    assert error.outcome == tree.last_outcome
    status = tree.child_status("c")
    assert status.last_outcome is not None and status.last_outcome.exit is FAILED
    assert tree.history == ()  # a failed start is no restart


@each_backend_mock_clock
async def test_start_raises_the_start_failure_itself_and_leaves_nothing_running() -> None:
    recorder = Recorder()
    tree = SupervisionTree(
        "tree",
        [ChildSpec("a", recorder.factory("a")), broken(recorder, "b", "build_state_machine")],
    )
    async with anyio.create_task_group() as tasks:
        with pytest.raises(FailedToStartChild, match="failed to start child 'b'"):
            await tree.start(tasks)
    assert recorder.completions("a") == [CANCELLED]
    assert not tree.running


@each_backend_mock_clock
async def test_a_nested_tree_that_cannot_start_fails_the_outer_start() -> None:
    recorder = Recorder()

    def make_inner() -> SupervisionTree:
        return SupervisionTree(
            "inner", [ChildSpec("x", recorder.factory("x")), broken(recorder, "y", "factory")]
        )

    outer = SupervisionTree(
        "outer", [ChildSpec("a", recorder.factory("a")), ChildSpec("inner", make_inner)]
    )

    with pytest.raises(FailedToStartChild) as info:
        await outer.run()

    assert info.value.child_id == "inner"
    inner_error = info.value.error
    assert isinstance(inner_error, FailedToStartChild) and inner_error.child_id == "y"
    assert "factory is broken" in str(info.value)
    assert [child for _, child, _ in recorder.exits()] == ["x", "a"]


# -- a child that cannot start once the tree is up ---------------------------------------


@pytest.mark.parametrize("step", STEPS[1:])
@pytest.mark.parametrize("strategy", list(RestartStrategy))
@each_backend_mock_clock
async def test_a_restart_that_cannot_start_is_a_failed_run_for_the_strategy(
    step: str, strategy: RestartStrategy
) -> None:
    """Issue 9: handled by the restart strategy and the intensity, never an exception
    group, never reported as cancelled."""
    recorder = Recorder()
    tree = SupervisionTree(
        "tree",
        [
            ChildSpec("steady", recorder.factory("steady")),
            ChildSpec("x", recorder.factory("x", Life(lasts=1), Life(cannot_start=step))),
        ],
        strategy=strategy,
        intensity=RestartIntensity(max_restarts=3, period=60),
        backoff=AT_ONCE,
    )

    with pytest.raises(RestartIntensityExceeded) as info:
        await tree.run()

    assert not isinstance(info.value, BaseExceptionGroup)
    history = info.value.history
    assert [(r.child_id, r.exit) for r in history] == [("x", FAILED)] * 4
    assert [r.restarted != () for r in history] == [True, True, True, False]
    assert all(r.error and "is broken" in r.error for r in history[1:])
    status = tree.child_status("x")
    assert status.last_outcome is not None and status.last_outcome.exit is FAILED
    assert status.restarts == 3
    assert recorder.completions("x")[0] is FAILED


@each_backend_mock_clock
async def test_a_restart_that_cannot_start_backs_off_and_recovers() -> None:
    recorder = Recorder()
    tree = SupervisionTree(
        "tree",
        [
            ChildSpec(
                "x",
                recorder.factory(
                    "x", Life(lasts=1), Life(cannot_start="build_state_machine"), FOREVER
                ),
            )
        ],
        backoff=RestartBackoff(initial=1, jitter=0),
    )
    async with anyio.create_task_group() as tasks:
        handle = await tree.start(tasks)
        await anyio.sleep(10)
        assert handle.child_status("x").running
        handle.shutdown()
    assert [(r.at, r.delay) for r in tree.history] == [(1.0, 1.0), (2.0, 2.0)]
    assert [at for at, _ in recorder.of("running")] == [0.0, 4.0]


# -- cancellation ---------------------------------------------------------------------------


@each_backend_mock_clock
async def test_cancelling_start_before_the_tree_started_cancels_the_tree() -> None:
    recorder = Recorder()

    def make_inner() -> SupervisionTree:
        return SupervisionTree("inner", [ChildSpec("x", recorder.factory("x"))])

    tree = SupervisionTree(
        "tree",
        [ChildSpec("a", recorder.factory("a")), ChildSpec("inner", make_inner)],
        journal=recorder.journal,
    )
    async with anyio.create_task_group() as tasks:
        with anyio.CancelScope() as scope:
            scope.cancel()
            await tree.start(tasks)
    assert tree.last_outcome is not None and tree.last_outcome.exit is CANCELLED
    assert recorder.completions("tree") == [CANCELLED]
    assert all(kind is CANCELLED for _, _, kind in recorder.exits())
    assert not tree.running


@pytest.mark.parametrize("how", ["wait_for", "task.cancel"])
def test_native_asyncio_cancellation_stops_every_child(how: str) -> None:
    import asyncio

    recorder = Recorder()
    tree = SupervisionTree(
        "tree",
        [ChildSpec(c, recorder.factory(c, Life(linger=1))) for c in "abc"],
        journal=recorder.journal,
    )

    async def main() -> None:
        if how == "wait_for":
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(tree.run(), 5)
        else:
            task = asyncio.ensure_future(tree.run())
            await asyncio.sleep(5)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    run_with_mock_clock(main, "asyncio")

    assert sorted(recorder.completions(c)[0].value for c in "abc") == ["cancelled"] * 3
    assert recorder.completions("tree") == [CANCELLED]
    assert tree.last_outcome is not None and tree.last_outcome.exit is CANCELLED
