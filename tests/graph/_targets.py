"""The parent's side of the multi-process tests: a fresh place for a thread that child
processes open (see ``_processes.py``, which the children import)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from store._backends import drop_schema, new_schema, postgres_dsn


@contextmanager
def store_target(kind: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """``(target, schema)``: a fresh SQLite file and ``"-"``, or this test process's
    PostgreSQL database and a fresh schema (dropped afterwards)."""
    if kind == "sqlite":
        yield str(tmp_path / "graph.sqlite3"), "-"
        return
    schema = new_schema()
    try:
        yield postgres_dsn(), schema
    finally:
        drop_schema(schema)
