"""fsmflow: typed finite-state-machine supervisors for structured-concurrency Python.

The everyday API is re-exported here; each subpackage (:mod:`fsmflow.fsm`,
:mod:`fsmflow.diagrams`) documents its own layer.
"""

from .fsm import (
    STAY,
    ActionError,
    FsmAction,
    FsmBuilder,
    FsmError,
    FsmSpec,
    HandlerError,
    InvalidDefinitionError,
    StateMachine,
    Transition,
    UndeclaredTargetError,
    UnhandledEventError,
    UnreachableStateWarning,
    goto,
    stay,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "STAY",
    "ActionError",
    "FsmAction",
    "FsmBuilder",
    "FsmError",
    "FsmSpec",
    "HandlerError",
    "InvalidDefinitionError",
    "StateMachine",
    "Transition",
    "UndeclaredTargetError",
    "UnhandledEventError",
    "UnreachableStateWarning",
    "__version__",
    "goto",
    "stay",
]
