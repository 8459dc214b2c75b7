"""A DAG drawn as Mermaid, for docs generated from code."""

from __future__ import annotations

from typing import Any

from ..diagrams import flowchart_to_mermaid
from ._model import Dag


def dag_to_mermaid(dag: Dag[Any], *, title: str | None = None) -> str:
    """Mermaid ``flowchart`` source of ``dag`` (see :meth:`Dag.flowchart`)."""
    return flowchart_to_mermaid(dag.flowchart(title=title))
