"""``fsmflow runs``: list, show, decide barriers and answer interrupts from the shell."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from fsmflow.cli import main
from fsmflow.graph import (
    CheckpointPolicy,
    GraphBuilder,
    append,
    execute,
    interrupt,
    merge,
    reducer,
    resume,
)
from fsmflow.graph._listing import read_stored
from fsmflow.graph._nodes import FunctionNode
from fsmflow.store import Durability, SqliteStore

from ._graphs import Counter, loop_graph


@attrs.frozen
class Ticket:
    title: str = ""
    notes: list[str] = attrs.field(factory=list)
    tags: dict[str, str] = attrs.field(factory=dict)
    body: str = ""
    custom: str = ""


def _ticket_graph() -> Any:
    def triage(state: Ticket) -> dict[str, Any]:
        return {"notes": ["triaged"], "tags": {"p": "1"}, "body": "x" * 500, "custom": "c"}

    def ask(state: Ticket) -> dict[str, Any]:
        owner = interrupt({"question": "who owns it?"}, str)
        return {"notes": [f"owner {owner}"]}

    def longest(current: str, update: str) -> str:
        return max(current, update, key=len)

    b = GraphBuilder(
        Ticket,
        name="ticket",
        reducers={"notes": append, "tags": merge, "custom": reducer(longest)},
    )
    b.node("triage", triage).barrier("gate", on_reject="closed").node("ask", ask)
    b.node("closed", lambda s: {"notes": ["closed"]}).node("done", lambda s: {"notes": ["done"]})
    b.edge("triage", "gate").edge("gate", "ask").edge("ask", "done").edge("closed", "done")
    return b.start("triage").end("done").build()


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def test_a_barrier_and_an_interrupt_answered_from_the_shell(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "runs.db"
    graph = _ticket_graph()
    policy = CheckpointPolicy(every_step=True)
    async with await SqliteStore.open(db, durability=Durability.OFF) as store:
        first = await execute(graph, Ticket("bug"), store=store, thread_id="T-1", policy=policy)
    assert first.interrupts and str(first.interrupts[0].barrier_id) == "gate#1"

    def cli(*args: str) -> tuple[int, str, str]:
        return _cli(capsys, *args)

    code, out, _ = await trio.to_thread.run_sync(cli, "runs", "show", str(db), "T-1")
    assert code == 0
    assert "status waiting  step 1  next=gate" in out
    assert '"notes": [\n      "triaged"\n    ],' in out
    assert "... (500 chars)" in out  # a long string is shortened
    assert '"custom": "c"' in out
    assert "waiting for:\n  barrier gate#1" in out
    assert "checkpoints:" in out and "input" in out

    code, out, _ = await trio.to_thread.run_sync(
        cli, "runs", "show", str(db), "T-1", "--diagram", "tests.graph.test_runs_cli:TICKET"
    )
    assert code == 0 and 'title: "ticket: T-1 at step 1 (waiting)"' in out
    assert "class gate waiting" in out
    code, _, err = await trio.to_thread.run_sync(
        cli, "runs", "show", str(db), "T-1", "--diagram", "tests.graph.test_runs_cli:Ticket"
    )
    assert code == 1 and "is the class Ticket" in err

    code, out, _ = await trio.to_thread.run_sync(cli, "runs", "approve", str(db), "T-1", "gate")
    assert code == 0 and "approve recorded for gate#1" in out
    code, _, err = await trio.to_thread.run_sync(cli, "runs", "approve", str(db), "T-1", "gate")
    assert code == 1 and "nothing named 'gate' waits" in err

    async with await SqliteStore.open(db, durability=Durability.OFF) as store:
        second = await resume(graph, "T-1", store=store)
    assert second.interrupts[0].payload == {"question": "who owns it?"}

    code, out, _ = await trio.to_thread.run_sync(cli, "runs", "show", str(db), "T-1", "--json")
    shown = json.loads(out)
    assert shown["status"] == "waiting" and shown["waiting"][0]["kind"] == "interrupt"
    assert shown["waiting"][0]["payload"] == {"question": "who owns it?"}
    assert shown["state"]["notes"] == ["triaged"]
    code, out, _ = await trio.to_thread.run_sync(cli, "runs", "resume", str(db), "T-1", '"ana"')
    assert code == 0 and "value recorded for ask@3#0" in out

    async with await SqliteStore.open(db, durability=Durability.OFF) as store:
        done = await resume(graph, "T-1", store=store)
    assert done.completed and done.state.notes == ["triaged", "owner ana", "done"]

    code, out, _ = await trio.to_thread.run_sync(cli, "runs", "list", str(db))
    assert "T-1  ticket  step 4  completed  next=-" in out


async def test_a_state_without_its_code_replays_the_built_in_reducers(tmp_path: Path) -> None:
    triage = _ticket_graph().nodes["triage"]
    assert isinstance(triage, FunctionNode)
    b = GraphBuilder(Ticket, reducers={"notes": append, "tags": merge, "custom": reducer(max)})
    b.node("triage", triage.fn).node("end", lambda s: None).edge("triage", "end")
    graph = b.start("triage").end("end").build()
    policy = CheckpointPolicy(every_step=True, on_completion=False)
    async with await SqliteStore.open(tmp_path / "r.db", durability=Durability.OFF) as store:
        await execute(graph, Ticket("t"), store=store, thread_id="s", policy=policy)
        stored = await read_stored(store, "s")
    assert stored.record.step == 1 and not stored.record.full
    assert stored.state["notes"] == ["triaged"] and stored.state["tags"] == {"p": "1"}
    assert stored.state["body"] == "x" * 500
    assert stored.stale_keys == ("custom",) and stored.state["custom"] == ""


async def test_reject_from_the_shell_and_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "runs.db"
    graph = _ticket_graph()
    async with await SqliteStore.open(db, durability=Durability.OFF) as store:
        await execute(graph, Ticket(), store=store, thread_id="T-2")
        await execute(loop_graph(1), Counter(), store=store, thread_id="L")

    def cli(*args: str) -> tuple[int, str, str]:
        return _cli(capsys, *args)

    code, out, _ = await trio.to_thread.run_sync(
        cli, "runs", "reject", str(db), "T-2", "gate#1", "--reason", "duplicate"
    )
    assert code == 0
    async with await SqliteStore.open(db, durability=Durability.OFF) as store:
        closed = await resume(graph, "T-2", store=store)
    assert closed.state.notes == ["triaged", "closed", "done"]
    code, _, err = await trio.to_thread.run_sync(cli, "runs", "resume", str(db), "L", "1")
    assert code == 1 and "waiting: nothing" in err
    code, _, err = await trio.to_thread.run_sync(cli, "runs", "resume", str(db), "T-2", "{bad")
    assert code == 1 and "not JSON" in err
    code, _, err = await trio.to_thread.run_sync(cli, "runs", "show", str(db), "nope")
    assert code == 1 and "no checkpoint" in err
    code, _, _ = await trio.to_thread.run_sync(cli, "runs", "list", str(tmp_path / "missing"))
    assert code == 2
    code, out, _ = await trio.to_thread.run_sync(cli, "runs", "list", str(db), "--json")
    assert [r["thread_id"] for r in json.loads(out)] == ["L", "T-2"]
    empty = tmp_path / "empty.db"
    async with await SqliteStore.open(empty):
        pass
    code, out, _ = await trio.to_thread.run_sync(cli, "runs", "list", str(empty))
    assert out.strip() == "no runs"


TICKET = _ticket_graph()
