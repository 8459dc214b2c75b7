"""The ``store`` fixture of the store's own tests: every backend, PostgreSQL included."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fsmflow.store import Store

from ._backends import BACKENDS, open_backend


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with open_backend(request.param, tmp_path) as backend:
        yield backend
