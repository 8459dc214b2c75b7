"""``fsmflow runs``: every stored run of a store, graph threads and durable runs alike.

One command for both engines that keep runs in a store, so a user who has one database
has one place to look:

* ``fsmflow runs list DB`` — graph threads, then durable runs (``--json``: one object per
  run with its ``kind``; ``--kind``, ``--status`` and ``--workflow`` narrow it down).
* ``fsmflow runs show DB ID`` — the graph thread or durable run named ``ID``.
* ``approve``, ``reject``, ``skip``, ``resume`` — answer a graph thread's barriers and
  interrupts (see :mod:`fsmflow.graph._cli`).
* ``cancel``, ``retry``, ``signal`` — steer a durable run (see :mod:`fsmflow.durable._cli`).

``DB`` is a SQLite file or a PostgreSQL DSN. Exit status: 0 on success; 2 (with usage)
when ``DB`` is a file that does not exist; 1 when the operation failed (nothing of that
name, a live run holds the thread, a store error), with the reason on stderr.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

from .diagrams import DiagramTargetError
from .durable import _cli as durable_cli
from .durable._errors import DurableError, UnknownRun
from .graph import _cli as graph_cli
from .graph._errors import CheckpointNotFound, GraphError
from .store import Store, StoreError, is_postgres_dsn, open_store

Command = Callable[[Store, argparse.Namespace], Awaitable[Any]]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``runs`` subcommand to the ``fsmflow`` parser."""
    parser = commands.add_parser(
        "runs",
        help="inspect and steer the graph threads and durable runs of a store",
        description=(
            "Inspect and steer the graph threads and durable runs kept in a SQLite file or "
            "a PostgreSQL database."
        ),
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def action(name: str, help: str, command: Command) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=help, description=help)
        sub.add_argument("db", metavar="DB", help="a SQLite file or a PostgreSQL DSN")
        sub.set_defaults(handler=functools.partial(_run, sub, command))
        return sub

    listing = action("list", "one line per graph thread and durable run", _list)
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.add_argument("--kind", choices=("graph", "durable"), help="only runs of this kind")
    durable_cli.configure_list(listing)
    show = action("show", "everything stored about one graph thread or durable run", _show)
    show.add_argument("id", metavar="ID", help="a graph thread id or a durable run id")
    show.add_argument("--json", action="store_true", help="print JSON")
    graph_cli.configure_show(show)
    graph_cli.add_actions(action)
    durable_cli.add_actions(action)


async def _list(store: Store, args: argparse.Namespace) -> Any:
    graph = [] if args.kind == "durable" else await graph_cli.list_threads(store)
    durable = [] if args.kind == "graph" else await durable_cli.list_runs(store, args)
    if args.json:
        return [{"kind": "graph", **row} for row in graph] + [
            {"kind": "durable", **row} for row in durable
        ]
    lines = [graph_cli.thread_line(row) for row in graph]
    lines += [durable_cli.run_line(row) for row in durable]
    return "\n".join(lines) if lines else "no runs"


async def _show(store: Store, args: argparse.Namespace) -> Any:
    try:
        return await graph_cli.show_thread(store, args.id, args)
    except CheckpointNotFound as not_a_thread:
        try:
            return await durable_cli.show_run(store, args.id, args)
        except UnknownRun as not_a_run:
            raise ValueError(f"{not_a_thread}; {not_a_run}") from None


async def _query(location: str, command: Command, args: argparse.Namespace) -> Any:
    async with await open_store(location) as store:
        return await command(store, args)


def _run(parser: argparse.ArgumentParser, command: Command, args: argparse.Namespace) -> int:
    if not is_postgres_dsn(args.db) and not Path(args.db).is_file():
        parser.error(f"{args.db} does not exist")
    try:
        output = trio.run(_query, args.db, command, args)
    except (StoreError, GraphError, DurableError, ValueError, DiagramTargetError) as exc:
        parser.exit(1, f"{parser.prog}: error: {exc}\n")
    text = output if isinstance(output, str) else json.dumps(output, indent=2)
    sys.stdout.write(text + "\n")
    return 0
