"""The ``fsmflow`` command line.

Each subcommand lives in the module of the layer it serves and exposes
``register(commands)``, which adds its parser to ``commands`` (the subparsers object) and
sets ``handler``: a callable taking the parsed arguments and returning the exit status.
To add a subcommand, write such a module and list its ``register`` in :data:`COMMANDS`.

Handlers report user errors through their parser (``parser.error`` exits with status 2
and the usage; ``parser.exit(1, message)`` for failures), so :func:`main` turns every
``SystemExit`` into a returned status instead of exiting the interpreter.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from . import __version__
from ._runs_cli import register as register_runs
from .diagrams._cli import register as register_diagram
from .durable._cli import register as register_worker

#: The ``register`` functions of every subcommand, in the order ``--help`` lists them.
COMMANDS: tuple[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None], ...] = (
    register_diagram,
    register_runs,
    register_worker,
)


def build_parser() -> argparse.ArgumentParser:
    """The ``fsmflow`` parser with every subcommand of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="fsmflow", description="Typed finite-state-machine supervisors: tools."
    )
    parser.add_argument("--version", action="version", version=f"fsmflow {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in COMMANDS:
        register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``fsmflow`` with ``argv`` (default: the process's arguments); return the exit
    status: 0 on success, 2 for a usage error, 1 when a command failed."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
    except SystemExit as exc:
        # What the interpreter would do with it: None is success, a message is printed.
        code = exc.code
        if code is None or isinstance(code, int):
            return code or 0
        print(code, file=sys.stderr)
        return 1
