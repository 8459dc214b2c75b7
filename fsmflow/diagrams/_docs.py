"""Regenerate the state diagrams the docs embed, or check that they are current.

Usage::

    python -m fsmflow.diagrams._docs OUTDIR           # write OUTDIR/<name>.md
    python -m fsmflow.diagrams._docs OUTDIR --check   # exit 1 listing stale files

Each ``<name>.md`` is a markdown fragment holding one fenced ``mermaid`` block, drawn from
the ``MODULE:ATTR`` that :data:`DOC_DIAGRAMS` lists under ``name``. The fragments are
checked in (``docs/diagrams``) and a test fails when one is stale, so the docs always show
the machines the code defines.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from ._export import to_mermaid
from ._targets import load_target

#: Doc diagram name -> ``MODULE:ATTR`` of what it draws. To add a diagram to the docs, add
#: an entry here and run :data:`REGENERATE`.
DOC_DIAGRAMS: Mapping[str, str] = {
    "turnstile": "examples.turnstile:turnstile_spec",
    "order_lifecycle": "examples.order_lifecycle:order_spec",
    "turnstile_supervisor": "examples.turnstile_supervisor:Turnstile",
    "connection_manager": "examples.connection_manager:ConnectionManager",
    "pipeline_stage": "examples.pipeline_stage:PipelineStage",
    "supervision_tree": "fsmflow.supervisor:SupervisionTree",
    "supervision_tree_example": "examples.supervision_tree:build_tree",
    "dag_execution": "fsmflow.dag:DagExecution",
    "dag_processor": "fsmflow.dag:node_spec",
    "graph_execution": "fsmflow.graph:GraphExecution",
    "reactor": "fsmflow.reactor:Reactor",
    "accumulator": "fsmflow.reactor:AccumulatorSupervisor",
    "agent_workflow": "examples.agent_workflow:workflow",
    "order_saga": "examples.order_saga:order_saga",
}

#: Doc diagram name -> ``MODULE:FUNC`` of a zero-argument function returning Mermaid source,
#: for pictures that are not state machines (a DAG drawn by ``fsmflow.dag.dag_to_mermaid``).
DOC_SOURCES: Mapping[str, str] = {
    "document_pipeline": "examples.document_pipeline:pipeline_diagram",
    "supervision_tree_running": "examples.supervision_tree:running_diagram",
}

#: The command that regenerates the checked-in fragments.
REGENERATE = "python -m fsmflow.diagrams._docs docs/diagrams"


def fragment(reference: str) -> str:
    """The markdown fragment for the machine ``reference`` names."""
    return _wrap(reference, to_mermaid(load_target(reference)))


def source_fragment(reference: str) -> str:
    """The markdown fragment for the Mermaid source the function ``reference`` returns."""
    module_name, _, attr = reference.partition(":")
    function = getattr(importlib.import_module(module_name), attr)
    source = function()
    if not isinstance(source, str):
        raise TypeError(f"{reference} returned {type(source).__name__}, not Mermaid source text")
    return _wrap(reference, source)


def _wrap(reference: str, source: str) -> str:
    return (
        f"<!-- Generated from {reference} by `{REGENERATE}`; do not edit. -->\n"
        "\n"
        "```mermaid\n"
        f"{source}"
        "```\n"
    )


def expected_files(
    registry: Mapping[str, str] = DOC_DIAGRAMS, sources: Mapping[str, str] | None = None
) -> dict[str, str]:
    """File name -> content of every fragment in ``registry`` and ``sources`` (which
    defaults to :data:`DOC_SOURCES` when ``registry`` is the default one)."""
    if sources is None:
        sources = DOC_SOURCES if registry is DOC_DIAGRAMS else {}
    files = {f"{name}.md": fragment(reference) for name, reference in registry.items()}
    files.update({f"{name}.md": source_fragment(ref) for name, ref in sources.items()})
    return files


def write(outdir: Path, registry: Mapping[str, str] = DOC_DIAGRAMS) -> list[Path]:
    """Write every fragment into ``outdir`` (created if needed); return the paths."""
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, content in expected_files(registry).items():
        path = outdir / filename
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written


def stale(outdir: Path, registry: Mapping[str, str] = DOC_DIAGRAMS) -> list[str]:
    """Descriptions of the fragments in ``outdir`` that are missing or out of date."""
    problems = []
    for filename, content in expected_files(registry).items():
        path = outdir / filename
        if not path.exists():
            problems.append(f"{path} (missing)")
        elif path.read_text(encoding="utf-8") != content:
            problems.append(f"{path} (out of date)")
    return problems


def main(argv: Sequence[str] | None = None, registry: Mapping[str, str] = DOC_DIAGRAMS) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fsmflow.diagrams._docs",
        description="Regenerate (or --check) the docs' state diagram fragments.",
    )
    parser.add_argument("outdir", type=Path, metavar="OUTDIR")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if any file is stale"
    )
    args = parser.parse_args(argv)
    if not args.check:
        for path in write(args.outdir, registry):
            print(f"wrote {path}")
        return 0
    problems = stale(args.outdir, registry)
    if problems:
        print("stale diagram docs:", *problems, sep="\n  ", file=sys.stderr)
        print(f"run: {REGENERATE}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
