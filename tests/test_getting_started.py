"""Every code block of docs/getting-started.md is code the test suite runs.

The page's Python blocks are sections of examples/turnstile_supervisor.py and
tests/test_turnstile_supervisor.py (included with pymdownx.snippets), which mypy --strict
checks and tests/test_turnstile_supervisor.py runs on trio and asyncio; this file checks
that the page shows only such sections, that together they are the whole program, and
that its commands work.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fsmflow import cli

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "getting-started.md"
TESTED = {"examples/turnstile_supervisor.py", "tests/test_turnstile_supervisor.py"}
SNIPPET = re.compile(r'--8<-- "([^":]+):(\w+)"')
START = re.compile(r"^\s*# --8<-- \[start:(\w+)\]\s*$")
END = re.compile(r"^\s*# --8<-- \[end:(\w+)\]\s*$")


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.S)


def sections(path: str) -> dict[str, list[str]]:
    """Section name -> its lines, as pymdownx.snippets cuts them."""
    found: dict[str, list[str]] = {}
    current: str | None = None
    for line in (ROOT / path).read_text(encoding="utf-8").splitlines():
        if start := START.match(line):
            current = start.group(1)
            found[current] = []
        elif END.match(line):
            current = None
        elif current is not None:
            found[current].append(line)
    return found


def included() -> list[tuple[str, str]]:
    pairs = []
    for block in blocks("python"):
        lines = [line for line in block.splitlines() if line.strip()]
        matches = [SNIPPET.fullmatch(line) for line in lines]
        assert all(matches), f"a Python block on the page is not a tested snippet:\n{block}"
        pairs += [(m.group(1), m.group(2)) for m in matches if m]
    return pairs


def test_python_blocks_are_sections_of_tested_files() -> None:
    pairs = included()
    assert pairs, "the page shows no code"
    for path, name in pairs:
        assert path in TESTED, f"{path} is not run by the test suite"
        assert name in sections(path), f"{path} has no section {name!r}"


def test_the_page_shows_the_whole_program() -> None:
    # Outside its sections the example has only its module docstring and the
    # `from __future__` import; a reader who copies the page has the whole program.
    path = "examples/turnstile_supervisor.py"
    shown = {name for p, name in included() if p == path}
    assert shown == set(sections(path))
    source = (ROOT / path).read_text(encoding="utf-8")
    body = source.split('"""', 2)[2]
    outside = []
    inside = False
    for line in body.splitlines():
        if START.match(line) or END.match(line):
            inside = bool(START.match(line))
            continue
        if not inside and line.strip() and line != "from __future__ import annotations":
            outside.append(line)
    assert not outside, f"lines the page does not show: {outside}"


def test_the_page_draws_with_the_command_it_shows(capsys: pytest.CaptureFixture[str]) -> None:
    commands = [line for block in blocks("sh") for line in block.splitlines()]
    drawing = [c for c in commands if c.startswith("fsmflow diagram ")]
    assert drawing == ["fsmflow diagram examples.turnstile_supervisor:Turnstile"]
    assert cli.main(drawing[0].split()[1:]) == 0
    out = capsys.readouterr().out
    assert "UNLOCKED --> LOCKED: PUSH, JAMMED, after 10s" in out
    assert "CLOSED --> [*]" in out
    assert "fsmflow --version" in commands
