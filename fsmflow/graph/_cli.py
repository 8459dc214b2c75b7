"""``fsmflow runs list DB`` and ``fsmflow runs show DB TRACE_ID``: stored graph runs.

Exit status: 0 on success; 2 (with usage) when ``DB`` does not exist; 1 when it cannot
be read (not an fsmflow database, undecodable checkpoints) or the trace has no
checkpoints.
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

from ..store import Store, StoreError, is_postgres_dsn, open_store
from ._checkpoint import inspect_run, list_runs
from ._errors import GraphError


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``runs`` subcommand to the ``fsmflow`` parser."""
    parser = commands.add_parser(
        "runs",
        help="list stored graph runs and their checkpoints",
        description="Inspect the graph runs checkpointed in a SQLite store.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="one line per stored run")
    listing.add_argument("db", metavar="DB", help="the SQLite file or a postgresql:// URL")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=functools.partial(_run, listing, _list))
    show = actions.add_parser("show", help="the checkpoints of one run")
    show.add_argument("db", metavar="DB", help="the SQLite file or a postgresql:// URL")
    show.add_argument("trace_id", metavar="TRACE_ID")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=functools.partial(_run, show, _show))


def _when(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


async def _list(store: Store, args: argparse.Namespace) -> list[dict[str, Any]] | str:
    runs = await list_runs(store)
    if args.json:
        return [attrs.asdict(r) for r in runs]

    lines = [
        f"{r.trace_id}  {r.graph}  step {r.latest_step}  {r.status}  "
        f"next={r.next_node or '-'}  checkpoints={r.checkpoints}  {_when(r.updated_at)}"
        for r in runs
    ]
    return "\n".join(lines) if lines else "no runs"


async def _show(store: Store, args: argparse.Namespace) -> list[dict[str, Any]] | str:
    infos = await inspect_run(store, args.trace_id)
    if not infos:
        raise GraphError(f"no checkpoints for trace {args.trace_id!r}")
    if args.json:
        return [attrs.asdict(i) for i in infos]
    return "\n".join(
        f"step {i.step:>5}  {i.trigger:<10}  {'full' if i.full else f'+{i.deltas} deltas':<12}  "
        f"{i.status:<9}  next={i.next_node or '-'}  {i.size} bytes  {_when(i.created_at)}"
        for i in infos
    )


async def _query(path: str, command: Any, args: argparse.Namespace) -> Any:
    async with await open_store(path) as store:
        return await command(store, args)


def _run(parser: argparse.ArgumentParser, command: Any, args: argparse.Namespace) -> int:
    if not is_postgres_dsn(args.db) and not Path(args.db).is_file():
        parser.error(f"{args.db} does not exist")
    try:
        output = trio.run(_query, args.db, command, args)
    except (StoreError, GraphError) as exc:
        parser.exit(1, f"{parser.prog}: error: {exc}\n")
    text = output if isinstance(output, str) else json.dumps(output, indent=2)
    sys.stdout.write(text + "\n")
    return 0
