"""``fsmflow runs``: stored graph runs in a SQLite file, from the shell.

* ``fsmflow runs list DB`` — one line per thread.
* ``fsmflow runs show DB THREAD`` — which process runs it now (its lease's holder), its
  newest state (in JSON form, long strings and collections shortened), what it waits on,
  and its checkpoints; with ``--diagram
  MODULE:GRAPH``, the graph drawn (Mermaid) with the run's position highlighted.
* ``fsmflow runs approve|reject|skip DB THREAD BARRIER`` — decide a barrier the thread
  waits at (``BARRIER`` is its id, ``gate#2``, or its node name).
* ``fsmflow runs resume DB THREAD VALUE [--interrupt ID]`` — answer an interrupt with a
  JSON value.

Deciding and answering record the value as a new checkpoint of the thread; the next
``resume``/``resume_from`` of the thread (in any process) takes it. They take the
thread's lease for the write, so they are refused while a live run holds the thread.
Exit status: 0 on success; 2 (with usage) when ``DB`` does not exist; 1 when it cannot be
read, the thread has no checkpoints, nothing named waits, or a live run holds it.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import sys
from pathlib import Path
from typing import Any

import attrs
import trio

from ..diagrams import DiagramTargetError, flowchart_to_mermaid, load_target
from ..store import Store, StoreError, is_postgres_dsn, open_store
from ._errors import GraphError
from ._graph import Graph
from ._history import stored_flowchart
from ._interrupts import Interrupt
from ._lease import running
from ._listing import answer_stored, inspect_run, list_runs, read_stored

#: How much of a stored state ``runs show`` prints.
MAX_STRING = 200
MAX_ITEMS = 20
MAX_DEPTH = 6


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``runs`` subcommand to the ``fsmflow`` parser."""
    parser = commands.add_parser(
        "runs",
        help="inspect stored graph runs, decide their barriers, answer their interrupts",
        description=(
            "Inspect and steer the graph runs checkpointed in a SQLite or PostgreSQL store."
        ),
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def action(name: str, help: str, handler: Any) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=help)
        sub.add_argument("db", metavar="DB", help="the SQLite file or a postgresql:// URL")
        sub.set_defaults(handler=functools.partial(_run, sub, handler))
        return sub

    listing = action("list", "one line per stored thread", _list)
    listing.add_argument("--json", action="store_true", help="print JSON")
    show = action("show", "a thread's state, what it waits on, its checkpoints", _show)
    show.add_argument("thread", metavar="THREAD")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.add_argument(
        "--diagram",
        metavar="MODULE:GRAPH",
        help="print the graph (as Mermaid) with the run's position highlighted instead",
    )
    for decision in ("approve", "reject", "skip"):
        sub = action(decision, f"{decision} a barrier the thread waits at", _decide)
        sub.add_argument("thread", metavar="THREAD")
        sub.add_argument("barrier", metavar="BARRIER", help="a barrier id (gate#2) or node")
        if decision == "reject":
            sub.add_argument("--reason", default="rejected from the shell")
        sub.set_defaults(decision=decision)
    answer = action("resume", "answer an interrupt the thread waits on", _resume)
    answer.add_argument("thread", metavar="THREAD")
    answer.add_argument("value", metavar="VALUE", help="the value, as JSON")
    answer.add_argument("--interrupt", metavar="ID", help="which interrupt (when several wait)")


