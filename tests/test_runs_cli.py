"""``fsmflow runs`` on a store holding both kinds of run: graph threads and durable runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio
from durable.workflows import Order, order
from graph._graphs import Counter, loop_graph

from fsmflow.cli import main
from fsmflow.durable import start_run
from fsmflow.graph import execute
from fsmflow.store import SqliteStore


def _runs(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["runs", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def _both(db: Path) -> None:
    async with await SqliteStore.open(db) as store:
        await execute(loop_graph(1), Counter(), store=store, thread_id="thread-1")
        await start_run(store, order, Order("cli", 1), run_id="run-1")


async def test_one_command_lists_and_shows_both_kinds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "both.sqlite3"
    await _both(db)
    code, out, _ = await trio.to_thread.run_sync(_runs, capsys, "list", str(db))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("thread-1  loop") and lines[1].startswith("run-1  order@")
    code, out, _ = await trio.to_thread.run_sync(_runs, capsys, "list", str(db), "--json")
    assert [(row["kind"], row.get("thread_id", row.get("run_id"))) for row in json.loads(out)] == [
        ("graph", "thread-1"),
        ("durable", "run-1"),
    ]
    code, out, _ = await trio.to_thread.run_sync(
        _runs, capsys, "list", str(db), "--kind", "durable"
    )
    assert out.startswith("run-1") and "thread-1" not in out
    code, out, _ = await trio.to_thread.run_sync(_runs, capsys, "show", str(db), "thread-1")
    assert code == 0 and out.startswith("thread thread-1  graph loop")
    code, out, _ = await trio.to_thread.run_sync(_runs, capsys, "show", str(db), "run-1")
    assert code == 0 and out.startswith("run run-1: order@")
    code, _, err = await trio.to_thread.run_sync(_runs, capsys, "show", str(db), "nothing")
    assert code == 1
    assert "no checkpoint stored for thread 'nothing'" in err
    assert "no durable run 'nothing'" in err
    code, out, _ = await trio.to_thread.run_sync(_runs, capsys, "cancel", str(db), "run-1")
    assert code == 0 and "cancel requested" in out
