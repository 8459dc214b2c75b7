"""The one mechanism under the steps: any supervisor whose state and context types the
codec knows runs durably, its state committed after every transition."""

from __future__ import annotations

import enum
from pathlib import Path

import attrs
import pytest

from fsmflow import FsmBuilder, FsmSpec, SelfSupervised, Transition, goto
from fsmflow.durable import RunStatus, run_durably, show_durable_run
from fsmflow.store import Codec, Durability, LeaseHeld, SqliteStore
from fsmflow.supervisor import TERMINATE, EventLoopDirective, ExitKind, Trigger


class Phase(enum.Enum):
    COUNTING = "counting"
    DONE = "done"


class Tick(enum.Enum):
    TICK = "tick"
    FAIL = "fail"


@attrs.define
class Tally:
    count: int = 0
    seen: list[int] = attrs.Factory(list)


def _tick(state: Phase, event: Tick, ctx: Tally) -> Transition[Phase, None]:
    ctx.count += 1
    ctx.seen.append(ctx.count)
    return goto(Phase.DONE if ctx.count == 10 else Phase.COUNTING)


def _fail(state: Phase, event: Tick, ctx: Tally) -> Transition[Phase, None]:
    return goto(state)


_builder = FsmBuilder[Phase, Tick, Tally, None](states=Phase, events=Tick, initial=Phase.COUNTING)
_builder.when(Phase.COUNTING).on(Tick.TICK, _tick, to=[Phase.COUNTING, Phase.DONE])
_builder.when(Phase.COUNTING).on(Tick.FAIL, _fail, to=[Phase.COUNTING])
_SPEC = _builder.build()


class Crash(BaseException):
    """The process dies (nothing catches it)."""


class Counter(SelfSupervised[Phase, Tick, Tally, None]):
    def __init__(self, crash_at: int | None = None) -> None:
        super().__init__("counter")
        self.crash_at = crash_at
        self.dispatched: list[int] = []

    @classmethod
    def fsm_spec(cls) -> FsmSpec[Phase, Tick, Tally, None]:
        return _SPEC

    def initial_context(self) -> Tally:
        return Tally()

    def event_for_action_error(self, msg: str) -> Tick:
        return Tick.FAIL

    async def dispatch_state(self, state: Phase, ctx: Tally) -> EventLoopDirective[Tick]:
        if state is Phase.DONE:
            return TERMINATE
        self.dispatched.append(ctx.count)
        if ctx.count == self.crash_at:
            raise Crash()
        return Trigger(Tick.TICK)


async def test_a_supervisor_resumes_from_its_last_transition(tmp_path: Path) -> None:
    codec = Codec()
    async with await SqliteStore.open(tmp_path / "s.sqlite3", durability=Durability.OFF) as store:
        first = Counter(crash_at=4)
        with pytest.raises(Crash):
            await run_durably(
                store, first, run_id="c1", state_type=Phase, context_type=Tally, codec=codec
            )
        shown = await show_durable_run(store, "c1")
        assert shown["progress"] == {"count": 4, "seen": [1, 2, 3, 4]}
        # The failed run let its lease go (released, not left to expire)...
        lease = await store.get_lease(shown["resource"])
        assert lease is not None and lease.owner == ""
        # ...but while another process holds it, nobody else may run it.
        other = await store.acquire_lease(shown["resource"], "another process", 30)
        with pytest.raises(LeaseHeld):
            await run_durably(
                store, Counter(), run_id="c1", state_type=Phase, context_type=Tally, codec=codec
            )
        await store.release_lease(other)
        second = Counter()
        outcome = await run_durably(
            store, second, run_id="c1", state_type=Phase, context_type=Tally, codec=codec
        )
        assert outcome.exit is ExitKind.TERMINATED and outcome.final_state is Phase.DONE
        assert second.dispatched == [4, 5, 6, 7, 8, 9]  # resumed, nothing re-done
        shown = await show_durable_run(store, "c1")
        assert shown["status"] == RunStatus.COMPLETED.value
        assert shown["progress"]["seen"] == list(range(1, 11))
        # A finished run is not run again.
        third = Counter()
        again = await run_durably(
            store, third, run_id="c1", state_type=Phase, context_type=Tally, codec=codec
        )
        assert again.final_state is Phase.DONE and third.dispatched == []
