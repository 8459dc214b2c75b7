"""Supervisors: an FSM driven by one loop that turns every failure into an event.

Why supervised FSMs? A long-running task that fails half-way must end up in a state you
chose, not in whatever state the exception left it. Here the FSM is the single source of
truth: ``dispatch_state`` asks "what now in this state?", every error in it or in an
action becomes ``event_for_action_error(msg)`` for the FSM to handle, and the loop writes
a completion event exactly once however the run ends.

Layers: :class:`Supervisor` (owns the spec) -> :class:`SelfSupervised` /
:class:`HandlerSupervised` (what you subclass) -> the ``*WithExternalEvents`` wrappers
(an external-event channel consulted per state, and a :class:`StateWatcher`). Only the
loop calls ``machine.handle`` and runs actions.

:class:`SupervisionTree` (after Erlang/OTP) is a supervisor built on the same loop whose
work is running other supervisors and restarting them by strategy, restart type,
intensity and backoff; trees nest.
"""

from ._backoff import IdleBackoff
from ._base import HandlerSupervised, SelfSupervised, Supervisor, TransitionListener
from ._directives import CONTINUE, TERMINATE, Continue, EventLoopDirective, Terminate, Trigger
from ._external import (
    ChannelBuilder,
    EventReceiver,
    EventSender,
    ExternalChannelClosed,
    ExternalEventMode,
    ExternalEventPolicy,
    HandlerSupervisedWithExternalEvents,
    SelfSupervisedWithExternalEvents,
)
from ._handle import SupervisorHandle, TaskSpawner, start_supervisor
from ._records import (
    CompletionEvent,
    ExitKind,
    Journal,
    MemoryJournal,
    RunOutcome,
    SupervisorError,
    TransitionRecord,
)
from ._tree import SupervisionTree
from ._tree_context import GiveUp, RecordRestart, StartChildren, TreeAction, TreeContext
from ._tree_states import (
    Begin,
    ChildExited,
    ChildrenStopped,
    Escalating,
    Failed,
    RestartDue,
    Restarting,
    Running,
    Shutdown,
    ShuttingDown,
    Starting,
    Stopped,
    TreeEvent,
    TreeFault,
    TreeState,
)
from ._tree_values import (
    ChildSpec,
    ChildStatus,
    PendingRestart,
    RestartBackoff,
    RestartIntensity,
    RestartIntensityExceeded,
    RestartRecord,
    RestartStrategy,
    RestartType,
)
from ._watcher import StateWatcher, WatcherClosed

__all__ = [
    "CONTINUE",
    "TERMINATE",
    "Begin",
    "ChannelBuilder",
    "ChildExited",
    "ChildSpec",
    "ChildStatus",
    "ChildrenStopped",
    "CompletionEvent",
    "Continue",
    "Escalating",
    "EventLoopDirective",
    "EventReceiver",
    "EventSender",
    "ExitKind",
    "ExternalChannelClosed",
    "ExternalEventMode",
    "ExternalEventPolicy",
    "Failed",
    "GiveUp",
    "HandlerSupervised",
    "HandlerSupervisedWithExternalEvents",
    "IdleBackoff",
    "Journal",
    "MemoryJournal",
    "PendingRestart",
    "RecordRestart",
    "RestartBackoff",
    "RestartDue",
    "RestartIntensity",
    "RestartIntensityExceeded",
    "RestartRecord",
    "RestartStrategy",
    "RestartType",
    "Restarting",
    "RunOutcome",
    "Running",
    "SelfSupervised",
    "SelfSupervisedWithExternalEvents",
    "Shutdown",
    "ShuttingDown",
    "StartChildren",
    "Starting",
    "StateWatcher",
    "Stopped",
    "SupervisionTree",
    "Supervisor",
    "SupervisorError",
    "SupervisorHandle",
    "TaskSpawner",
    "Terminate",
    "TransitionListener",
    "TransitionRecord",
    "TreeAction",
    "TreeContext",
    "TreeEvent",
    "TreeFault",
    "TreeState",
    "Trigger",
    "WatcherClosed",
    "start_supervisor",
]
