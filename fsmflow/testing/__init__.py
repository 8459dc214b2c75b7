"""Helpers for testing your supervisors and state machines.

* :func:`supervisor_harness` runs a supervisor in a task group and records its transition
  records, visited states and completion events; send events, await states, cancel, and
  get the outcome. Nothing it starts outlives the ``async with`` block.
* :class:`MachineHarness` drives a bare :class:`~fsmflow.StateMachine`: feed events,
  collect and run their actions, fire timeouts.
* :class:`EventScript` is a fake external-event source: events sent on a schedule that a
  trio ``MockClock`` can drive.
* :func:`each_backend` runs an ``async def`` pytest test on trio and on asyncio.

Everything here runs on any anyio backend, so the same test can check a supervisor on
both.
"""

from ._backends import BACKENDS, each_backend
from ._harness import SupervisorHarness, supervisor_harness
from ._machine import MachineHarness
from ._source import EventScript

__all__ = [
    "BACKENDS",
    "EventScript",
    "MachineHarness",
    "SupervisorHarness",
    "each_backend",
    "supervisor_harness",
]
