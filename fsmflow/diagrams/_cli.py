"""``fsmflow diagram MODULE:ATTR [--format mermaid|dot|svg] [-o FILE] [--title TITLE]``.

Exit status: 0 on success; 2 (with usage) when ``MODULE:ATTR`` does not lead to anything
drawable (see :mod:`._targets`); 1 when the diagram could not be made (the spec failed to
build, ``dot`` is missing for svg, the output file could not be written).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from pathlib import Path

from ..fsm import FsmError
from ._export import DiagramToolMissing, render
from ._targets import DiagramTargetError, load_target

FORMATS = ("mermaid", "dot", "svg")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``diagram`` subcommand to the ``fsmflow`` parser."""
    parser = commands.add_parser(
        "diagram",
        help="draw a state machine, supervisor, graph, DAG or tree as Mermaid, DOT or SVG",
        description=(
            "Draw what MODULE:ATTR names: an FsmSpec or a StateMachine; a supervisor class "
            "(or any object with an fsm_spec attribute); a graph, a DAG, a supervision tree "
            "or anything else with a flowchart() method; or a zero-argument callable "
            "returning one of these. MODULE is imported with the current directory on "
            "sys.path. Mermaid and DOT need nothing else; svg needs Graphviz's dot."
        ),
    )
    parser.add_argument(
        "target", metavar="MODULE:ATTR", help="e.g. examples.turnstile:turnstile_spec"
    )
    parser.add_argument(
        "-f",
        "--format",
        choices=FORMATS,
        default="mermaid",
        help="output format (default: mermaid)",
    )
    parser.add_argument(
        "-o", "--output", metavar="FILE", type=Path, help="write to FILE instead of stdout"
    )
    parser.add_argument("--title", help="diagram title (default: the spec's or graph's name)")
    parser.set_defaults(handler=functools.partial(_run, parser))


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        subject = load_target(args.target)
    except DiagramTargetError as exc:
        parser.error(str(exc))
    except FsmError as exc:
        parser.exit(1, f"{parser.prog}: error: {args.target} did not build: {exc}\n")
    try:
        data = render(subject, args.format, title=args.title)
    except DiagramToolMissing as exc:
        parser.exit(1, f"{parser.prog}: error: {exc}\n")
    if args.output is None:
        text = data.decode()
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return 0
    try:
        args.output.write_bytes(data)
    except OSError as exc:
        parser.exit(1, f"{parser.prog}: error: cannot write {args.output}: {exc}\n")
    return 0