def _when(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


def shorten(value: Any, depth: int = 0) -> Any:
    """``value`` (JSON data) cut down for printing: long strings, long lists and big
    objects shortened, deep nesting elided, each cut saying how much was left out."""
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            return f"{value[:MAX_STRING]}... ({len(value)} chars)"
        return value
    if depth >= MAX_DEPTH and isinstance(value, list | dict) and value:
        return f"... ({len(value)} items)"
    if isinstance(value, list):
        items = [shorten(v, depth + 1) for v in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            items.append(f"... {len(value) - MAX_ITEMS} more")
        return items
    if isinstance(value, dict):
        out = {k: shorten(v, depth + 1) for k, v in list(value.items())[:MAX_ITEMS]}
        if len(value) > MAX_ITEMS:
            out["..."] = f"{len(value) - MAX_ITEMS} more keys"
        return out
    return value


def _describe(interrupt: Interrupt) -> dict[str, Any]:
    return {
        "id": str(interrupt.id),
        "kind": interrupt.kind.value,
        "barrier": None if interrupt.barrier_id is None else str(interrupt.barrier_id),
        "payload": shorten(interrupt.payload),
        "timeout": interrupt.timeout,
    }


async def _list(store: Store, args: argparse.Namespace) -> Any:
    runs = await list_runs(store)
    if args.json:
        return [attrs.asdict(r) for r in runs]
    lines = [
        f"{r.thread_id}  {r.graph}  step {r.latest_step}  {r.status}  "
        f"next={r.next_node or '-'}  checkpoints={r.checkpoints}  {_when(r.updated_at)}"
        for r in runs
    ]
    return "\n".join(lines) if lines else "no runs"


async def _show(store: Store, args: argparse.Namespace) -> Any:
    if args.diagram is not None:
        graph = load_target(args.diagram)
        if not isinstance(graph, Graph):
            raise ValueError(f"{args.diagram} is not a Graph")
        return flowchart_to_mermaid(await stored_flowchart(graph, args.thread, store=store))
    stored = await read_stored(store, args.thread)
    infos = await inspect_run(store, args.thread)
    record = stored.record
    waiting = [_describe(i) for i in stored.interrupts]
    runner = await running(store, args.thread)
    if args.json:
        return {
            "thread_id": args.thread,
            "run_id": record.run_id,
            "graph": record.graph,
            "status": record.status,
            "running": None if runner is None else {"holder": runner[0], "expires_in": runner[1]},
            "step": record.step,
            "next_node": record.next_node,
            "state": stored.state,
            "stale_keys": list(stored.stale_keys),
            "waiting": waiting,
            "checkpoints": [attrs.asdict(i) for i in infos],
        }
    lines = [
        f"thread {args.thread}  graph {record.graph}  run {record.run_id}",
        f"status {record.status}  step {record.step}  next={record.next_node or '-'}",
        "run by nobody now"
        if runner is None
        else f"run by {runner[0]} now (its lease expires in {runner[1]:.1f}s unless renewed)",
        "state:",
        *("  " + line for line in json.dumps(shorten(stored.state), indent=2).splitlines()),
    ]
    if stored.stale_keys:
        lines.append(
            f"  (custom reducers: {', '.join(stored.stale_keys)} shown as of the last full "
            "checkpoint)"
        )
    if waiting:
        lines.append("waiting for:")
        for item in waiting:
            name = item["barrier"] or item["id"]
            payload = "" if item["payload"] is None else f"  {json.dumps(item['payload'])}"
            lines.append(f"  {item['kind']} {name}{payload}")
    lines.append("checkpoints:")
    lines += [
        f"  #{i.checkpoint:<5} step {i.step:>5}  {i.trigger:<10}  "
        f"{'full' if i.full else f'+{i.deltas} deltas':<12}  {i.status:<9}  "
        f"next={i.next_node or '-'}  {i.size} bytes  {_when(i.created_at)}"
        for i in infos
    ]
    return "\n".join(lines)


async def _decide(store: Store, args: argparse.Namespace) -> Any:
    value: dict[str, Any] = {"decision": args.decision}
    if args.decision == "reject":
        value["reason"] = args.reason
    interrupt = await answer_stored(store, args.thread, args.barrier, value)
    return f"{args.decision} recorded for {interrupt.barrier_id}; resume the thread to apply it"


async def _resume(store: Store, args: argparse.Namespace) -> Any:
    try:
        value = json.loads(args.value)
    except ValueError as exc:
        raise ValueError(f"VALUE is not JSON: {exc}") from exc
    stored = await read_stored(store, args.thread)
    target = args.interrupt
    if target is None:
        if len(stored.interrupts) != 1:
            shown = ", ".join(str(i.id) for i in stored.interrupts) or "nothing"
            raise ValueError(f"say which interrupt with --interrupt (waiting: {shown})")
        target = str(stored.interrupts[0].id)
    interrupt = await answer_stored(store, args.thread, target, value)
    return f"value recorded for {interrupt.id}; resume the thread to apply it"


async def _query(path: str, command: Any, args: argparse.Namespace) -> Any:
    async with await open_store(path) as store:
        return await command(store, args)


def _run(parser: argparse.ArgumentParser, command: Any, args: argparse.Namespace) -> int:
    if not is_postgres_dsn(args.db) and not Path(args.db).is_file():
        parser.error(f"{args.db} does not exist")
    try:
        output = trio.run(_query, args.db, command, args)
    except (StoreError, GraphError, ValueError, DiagramTargetError) as exc:
        parser.exit(1, f"{parser.prog}: error: {exc}\n")
    text = output if isinstance(output, str) else json.dumps(output, indent=2)
    sys.stdout.write(text + "\n")
    return 0
