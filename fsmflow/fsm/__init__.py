"""The typed FSM engine: define a machine with :class:`FsmBuilder`, run it as a
:class:`StateMachine`.

States and events are values of your own types (an ``Enum``, or a union of frozen attrs
classes that may carry data). Handlers are keyed by (state variant, event variant) and
return a :class:`Transition`; the machine hands back the actions and never runs them
itself, so the supervisor that drives it decides what an action error means.
"""

from ._builder import AnyStateScope, FsmBuilder, StateScope, UnreachableStateWarning
from ._errors import (
    ActionError,
    FsmError,
    HandlerError,
    InvalidDefinitionError,
    UndeclaredTargetError,
    UnhandledEventError,
)
from ._machine import StateMachine
from ._spec import FsmSpec, HandlerKind, HandlerSpec, HookKind, HookSpec
from ._transition import STAY, FsmAction, HookResult, Transition, TransitionResult, goto, stay
from ._variants import Variant, VariantSet, variant_name

__all__ = [
    "STAY",
    "ActionError",
    "AnyStateScope",
    "FsmAction",
    "FsmBuilder",
    "FsmError",
    "FsmSpec",
    "HandlerError",
    "HandlerKind",
    "HandlerSpec",
    "HookKind",
    "HookResult",
    "HookSpec",
    "InvalidDefinitionError",
    "StateMachine",
    "StateScope",
    "Transition",
    "TransitionResult",
    "UndeclaredTargetError",
    "UnhandledEventError",
    "UnreachableStateWarning",
    "Variant",
    "VariantSet",
    "goto",
    "stay",
    "variant_name",
]
