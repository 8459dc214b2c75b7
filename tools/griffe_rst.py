"""A Griffe extension that lets the API reference read fsmflow's reStructuredText-flavoured
docstrings as Markdown.

fsmflow's docstrings follow trio's and attrs' conventions: Sphinx roles
(``:class:`FsmSpec```, ``:func:`~fsmflow.diagrams.to_mermaid```), ``::`` before a literal
block, double-backtick literals. mkdocstrings renders docstrings as Markdown, where
double backticks already are code, but roles and ``::`` would show as written. Before
rendering, this extension rewrites every docstring of the package:

* a role whose target resolves (in the scope of the documented object, as Python would
  resolve the name) to an object the reference renders becomes a cross-reference to it,
  shown as code: ``[`FsmSpec`][fsmflow.fsm.FsmSpec]``; ``~`` shows only the last part;
* any other role (a builtin, another library, a private helper) becomes plain code;
* a role naming an ``fsmflow.`` path that does not exist is reported as a warning, which
  ``mkdocs build --strict`` turns into a failure;
* ``text::`` and the literal block after it become ``text:`` and a fenced Python code
  block (a line that is only ``::`` is dropped). The block is the indented lines that
  follow; when they are not indented (a docstring slip), the lines up to the next blank
  line.

The documented objects are the public names (``__all__``) of the packages listed in
``PACKAGES`` and their public members; a cross-reference always points at the page that
documents the public name, never at a private module.
"""

from __future__ import annotations

import builtins
import logging
import re
from collections.abc import Iterator
from typing import Any

import griffe

_logger = logging.getLogger("mkdocs.plugins.griffe_rst")

#: The packages the API reference documents, one page each.
PACKAGES = (
    "fsmflow.fsm",
    "fsmflow.supervisor",
    "fsmflow.diagrams",
    "fsmflow.store",
    "fsmflow.reactor",
    "fsmflow.graph",
    "fsmflow.dag",
    "fsmflow.testing",
)

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|data|mod|exc|obj|const|type):`([^`]+)`")


class RstToMarkdown(griffe.Extension):
    """Rewrite roles and literal-block markers in every docstring of ``fsmflow``."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **_: Any) -> None:
        if pkg.name != "fsmflow":
            return
        documented = _documented(loader)
        for obj in _walk(pkg):
            if obj.docstring is not None:
                obj.docstring.value = _convert(obj.docstring.value, obj, loader, documented)


def _walk(obj: griffe.Object) -> Iterator[griffe.Object]:
    """``obj`` and every object defined inside it (aliases are visited at their target)."""
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _walk(member)  # type: ignore[arg-type]


def _documented(loader: griffe.GriffeLoader) -> dict[str, str]:
    """Canonical path -> documented (public) path of everything the reference renders."""
    documented: dict[str, str] = {}
    collection = loader.modules_collection
    for package_path in PACKAGES:
        package = collection.get_member(package_path)
        documented[package.path] = package.path
        for name in package.exports or ():
            member = package.get_member(name)
            _add(documented, member, f"{package_path}.{name}")
    return documented


def _add(documented: dict[str, str], member: Any, public_path: str) -> None:
    try:
        target = member.final_target if member.is_alias else member
    except (griffe.AliasResolutionError, griffe.CyclicAliasError):
        return
    documented.setdefault(target.path, public_path)
    if target.is_class:
        for name, child in target.all_members.items():
            if not name.startswith("_"):
                _add(documented, child, f"{public_path}.{name}")


def _convert(
    text: str, obj: griffe.Object, loader: griffe.GriffeLoader, documented: dict[str, str]
) -> str:
    def role(match: re.Match[str]) -> str:
        target = match.group(1).strip()
        short = target.startswith("~")
        target = target.lstrip("~").removesuffix("()")
        shown = target.rsplit(".", 1)[-1] if short else target
        path = _resolve(target, obj, loader)
        if path is not None and path in documented:
            return f"[`{shown}`][{documented[path]}]"
        if path is None and target.startswith("fsmflow."):
            _logger.warning(f"{obj.path}: docstring names {target!r}, which does not exist")
        return f"`{shown}`"

    return _fence_literal_blocks(_ROLE.sub(role, text))


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _fence_literal_blocks(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line.rstrip().endswith("::"):
            out.append(line)
            continue
        head = line.rstrip()[:-2].rstrip()
        if head:
            out.append(head + ":")
        start = index
        while start < len(lines) and not lines[start].strip():
            start += 1
        if start == len(lines):
            break
        base = _indent(line)
        end = start
        if _indent(lines[start]) > base:
            while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > base):
                end += 1
        else:
            while end < len(lines) and lines[end].strip():
                end += 1
        block = lines[start:end]
        while block and not block[-1].strip():
            block.pop()
        margin = min(_indent(b) for b in block if b.strip())
        if out and out[-1].strip():
            out.append("")
        out += ["```python", *(b[margin:] for b in block), "```", ""]
        index = end
        while index < len(lines) and not lines[index].strip():
            index += 1
    return "\n".join(out)


def _resolve(target: str, obj: griffe.Object, loader: griffe.GriffeLoader) -> str | None:
    """The canonical path ``target`` names from ``obj``'s scope, or None."""
    collection = loader.modules_collection
    if target.startswith("."):
        module = obj if obj.is_module else obj.module
        base = module if module.is_package else module.parent
        while target.startswith(".."):
            target = target[1:]
            base = base.parent if base is not None else None
        if base is None:
            return None
        target = f"{base.path}{target}"
    head, _, rest = target.partition(".")
    if target.startswith("fsmflow"):
        candidate = target
    elif head in vars(builtins):
        return None
    else:
        try:
            candidate = obj.resolve(head) + (f".{rest}" if rest else "")
        except griffe.NameResolutionError:
            return None
    try:
        found = collection.get_member(candidate)
    except (KeyError, ValueError, griffe.AliasResolutionError):
        return None
    try:
        return str(found.final_target.path if found.is_alias else found.path)
    except (griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None
