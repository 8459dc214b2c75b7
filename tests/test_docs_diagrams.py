"""The docs' diagrams (docs/diagrams/*.md) are what the code draws today."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fsmflow.diagrams import to_mermaid
from fsmflow.diagrams._docs import DOC_DIAGRAMS, DOC_SOURCES, REGENERATE, fragment, main

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "diagrams"
TURNSTILE = {"turnstile": "examples.turnstile:turnstile_spec"}


def test_checked_in_diagrams_are_current(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path)]) == 0
    generated = sorted(tmp_path.glob("*.md"))
    assert [p.stem for p in generated] == sorted([*DOC_DIAGRAMS, *DOC_SOURCES])
    problems = []
    for fresh in generated:
        checked_in = DOCS / fresh.name
        if not checked_in.exists():
            problems.append(f"{checked_in.relative_to(ROOT)} is missing")
        elif checked_in.read_text(encoding="utf-8") != fresh.read_text(encoding="utf-8"):
            problems.append(f"{checked_in.relative_to(ROOT)} is stale")
    assert not problems, f"{', '.join(problems)}: run `{REGENERATE}` from the repository root"


def test_fragment_is_a_mermaid_block() -> None:
    from examples.turnstile import turnstile_spec

    text = fragment("examples.turnstile:turnstile_spec")
    assert text.startswith("<!-- Generated from examples.turnstile:turnstile_spec by `")
    assert REGENERATE in text.splitlines()[0]
    assert text.endswith(f"\n```mermaid\n{to_mermaid(turnstile_spec())}```\n")


def test_write_creates_the_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outdir = tmp_path / "a" / "b"
    assert main([str(outdir)], registry=TURNSTILE) == 0
    assert capsys.readouterr().out == f"wrote {outdir / 'turnstile.md'}\n"
    assert (outdir / "turnstile.md").read_text(encoding="utf-8") == fragment(TURNSTILE["turnstile"])


def test_check_lists_missing_and_stale_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = {**TURNSTILE, "again": "examples.turnstile:turnstile_spec"}
    assert main([str(tmp_path), "--check"], registry=registry) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'turnstile.md'} (missing)" in err
    assert f"{tmp_path / 'again.md'} (missing)" in err
    assert f"run: {REGENERATE}" in err

    assert main([str(tmp_path)], registry=registry) == 0
    assert main([str(tmp_path), "--check"], registry=registry) == 0
    capsys.readouterr()

    (tmp_path / "again.md").write_text("old\n", encoding="utf-8")
    assert main([str(tmp_path), "--check"], registry=registry) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'again.md'} (out of date)" in err
    assert "turnstile.md" not in err


def test_command_line_check_on_the_checked_in_docs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fsmflow.diagrams._docs", "docs/diagrams", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_source_fragments_must_be_text(tmp_path: Path) -> None:
    from fsmflow.diagrams._docs import expected_files

    with pytest.raises(TypeError, match="not Mermaid source text"):
        expected_files({}, {"bad": "examples.turnstile:turnstile_spec"})


needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None and os.environ.get("CI") != "true",
    reason="Graphviz's dot is not installed (the page's first example renders SVG)",
)


@needs_dot
def test_the_python_on_the_diagrams_page_runs(capsys: pytest.CaptureFixture[str]) -> None:
    page = (ROOT / "docs" / "drawing-diagrams.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", page, re.S)
    assert len(blocks) >= 2
    for block in blocks:
        exec(compile(block, "drawing-diagrams.md", "exec"), {"__name__": "docs_page"})
    assert 'ask -.->|"approved"| done' in capsys.readouterr().out
