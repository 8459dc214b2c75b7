"""The Getting started program (examples/turnstile_supervisor.py), tested the way the page
shows: the sections between the ``--8<--`` markers are on the page, verbatim."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio
import pytest
import trio
from trio.testing import MockClock

# --8<-- [start:harness]
from examples.turnstile_supervisor import UNLOCKED_FOR, Input, Turn, Turnstile
from fsmflow.testing import each_backend, supervisor_harness


class FakeGate:
    """Records what the turnstile asked of it; can be told to jam."""

    def __init__(self, *, jams: bool = False) -> None:
        self.jams = jams
        self.moves: list[str] = []

    async def release(self) -> None:
        if self.jams:
            raise RuntimeError("gate stuck")
        self.moves.append("release")

    async def lock(self) -> None:
        self.moves.append("lock")


@each_backend  # runs the test on trio and on asyncio
async def test_a_coin_lets_one_person_through() -> None:
    gate = FakeGate()
    async with supervisor_harness(Turnstile("test", gate)) as h:
        await h.send(Input.COIN)
        await h.wait_for_state(Turn.UNLOCKED)
        await h.send(Input.PUSH)
        await h.wait_for_state(Turn.LOCKED)
        h.close_events()  # nobody can pay any more: the policy shuts it down
        outcome = await h.outcome()
    assert h.states == [Turn.LOCKED, Turn.UNLOCKED, Turn.LOCKED, Turn.CLOSED]
    assert outcome.final_state is Turn.CLOSED
    assert gate.moves == ["release", "lock"]


@each_backend
async def test_a_jammed_gate_locks_again() -> None:
    async with supervisor_harness(Turnstile("test", FakeGate(jams=True))) as h:
        await h.send(Input.COIN)
        await h.wait_for_state(Turn.LOCKED)
        await h.send(Input.SHUTDOWN)
        await h.outcome()
    # The error in Release became JAMMED, which the FSM answered by locking.
    assert [r.event for r in h.records if r.failure] == [Input.JAMMED]
    assert h.states == [Turn.LOCKED, Turn.UNLOCKED, Turn.LOCKED, Turn.CLOSED]
    # --8<-- [end:harness]


# --8<-- [start:timeout]
async def test_it_locks_again_when_nobody_comes(autojump_clock: MockClock) -> None:
    # trio only: MockClock jumps to the next deadline, so ten seconds take no time.
    async with supervisor_harness(Turnstile("test", FakeGate())) as h:
        await h.send(Input.COIN)
        await h.wait_for_state(Turn.UNLOCKED)
        unlocked_at = trio.current_time()
        await h.wait_for_state(Turn.LOCKED)
        assert trio.current_time() - unlocked_at == pytest.approx(UNLOCKED_FOR)
        h.cancel()
    # --8<-- [end:timeout]


PAGE = Path(__file__).resolve().parent.parent / "docs" / "getting-started.md"
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "turnstile_supervisor.py"


def test_the_program_prints_what_the_page_says() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert f"```text\n{done.stdout}```" in PAGE.read_text(encoding="utf-8")


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_the_program_runs_on_both_backends(
    backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from examples.turnstile_supervisor import main

    outcome = anyio.run(main, backend=backend)
    assert outcome.final_state is Turn.CLOSED
    assert capsys.readouterr().out.splitlines()[:2] == ["gate released", "gate locked"]
