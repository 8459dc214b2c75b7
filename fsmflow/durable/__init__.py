"""Durable runs: typed workflows whose every step is checkpointed, run by workers that
share a store, with saga compensation.

Define a :class:`Workflow` (input type, output type, steps with optional undos, retry
policies and timeouts), start runs with :func:`start_run` (persisted before any worker
sees them), and run :class:`Worker` s — in this process or many others — on the same
store. Each step's output is committed together with the run's new state in one
transaction fenced by the run's lease, so a crash re-runs at most the step that was
running, and a worker that lost its lease can never overwrite the run's newer owner.

Under the steps is one general mechanism: :func:`run_durably` / :class:`Durable` run any
supervisor whose state and context types the codec knows, committing its state after
each transition. A workflow run is such a supervisor.
"""

from ._control import (
    RunRow,
    cancel_durable_run,
    list_durable_runs,
    retry_durable_run,
    show_durable_run,
    signal_durable_run,
)
from ._durable import (
    CheckpointPlan,
    Durable,
    DurableBinding,
    PlansCheckpoints,
    StateCodec,
    run_durably,
)
from ._errors import (
    DurableError,
    OutputTooLarge,
    RunFailed,
    RunNotFinished,
    SignalTimeout,
    StepFailed,
    UnknownRun,
    UnknownSignal,
    WorkflowDefinitionError,
)
from ._fsm import RunEvent, RunProgress
from ._handle import RunHandle, start_run
from ._policy import DEFAULT_QUEUE, NO_RETRY, Queue, RetryPolicy
from ._records import RunRecord, RunStatus
from ._supervisor import RunSettings, StepContext, WorkflowRun
from ._worker import Worker, WorkerStats
from ._workflow import Step, Workflow

__all__ = [
    "DEFAULT_QUEUE",
    "NO_RETRY",
    "CheckpointPlan",
    "Durable",
    "DurableBinding",
    "DurableError",
    "OutputTooLarge",
    "PlansCheckpoints",
    "Queue",
    "RetryPolicy",
    "RunEvent",
    "RunFailed",
    "RunHandle",
    "RunNotFinished",
    "RunProgress",
    "RunRecord",
    "RunRow",
    "RunSettings",
    "RunStatus",
    "SignalTimeout",
    "StateCodec",
    "Step",
    "StepContext",
    "StepFailed",
    "UnknownRun",
    "UnknownSignal",
    "Worker",
    "WorkerStats",
    "Workflow",
    "WorkflowDefinitionError",
    "WorkflowRun",
    "cancel_durable_run",
    "list_durable_runs",
    "retry_durable_run",
    "run_durably",
    "show_durable_run",
    "signal_durable_run",
    "start_run",
]
