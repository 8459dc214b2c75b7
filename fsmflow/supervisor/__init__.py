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
work is running other supervisors, started in order and each acknowledged, and
restarting them by strategy, restart type, intensity and backoff; its handle adds, stops,
restarts and removes children while it runs. :class:`SupervisorPool` runs identical
children started on demand with their own arguments. Trees nest and draw themselves.
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
from ._tree_actions import (
    EndChild,
    GiveUp,
    RecordRestart,
    RecordStartFailure,
    ServeRequest,
    StartChildren,
    TreeAction,
)
from ._tree_context import TreeContext
from ._tree_errors import (
    ChildAlreadyPresent,
    ChildNotFound,
    ChildNotStopped,
    ChildStartError,
    FailedToStartChild,
    RestartIntensityExceeded,
    TreeNotRunning,
    TreeRequestError,
)
from ._tree_handle import BaseTreeHandle, PoolHandle, TreeHandle
from ._tree_pool import SupervisorPool
from ._tree_requests import (
    ChildRequest,
    DeleteChild,
    Reply,
    RestartChild,
    StartChild,
    TerminateChild,
)
from ._tree_states import (
    ChildExited,
    ChildrenStarted,
    ChildrenStopped,
    Escalating,
    Failed,
    RestartDue,
    Restarting,
    Running,
    Shutdown,
    ShuttingDown,
    StartFailed,
    Starting,
    Stopped,
    TreeEvent,
    TreeFault,
    TreeState,
)
from ._tree_values import (
    AutoShutdown,
    ChildCounts,
    ChildSpec,
    ChildState,
    ChildStatus,
    ChildTemplate,
    PendingRestart,
    RestartBackoff,
    RestartIntensity,
    RestartRecord,
    RestartStrategy,
    RestartType,
)
from ._watcher import StateWatcher, WatcherClosed

__all__ = [
    "CONTINUE",
    "TERMINATE",
    "AutoShutdown",
    "BaseTreeHandle",
    "ChannelBuilder",
    "ChildAlreadyPresent",
    "ChildCounts",
    "ChildExited",
    "ChildNotFound",
    "ChildNotStopped",
    "ChildRequest",
    "ChildSpec",
    "ChildStartError",
    "ChildState",
    "ChildStatus",
    "ChildTemplate",
    "ChildrenStarted",
    "ChildrenStopped",
    "CompletionEvent",
    "Continue",
    "DeleteChild",
    "EndChild",
    "Escalating",
    "EventLoopDirective",
    "EventReceiver",
    "EventSender",
    "ExitKind",
    "ExternalChannelClosed",
    "ExternalEventMode",
    "ExternalEventPolicy",
    "Failed",
    "FailedToStartChild",
    "GiveUp",
    "HandlerSupervised",
    "HandlerSupervisedWithExternalEvents",
    "IdleBackoff",
    "Journal",
    "MemoryJournal",
    "PendingRestart",
    "PoolHandle",
    "RecordRestart",
    "RecordStartFailure",
    "Reply",
    "RestartBackoff",
    "RestartChild",
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
    "ServeRequest",
    "Shutdown",
    "ShuttingDown",
    "StartChild",
    "StartChildren",
    "StartFailed",
    "Starting",
    "StateWatcher",
    "Stopped",
    "SupervisionTree",
    "Supervisor",
    "SupervisorError",
    "SupervisorHandle",
    "SupervisorPool",
    "TaskSpawner",
    "Terminate",
    "TerminateChild",
    "TransitionListener",
    "TransitionRecord",
    "TreeAction",
    "TreeContext",
    "TreeEvent",
    "TreeFault",
    "TreeHandle",
    "TreeNotRunning",
    "TreeRequestError",
    "TreeState",
    "Trigger",
    "WatcherClosed",
    "start_supervisor",
]
