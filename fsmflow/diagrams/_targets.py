"""Find what to draw from a ``MODULE:ATTR`` reference, for the CLI and the docs.

``ATTR`` (dotted for nested attributes) may name:

* an :class:`FsmSpec` or a :class:`StateMachine`;
* any object implementing :class:`~fsmflow.diagrams.SupportsFlowchart` (a graph, a DAG,
  a supervision tree, a :class:`~fsmflow.diagrams.Flowchart`), drawn as a flowchart;
* a class, or an object, with an ``fsm_spec`` attribute that is an ``FsmSpec`` or a
  zero-argument callable returning one, which is how supervisors expose their machine (a
  classmethod or staticmethod);
* a callable taking no arguments that returns an ``FsmSpec`` (``turnstile_spec``) or an
  object with a ``flowchart()`` method (``build_pipeline``).

The checks run in that order, so an object that is both drawable as a flowchart and has
an ``fsm_spec`` (a running tree) is drawn as its flowchart.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable
from typing import Any

from .._flowchart import SupportsFlowchart
from ..fsm import FsmSpec, StateMachine
from ._model import DiagramSubject

_DOTTED = r"[^\W\d]\w*(?:\.[^\W\d]\w*)*"
_REFERENCE = re.compile(rf"({_DOTTED}):({_DOTTED})\Z")
_EXPECTED = (
    "an FsmSpec, a StateMachine, an object with a flowchart() method (a graph, a DAG, a "
    "supervision tree), a class or object whose fsm_spec attribute is an FsmSpec or a "
    "zero-argument callable returning one (a supervisor), or a zero-argument callable "
    "returning one of these"
)


class DiagramTargetError(ValueError):
    """A ``MODULE:ATTR`` reference is malformed, names a missing module or attribute, or
    names something no diagram can be drawn from. The message says which."""


def load_target(reference: str) -> DiagramSubject | SupportsFlowchart:
    """Import ``MODULE`` and resolve ``ATTR`` to a spec or machine (see the module doc).

    Raises :class:`DiagramTargetError` for the problems a user fixes by changing the
    reference. Errors raised while importing the module (other than the module itself
    not existing) or while building the spec propagate unchanged.
    """
    match = _REFERENCE.match(reference)
    if match is None:
        raise DiagramTargetError(
            f"{reference!r} is not a MODULE:ATTR reference "
            "(for example examples.turnstile:turnstile_spec)"
        )
    module_name, attr_path = match.groups()
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (
            module_name == exc.name or module_name.startswith(exc.name + ".")
        ):
            raise
        raise DiagramTargetError(
            f"module {module_name!r} not found (is it importable from the current directory "
            "or the active environment?)"
        ) from None
    target: object = module
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise DiagramTargetError(
                f"module {module_name!r} has no attribute {attr_path!r}"
            ) from None
    return resolve_target(target, reference)


def resolve_target(target: object, reference: str) -> DiagramSubject | SupportsFlowchart:
    """The spec, machine or flowchart source that ``target`` (found at ``reference``)
    stands for."""
    if isinstance(target, FsmSpec | StateMachine):
        return target
    if isinstance(target, SupportsFlowchart) and not isinstance(target, type):
        return target
    provided = getattr(target, "fsm_spec", None)
    if isinstance(target, type) and provided is None:
        raise DiagramTargetError(
            f"{reference} is the class {target.__qualname__}, which has no fsm_spec "
            f"attribute; expected {_EXPECTED}"
        )
    if provided is not None:
        if isinstance(provided, FsmSpec):
            return provided
        if callable(provided):
            return _call_for_spec(provided, f"{reference}.fsm_spec")
        raise DiagramTargetError(
            f"{reference}.fsm_spec is of type {type(provided).__name__}; expected an FsmSpec or a "
            "zero-argument callable returning one"
        )
    if callable(target):
        return _call_for_spec(target, reference)
    raise DiagramTargetError(
        f"{reference} is of type {type(target).__name__}; expected {_EXPECTED}"
    )


def _call_for_spec(
    function: Callable[..., Any], what: str
) -> FsmSpec[Any, Any, Any, Any] | SupportsFlowchart:
    try:
        signature = inspect.signature(function)
    except ValueError:  # no signature to check (some builtins); calling it will tell
        pass
    else:
        try:
            signature.bind()
        except TypeError:
            raise DiagramTargetError(
                f"{what} must be callable without arguments, but its signature is {signature}"
            ) from None
    result = function()
    if isinstance(result, FsmSpec) or (
        isinstance(result, SupportsFlowchart) and not isinstance(result, type)
    ):
        return result
    raise DiagramTargetError(
        f"{what}() returned an object of type {type(result).__name__}, not an FsmSpec or an "
        "object with a flowchart() method"
    )
