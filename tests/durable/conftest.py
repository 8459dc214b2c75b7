"""Fixtures of the durable-run tests: a store per backend, and a worker running in the
background for the length of a block."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from store._backends import BACKENDS, open_backend

from fsmflow.durable import RunHandle, RunSettings, RunStatus, Worker, Workflow
from fsmflow.store import Store

from . import workflows


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A fresh store on every backend: memory, SQLite and the real PostgreSQL."""
    async with open_backend(request.param, tmp_path) as backend:
        yield backend


@pytest.fixture(autouse=True)
def _clean_effects() -> Iterator[None]:
    workflows.EFFECTS.clear()
    workflows.ATTEMPTS.clear()
    workflows.RUNNING.clear()
    workflows.PEAK.clear()
    yield


@asynccontextmanager
async def running_worker(
    store: Store, flows: Sequence[Workflow[Any, Any]], **options: Any
) -> AsyncIterator[Worker]:
    """A worker running in a task group until the block ends (then cancelled)."""
    options.setdefault("poll_interval", 0.01)
    options.setdefault("settings", RunSettings(inline_wait=0.5, poll_interval=0.01))
    worker = Worker(store, flows, **options)
    async with anyio.create_task_group() as tg:
        await tg.start(worker.run)
        try:
            yield worker
        finally:
            tg.cancel_scope.cancel()


async def wait_for_status(handle: RunHandle[Any, Any], status: RunStatus) -> None:
    """Poll the store until the run has ``status`` (a status between start and end has
    no notification of its own)."""
    while True:
        if await handle.status() is status:
            return
        await anyio.sleep(0.01)
