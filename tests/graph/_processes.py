"""Where the graph's multi-process tests keep their thread: a SQLite file or a PostgreSQL
schema (on the real server, see ``tests/store/_backends.py``), named by a *target* and a
*schema* string that the parent passes to its child processes on their command line.

Children import this module too, so it needs nothing but fsmflow (the parent's side,
creating targets, is in ``conftest.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from fsmflow.store import Durability, Store, open_store

ROOT = Path(__file__).resolve().parents[2]
#: The backends the multi-process tests run on.
KINDS = ("sqlite", "postgres")


async def open_target(target: str, schema: str) -> Store:
    """The store a target names (SQLite at ``NORMAL`` durability: a killed process loses
    nothing it committed)."""
    if schema == "-":
        return await open_store(target, durability=Durability.NORMAL)
    return await open_store(target, schema=schema)


def spawn(module: str, args: Sequence[str]) -> subprocess.Popen[str]:
    """Start ``python -m module args...`` in the project root, output piped."""
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
