"""mypy --strict checks users' workflows: a step's parameters against the workflow's
input and the earlier steps' outputs, and undos against the step's output."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")

_HEADER = """
from fsmflow.durable import StepContext, Workflow

flow = Workflow("typed", input=int, output=str)

@flow.step()
async def count(ctx: StepContext, n: int) -> int:
    return n
"""

_CASES = {
    "good": """
        @flow.step(count)
        def show(ctx: StepContext, n: int, c: int) -> str:
            return str(c)

        @count.undo
        async def uncount(ctx: StepContext, n: int, c: int) -> None: ...
        """,
    "wrong_dependency_type": """
        @flow.step(count)
        async def show(ctx: StepContext, n: int, c: str) -> str:
            return c
        """,
    "wrong_input_type": """
        @flow.step()
        def show(ctx: StepContext, n: str) -> str:
            return n
        """,
    "wrong_undo_type": """
        @count.undo
        async def uncount(ctx: StepContext, n: int, c: str) -> None: ...
        """,
}


def test_mypy_checks_steps_and_undos(tmp_path: Path) -> None:
    paths = []
    for name, body in _CASES.items():
        path = tmp_path / f"{name}.py"
        path.write_text(_HEADER + textwrap.dedent(body))
        paths.append(str(path))
    stdout, _, _ = mypy_api.run(["--strict", "--cache-dir", str(tmp_path / "cache"), *paths])
    errors = {
        name: [line for line in stdout.splitlines() if f"{name}.py:" in line] for name in _CASES
    }
    assert errors["good"] == []
    assert any("Callable[[StepContext, int, int]" in e for e in errors["wrong_dependency_type"])
    assert any("Callable[[StepContext, int]" in e for e in errors["wrong_input_type"])
    assert any('"undo"' in e for e in errors["wrong_undo_type"])
