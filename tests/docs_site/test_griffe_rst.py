"""tools/griffe_rst.py: reStructuredText literal blocks become fenced Markdown code."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(scope="module")
def griffe_rst() -> ModuleType:
    pytest.importorskip("griffe")
    spec = importlib.util.spec_from_file_location("griffe_rst", ROOT / "tools" / "griffe_rst.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["griffe_rst"] = module
    spec.loader.exec_module(module)
    return module


def test_an_indented_literal_block_is_fenced(griffe_rst: ModuleType) -> None:
    text = "Build it::\n\n    spec = builder.build()\n      nested()\n\nThen run it."
    assert griffe_rst._fence_literal_blocks(text) == (
        "Build it:\n\n```python\nspec = builder.build()\n  nested()\n```\n\nThen run it."
    )


def test_an_unindented_block_ends_at_the_blank_line(griffe_rst: ModuleType) -> None:
    text = "Builds the channel::\n\nsender = make()\n\nMore prose."
    assert griffe_rst._fence_literal_blocks(text) == (
        "Builds the channel:\n\n```python\nsender = make()\n```\n\nMore prose."
    )


def test_a_bare_marker_line_is_dropped(griffe_rst: ModuleType) -> None:
    text = "Usage:\n\n::\n\n    run()\n"
    assert griffe_rst._fence_literal_blocks(text) == "Usage:\n\n```python\nrun()\n```\n"


def test_text_without_markers_is_unchanged(griffe_rst: ModuleType) -> None:
    text = "A ratio 2::1 inside a line stays.\n    indented prose"
    assert griffe_rst._fence_literal_blocks(text) == text
