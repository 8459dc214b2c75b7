"""A tree draws itself: its children with strategy and restart types, each child's
state highlighted once it runs, nested trees inside, dynamic children included, and
``fsmflow diagram`` draws a tree instance."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest

from fsmflow.cli import main as cli_main
from fsmflow.diagrams import (
    Flowchart,
    FlowNode,
    NodeClass,
    NodeShape,
    SupportsFlowchart,
    resolve_target,
    to_dot,
    to_mermaid,
)
from fsmflow.supervisor import (
    AutoShutdown,
    ChildSpec,
    ChildTemplate,
    RestartBackoff,
    RestartIntensity,
    RestartStrategy,
    RestartType,
    SupervisionTree,
    SupervisorPool,
)

from ._tree_clock import each_backend_mock_clock
from ._tree_workers import FOREVER, Life, Recorder, Worker


def by_id(chart: Flowchart) -> dict[str, FlowNode]:
    return {node.id: node for node in chart.nodes}


def make_tree(recorder: Recorder) -> SupervisionTree:
    def make_inner() -> SupervisionTree:
        return SupervisionTree(
            "cache",
            [ChildSpec("shard", recorder.factory("shard"))],
            strategy=RestartStrategy.REST_FOR_ONE,
        )

    return SupervisionTree(
        "app",
        [
            ChildSpec("db", recorder.factory("db")),
            ChildSpec("caches", make_inner),
            ChildSpec(
                "flaky",
                recorder.factory("flaky", Life(lasts=1), FOREVER),
                RestartType.TRANSIENT,
                significant=True,
            ),
            ChildSpec(
                "stubborn", recorder.factory("stubborn", Life(ignores_stop=50)), shutdown_timeout=1
            ),
        ],
        strategy=RestartStrategy.ONE_FOR_ALL,
        intensity=RestartIntensity(max_restarts=4, period=30),
        backoff=RestartBackoff(initial=2, jitter=0),
        auto_shutdown=AutoShutdown.ANY_SIGNIFICANT,
    )


def test_a_tree_that_never_ran_draws_its_spec() -> None:
    tree = make_tree(Recorder())
    assert isinstance(tree, SupportsFlowchart)

    chart = tree.flowchart()

    assert chart.title == "supervision tree app"
    nodes = by_id(chart)
    assert nodes["tree"].lines == (
        "app",
        "one_for_all, at most 4 restarts in 30s",
        "auto_shutdown: any_significant",
    )
    assert nodes["tree"].shape is NodeShape.SUBROUTINE
    assert nodes["tree/db"].lines == ("db", "permanent")
    assert nodes["tree/flaky"].lines == ("flaky", "transient, significant")
    assert all(node.classes == frozenset() for node in chart.nodes)
    assert [(e.source, e.target, e.label) for e in chart.edges] == [
        ("tree", "tree/db", "1"),
        ("tree", "tree/caches", "2"),
        ("tree", "tree/flaky", "3"),
        ("tree", "tree/stubborn", "4"),
    ]
    mermaid = to_mermaid(tree)
    assert 'tree[["app<br/>one_for_all, at most 4 restarts in 30s' in mermaid
    assert 'n_2("caches<br/>permanent")' in mermaid
    dot = to_dot(tree)
    assert 'label="db\\npermanent"' in dot and "peripheries=2" in dot


@each_backend_mock_clock
async def test_a_running_tree_highlights_each_child_state() -> None:
    recorder = Recorder()
    tree = make_tree(recorder)
    async with anyio.create_task_group() as tasks:
        handle = await tree.start(tasks)
        await handle.start_child(ChildSpec("extra", recorder.factory("extra")))
        await handle.terminate_child("extra")
        running = handle.flowchart()
        await anyio.sleep(1.5)  # flaky crashed at 1: the whole group waits to restart
        restarting = tree.flowchart()
        handle.shutdown()

    nodes = by_id(running)
    assert nodes["tree"].lines[-1] == "state: Running"
    assert nodes["tree"].classes == {NodeClass.CURRENT}
    assert nodes["tree/db"].lines == ("db", "permanent", "running")
    assert nodes["tree/db"].classes == {NodeClass.CURRENT}
    # The dynamic child is drawn after the spec's children, as stopped.
    assert nodes["tree/extra"].lines == ("extra", "permanent", "stopped (cancelled)")
    assert nodes["tree/extra"].classes == {NodeClass.MUTED}
    # The nested tree is a subroutine node with its own children below it.
    caches = nodes["tree/caches"]
    assert caches.shape is NodeShape.SUBROUTINE
    assert caches.lines == (
        "caches",
        "permanent",
        "running",
        "tree cache",
        "rest_for_one, at most 3 restarts in 5s",
    )
    assert nodes["tree/caches/shard"].lines == ("shard", "permanent", "running")
    assert ("tree/caches", "tree/caches/shard", "1") in {
        (e.source, e.target, e.label) for e in running.edges
    }

    later = by_id(restarting)
    assert later["tree"].classes == {NodeClass.WAITING}
    assert later["tree/flaky"].lines[-1] == "restarting"
    assert later["tree/flaky"].classes == {NodeClass.WAITING}
    # After the shutdown: the stubborn child was abandoned and everything else stopped.
    final = by_id(tree.flowchart())
    assert final["tree"].lines[-1] == "state: Stopped"
    assert final["tree"].classes == {NodeClass.DONE}
    assert final["tree/stubborn"].classes == {NodeClass.MUTED}


@each_backend_mock_clock
async def test_an_abandoned_child_is_drawn_as_failed_while_the_tree_waits() -> None:
    recorder = Recorder()
    tree = SupervisionTree(
        "tree",
        [
            ChildSpec(
                "stubborn", recorder.factory("stubborn", Life(ignores_stop=10)), shutdown_timeout=1
            )
        ],
    )
    async with anyio.create_task_group() as tasks:
        handle = await tree.start(tasks)
        handle.shutdown()
        await anyio.sleep(2)
        node = by_id(handle.flowchart())["tree/stubborn"]
    assert node.lines[-1] == "abandoned"
    assert node.classes == {NodeClass.FAILED}


@each_backend_mock_clock
async def test_a_big_pool_draws_its_first_children_and_sums_up_the_rest() -> None:
    recorder = Recorder()
    pool = SupervisorPool[int](
        "pool",
        ChildTemplate("w", lambda n: Worker(f"w{n}", FOREVER, recorder), RestartType.TEMPORARY),
    )
    async with anyio.create_task_group() as tasks:
        handle = await pool.start(tasks)
        for n in range(30):
            await handle.start_child(n)
        chart = handle.flowchart()
        handle.shutdown()

    nodes = by_id(chart)
    assert nodes["tree"].lines[:3] == (
        "pool",
        "simple_one_for_one, at most 3 restarts in 5s",
        "children w-*: temporary",
    )
    drawn = [node.id for node in chart.nodes if node.id.startswith("tree/w-")]
    assert drawn == [f"tree/w-{n}" for n in range(1, 13)]
    assert nodes["tree/+more"].lines == ("18 more", "18 running")
    assert all(edge.label is None for edge in chart.edges)


def test_the_cli_draws_a_tree_instance(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tree_targets.py").write_text(
        "from fsmflow.supervisor import ChildSpec, RestartType, SupervisionTree\n"
        "from tests.supervisor._tree_workers import Recorder\n"
        "TREE = SupervisionTree('svc', [ChildSpec('api', Recorder().factory('api'), "
        "RestartType.TRANSIENT)])\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "tree_targets", raising=False)

    assert cli_main(["diagram", "tree_targets:TREE"]) == 0
    out = capsys.readouterr().out
    assert 'tree[["svc<br/>one_for_one, at most 3 restarts in 5s"]]' in out
    assert 'n_1("api<br/>transient")' in out
    assert cli_main(["diagram", "tree_targets:TREE", "--format", "dot"]) == 0
    assert 'label="api\\ntransient"' in capsys.readouterr().out
    # The class still draws the tree's own state machine.
    import tree_targets  # type: ignore[import-not-found]

    assert resolve_target(tree_targets.TREE, "tree_targets:TREE") is tree_targets.TREE
    assert cli_main(["diagram", "fsmflow.supervisor:SupervisorPool"]) == 0
    assert "stateDiagram-v2" in capsys.readouterr().out
