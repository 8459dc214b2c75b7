"""The README's example runs and prints what the README says it prints — on trio (as its
``__main__`` block does) and on asyncio — and drawing it does not run it."""

from __future__ import annotations

import asyncio
import importlib.util
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from fsmflow import cli

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def readme() -> str:
    return README.read_text(encoding="utf-8")


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The README's python example saved as ``readme_example.py`` in the current directory."""
    match = re.search(r"```python\n(.*?)```", readme(), re.S)
    assert match is not None, "README.md has no python example"
    script = tmp_path / "readme_example.py"
    script.write_text(match.group(1), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield script
    sys.modules.pop("readme_example", None)


def printed_in_readme() -> str:
    match = re.search(r"It prints `([^`]+)`", readme())
    assert match is not None
    return match.group(1)


def test_the_example_runs_as_documented(example: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(example)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == printed_in_readme()


def load(example: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("readme_example", example)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_same_code_runs_on_asyncio(example: Path) -> None:
    module = load(example)
    outcome = asyncio.run(module.Fetcher("fetcher").run())
    line = f"{outcome.exit.name} {outcome.final_state.name} {outcome.transitions}"
    assert line == printed_in_readme()


def test_importing_or_drawing_it_does_not_run_it(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    load(example)
    assert capsys.readouterr().out == ""
    assert cli.main(["diagram", "readme_example:Fetcher"]) == 0
    out = capsys.readouterr().out
    assert "stateDiagram-v2" in out
    assert "FETCHING --> RETRYING: ERROR" in out
    assert printed_in_readme() not in out


def test_the_commands_say_to_make_a_virtual_environment_first() -> None:
    text = readme()
    venv = text.index("python3 -m venv .venv && . .venv/bin/activate")
    assert "externally-managed-environment" in text
    install = text.index("python3 -m pip install . && python3 examples/order_lifecycle.py")
    # CI runs this command verbatim (.ci/run); it must stay as it is.
    checks = text.index("python3 -m pip install --upgrade nox && python3 -m nox")
    assert venv < install < checks
    assert "python3 -m pip install --upgrade nox && python3 -m nox" in (
        ROOT / ".ci" / "run"
    ).read_text(encoding="utf-8")
