"""Scaling cases of the FSM engine: building a spec grows with the spec, not faster.

``FsmBuilder.build()`` validates the definition, checks reachability and compiles one node
per state. Each case times ``build()`` alone (declaring the enum and registering the
handlers is set-up) at 200 and at 2,000 states; linear work grows 10x.

- *chain*: ``S0 -> S1 -> ... -> S0`` along one event, every handler with ``to=`` its one
  target, and a ``from_any()`` reset to ``S0``;
- *hooks, open handlers*: the same chain, but every state has an exit hook and every
  handler omits ``to=`` (it may go anywhere), the shape that made edges per state x state.

Times are the process's CPU time (``time.process_time``): the work is single-threaded
and CPU-bound, and CPU time leaves out the time other processes on a shared machine
take from it.

Run through ``python bench/bench_scaling.py -k FsmBuilder``.
"""

from __future__ import annotations

import enum
import time
from typing import Any

from _scaling import ScalingCase

from fsmflow import FsmBuilder, FsmSpec, Transition, goto


class Step(enum.Enum):
    NEXT = "next"
    RESET = "reset"


def _states(size: int) -> Any:
    return enum.Enum(f"Chain{size}", [f"S{i}" for i in range(size)])


def _builder(size: int, *, hooks: bool) -> tuple[FsmBuilder[Any, Step, None, None], Any]:
    states = _states(size)
    members = list(states)
    builder = FsmBuilder[Any, Step, None, None](
        states=states, events=Step, initial=members[0], name=f"chain of {size}"
    )

    def advance(state: Any, event: Step, ctx: None) -> Transition[Any, None]:
        return goto(members[(members.index(state) + 1) % size])

    def reset(state: Any, event: Step, ctx: None) -> Transition[Any, None]:
        return goto(members[0])

    def leave(state: Any, ctx: None) -> None:
        return None

    for index, member in enumerate(members):
        target = members[(index + 1) % size]
        builder.when(member).on(Step.NEXT, advance, to=None if hooks else [target])
        if hooks:
            builder.on_exit(member, leave)
    builder.from_any().on(Step.RESET, reset, to=None if hooks else [members[0]])
    return builder, states


def _check(spec: FsmSpec[Any, Step, None, None], states: Any, size: int) -> None:
    if len(spec.states.variants) != size or len(spec.handlers) != size + 1:
        raise AssertionError(f"spec of {size} states has {len(spec.handlers)} handlers")
    if set(spec._nodes) != set(states):
        raise AssertionError("not every state was compiled")


def _timed_build(hooks: bool) -> Any:
    def run(size: int) -> float:
        builder, states = _builder(size, hooks=hooks)
        start = time.process_time()
        spec = builder.build()
        seconds = time.process_time() - start
        _check(spec, states, size)
        return seconds

    return run


CASES = [
    ScalingCase("FsmBuilder.build(), chain", "states", 200, 2_000, 15.0, _timed_build(False)),
    ScalingCase(
        "FsmBuilder.build(), hooks, open handlers", "states", 200, 2_000, 15.0, _timed_build(True)
    ),
]
