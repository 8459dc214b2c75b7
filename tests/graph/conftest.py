"""Fixtures of the graph executor's tests: ``any_store``, a fresh store once per backend
(memory, SQLite and the real PostgreSQL server; see ``tests/store/_backends.py``)."""

from __future__ import annotations

from store._backends import any_store

__all__ = ["any_store"]
