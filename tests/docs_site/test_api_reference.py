"""The API reference covers every public name, and docstrings read as prose, not markup."""

from __future__ import annotations

import html
import importlib
import re
from pathlib import Path

import pytest

import fsmflow

PACKAGES = (
    "fsm",
    "supervisor",
    "diagrams",
    "store",
    "reactor",
    "graph",
    "dag",
    "durable",
    "testing",
)


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_has_an_entry(site_dir: Path, package: str) -> None:
    module = importlib.import_module(f"fsmflow.{package}")
    page = (site_dir / "api" / package / "index.html").read_text("utf-8")
    missing = [name for name in module.__all__ if f'id="fsmflow.{package}.{name}"' not in page]
    assert not missing, f"fsmflow.{package} names without an API entry: {missing}"


def test_the_everyday_api_links_to_each_name(site_dir: Path) -> None:
    page = (site_dir / "api" / "index.html").read_text("utf-8")
    links = set(re.findall(r'href="[^"#]*#fsmflow\.(\w+)\.(\w+)"', page))
    linked = {name for _, name in links}
    missing = [n for n in fsmflow.__all__ if n != "__version__" and n not in linked]
    assert not missing, f"fsmflow names not linked from the API overview: {missing}"
    for package, name in links:
        assert getattr(importlib.import_module(f"fsmflow.{package}"), name) is getattr(
            fsmflow, name
        )


@pytest.mark.parametrize("package", PACKAGES)
def test_docstrings_show_no_rest_markup(site_dir: Path, package: str) -> None:
    page = (site_dir / "api" / package / "index.html").read_text("utf-8")
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    roles = re.findall(r":(?:class|func|meth|attr|data|mod|exc|obj):`", text)
    assert not roles, f"{len(roles)} Sphinx roles left on the fsmflow.{package} page"
    assert not re.search(r"\w::\n", text), "a literal-block marker (::) was left"
