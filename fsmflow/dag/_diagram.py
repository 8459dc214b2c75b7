"""A DAG drawn as a Mermaid flowchart, for docs generated from code."""

from __future__ import annotations

from typing import Any

from ._model import Dag, Intent


def dag_to_mermaid(dag: Dag[Any], *, title: str | None = None) -> str:
    """Mermaid ``flowchart`` source: one node per processor (transforms as rounded
    stadiums, analyzers as boxes), one edge per dependency, in topological order."""
    ids = {pid: f"n{i}" for i, pid in enumerate(dag.order)}
    lines = []
    if title:
        lines += ["---", f'title: "{_label(title)}"', "---"]
    lines.append("flowchart LR")
    for pid in dag.order:
        label = _label(pid)
        if dag.processors[pid].intent is Intent.TRANSFORM:
            lines.append(f'    {ids[pid]}(["{label}"])')
        else:
            lines.append(f'    {ids[pid]}["{label}"]')
    for pid in dag.order:
        for dep in dag.processors[pid].dependencies:
            lines.append(f"    {ids[dep]} --> {ids[pid]}")
    transforms = [ids[pid] for pid in dag.transform_chain]
    if transforms:
        lines.append("    classDef transform fill:#e8f0fe,stroke:#1a73e8")
        lines.append(f"    class {','.join(transforms)} transform")
    return "\n".join(lines) + "\n"


def _label(text: str) -> str:
    return (
        text.replace("&", "#38;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")
    )
