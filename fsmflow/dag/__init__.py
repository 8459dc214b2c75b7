"""Reactive DAG execution: processors run the moment their last dependency settles.

Build a :class:`Dag` with :class:`DagBuilder` (ids, dependencies, an :class:`Intent`),
then :func:`execute_dag` or :func:`stream_dag`. Each processor's run is a tiny FSM
(``WAITING -> READY -> RUNNING -> DONE | FAILED | SKIPPED | CANCELLED``) and the run as
a whole is a supervised FSM (:class:`DagExecution`), so failures follow one
:class:`FailureStrategy` and nothing runs after the execution ends.
"""

from ._diagram import dag_to_mermaid
from ._executor import DagExecution, DagStream, RunContext, execute_dag, stream_dag
from ._fsm import ExecState, execution_spec
from ._model import Dag, DagBuilder, DagDefinitionError, Intent, Processor, ProcessorInput
from ._node import NodeEvent, node_spec
from ._result import (
    DagEvent,
    DagFinished,
    DagResult,
    DagStarted,
    FailureStrategy,
    NodeFinished,
    NodeState,
    NodeStateChanged,
    ProcessorFailed,
    ProcessorOutcome,
)

__all__ = [
    "Dag",
    "DagBuilder",
    "DagDefinitionError",
    "DagEvent",
    "DagExecution",
    "DagFinished",
    "DagResult",
    "DagStarted",
    "DagStream",
    "ExecState",
    "FailureStrategy",
    "Intent",
    "NodeEvent",
    "NodeFinished",
    "NodeState",
    "NodeStateChanged",
    "Processor",
    "ProcessorFailed",
    "ProcessorInput",
    "ProcessorOutcome",
    "RunContext",
    "dag_to_mermaid",
    "execute_dag",
    "execution_spec",
    "node_spec",
    "stream_dag",
]
