"""The supervisor examples end the way their docs say, on trio's mock clock."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import trio
from trio.testing import MockClock

from examples import connection_manager as cm
from examples import pipeline_stage as ps
from fsmflow import CompletionEvent, ExitKind, ExternalEventMode, TransitionRecord, start_supervisor
from fsmflow.diagrams._docs import DOC_DIAGRAMS, stale
from fsmflow.testing import EventScript, MachineHarness, supervisor_harness

ROOT = Path(__file__).resolve().parent.parent


def entered_at(records: list[TransitionRecord], state: object) -> float:
    """When the run first entered ``state`` (by a state-changing transition)."""
    return next(r.at for r in records if r.to_state == state and r.from_state != state)


# -- connection manager --------------------------------------------------------------------


async def test_connection_manager_main(autojump_clock: MockClock) -> None:
    report = await cm.main()
    assert report.outcome.exit is ExitKind.TERMINATED
    assert report.outcome.final_state == cm.Closed("shutdown requested")
    # Messages sent before, during and after the drop all arrive, in order, exactly once.
    assert [payload for _, payload in report.transport.delivered] == [
        "hello",
        "world",
        "while reconnecting",
        "after reconnecting",
    ]
    assert report.link.outbox == []
    assert (report.transport.attempts, report.transport.sessions) == (5, 2)
    assert report.transport.released
    assert report.link.connection is None
    assert report.link.log[1] == "attempt 2 failed (connect timed out); retry in 0.02s"
    assert report.link.log[-1] == "closed: shutdown requested"


async def test_backoff_doubles_with_each_failed_attempt(autojump_clock: MockClock) -> None:
    transport = cm.FakeTransport(["refuse", "refuse", "refuse"])
    records: list[TransitionRecord] = []
    async with trio.open_nursery() as nursery:
        handle = await start_supervisor(
            nursery,
            cm.ConnectionManager("backoff"),
            context=cm.Link(transport),
            listener=records.append,
        )
        await handle.wait_for(cm.ConnectedTo(1))
        await handle.send(cm.Shutdown())
    for attempt in (1, 2, 3):
        waited = entered_at(records, cm.Connecting(attempt + 1)) - entered_at(
            records, cm.Backoff(attempt, cm.backoff_ticks(attempt))
        )
        assert waited == pytest.approx(2 ** (attempt - 1) * cm.BACKOFF_TICK)
    assert cm.backoff_ticks(10) == cm.MAX_BACKOFF_TICKS


async def test_hung_connect_is_cut_off_by_the_state_timeout(autojump_clock: MockClock) -> None:
    transport = cm.FakeTransport(["hang"])
    records: list[TransitionRecord] = []
    async with trio.open_nursery() as nursery:
        handle = await start_supervisor(
            nursery,
            cm.ConnectionManager("hang"),
            context=cm.Link(transport),
            listener=records.append,
        )
        await handle.wait_for(cm.ConnectedTo(1))
        await handle.send(cm.Shutdown())
    timeout = next(r for r in records if r.event == "timeout")
    assert (timeout.from_state, timeout.to_state) == (cm.Connecting(1), cm.Backoff(1, 1))
    assert timeout.at - entered_at(records, cm.Connecting(1)) == pytest.approx(cm.CONNECT_TIMEOUT)


async def test_gives_up_after_max_attempts(autojump_clock: MockClock) -> None:
    transport = cm.FakeTransport(["refuse"] * cm.MAX_ATTEMPTS)
    async with trio.open_nursery() as nursery:
        handle = await start_supervisor(
            nursery, cm.ConnectionManager("give-up"), context=cm.Link(transport)
        )
        outcome = await handle.outcome()
    assert isinstance(outcome.final_state, cm.Closed)
    assert outcome.final_state.reason.startswith(f"gave up after {cm.MAX_ATTEMPTS} attempts")
    assert "ConnectionRefused: attempt 5 refused" in outcome.final_state.reason
    assert outcome.failures == cm.MAX_ATTEMPTS
    assert transport.released


async def test_shutdown_interrupts_a_backoff_at_once(autojump_clock: MockClock) -> None:
    transport = cm.FakeTransport(["refuse"] * 4)
    async with trio.open_nursery() as nursery:
        handle = await start_supervisor(
            nursery, cm.ConnectionManager("interrupt"), context=cm.Link(transport)
        )
        await handle.wait_for(lambda s: isinstance(s, cm.Backoff) and s.attempt == 3)
        asked = trio.current_time()
        await handle.send(cm.Shutdown("operator"))
        outcome = await handle.outcome()
        # Backoff blocks on the channel, so the command is taken without waiting for the
        # remaining ticks.
        assert trio.current_time() == asked
    assert outcome.final_state == cm.Closed("operator")
    assert transport.attempts == 3


async def test_a_silent_drop_is_noticed_when_sending(autojump_clock: MockClock) -> None:
    transport = cm.FakeTransport()
    link = cm.Link(transport)
    async with trio.open_nursery() as nursery:
        handle = await start_supervisor(nursery, cm.ConnectionManager("silent"), context=link)
        await handle.wait_for(cm.ConnectedTo(1))
        await transport.drop("cable cut")  # nobody is told: transport.notify is None
        await handle.send(cm.Send("are you there?"))
        await handle.wait_for(cm.ConnectedTo(2))
        await handle.send(cm.Shutdown())
        outcome = await handle.outcome()
    assert transport.delivered == [(2, "are you there?")]
    assert outcome.failures == 1
    assert any("action Flush() failed" in line for line in link.log)


async def test_a_stale_drop_report_is_ignored(autojump_clock: MockClock) -> None:
    transport = cm.FakeTransport()
    async with trio.open_nursery() as nursery:
        handle = await start_supervisor(
            nursery, cm.ConnectionManager("stale"), context=cm.Link(transport)
        )
        await handle.wait_for(cm.ConnectedTo(1))
        await handle.send(cm.Dropped(0, "about some older session"))
        await handle.send(cm.Send("still here"))
        await handle.send(cm.Shutdown())
        outcome = await handle.outcome()
    assert transport.delivered == [(1, "still here")]
    assert outcome.final_state == cm.Closed("shutdown requested")


async def test_closing_the_command_channel_shuts_down(autojump_clock: MockClock) -> None:
    async with trio.open_nursery() as nursery:
        handle = await start_supervisor(
            nursery, cm.ConnectionManager("orphan"), context=cm.Link(cm.FakeTransport())
        )
        await handle.wait_for(cm.ConnectedTo(1))
        handle.close_events()
        outcome = await handle.outcome()
    assert outcome.final_state == cm.Closed("no one can send commands any more")


async def test_running_without_a_channel_stops_once_connected(autojump_clock: MockClock) -> None:
    outcome = await cm.ConnectionManager("bare").run(context=cm.Link(cm.FakeTransport(["hang"])))
    assert outcome.final_state == cm.Closed("no external event channel")


def test_connection_manager_modes() -> None:
    manager = cm.ConnectionManager("modes")
    modes: dict[cm.ManagerState, ExternalEventMode] = {
        cm.Disconnected(): ExternalEventMode.POLL,
        cm.Connecting(1): ExternalEventMode.POLL,
        cm.Connected(1): ExternalEventMode.BLOCK,
        cm.Backoff(1, 1): ExternalEventMode.BLOCK,
        cm.ShuttingDown("x"): ExternalEventMode.IGNORE,
        cm.Closed("x"): ExternalEventMode.IGNORE,
    }
    assert {state: manager.external_event_mode(state) for state in modes} == modes
    assert manager.on_external_event_channel_closed(cm.ShuttingDown("x")) is None


# -- pipeline stage ------------------------------------------------------------------------


async def test_pipeline_stage_main(autojump_clock: MockClock) -> None:
    report = await ps.main()
    assert report.outcome.exit is ExitKind.TERMINATED
    assert report.outcome.final_state == ps.Drained()
    assert report.readings == [
        ps.Reading("kitchen", 21.5),
        ps.Reading("garage", 9.0),
        ps.Reading("cellar", 12.25),
        ps.Reading("hall", 19.0),
    ]
    assert len(report.errors) == 2
    assert report.errors[0].endswith("ValueError: could not convert string to float: 'n/a'")
    assert report.outcome.failures == 2
    assert report.completion == [
        CompletionEvent("stage:parse", "parse readings", ExitKind.TERMINATED, ps.Drained())
    ]


async def test_too_many_handler_errors_fail_the_stage(autojump_clock: MockClock) -> None:
    report = await ps.run_stage(("a 1", "b", "c", "d", "e 2"), max_errors=3)
    assert isinstance(report.outcome.final_state, ps.Failed)
    assert report.outcome.final_state.reason.startswith("3 errors, the last: ")
    assert report.readings == [ps.Reading("a", 1.0)]
    assert len(report.errors) == 3
    # The run itself terminated normally: failing is a state the FSM chose.
    assert [(e.exit, e.final_state) for e in report.completion] == [
        (ExitKind.TERMINATED, report.outcome.final_state)
    ]


async def test_drain_before_start_reads_nothing(autojump_clock: MockClock) -> None:
    send, receive = trio.open_memory_channel[str](4)
    output, results = trio.open_memory_channel[ps.Reading](4)
    send.send_nowait("kitchen 20")
    ctx = ps.StageIO(receive, output)
    async with trio.open_nursery() as nursery:
        handle = await start_supervisor(
            nursery, ps.PipelineStage("idle", ps.parse_reading, "s"), context=ctx
        )
        await handle.send(ps.Drain())
        outcome = await handle.outcome()
    assert outcome.final_state == ps.Drained()
    assert ctx.emitted == 0
    with pytest.raises(trio.BrokenResourceError):
        send.send_nowait("too late")
    with pytest.raises(trio.EndOfChannel):
        results.receive_nowait()


async def test_closed_upstream_drains_a_running_stage(autojump_clock: MockClock) -> None:
    send, receive = trio.open_memory_channel[str](4)
    output, results = trio.open_memory_channel[ps.Reading](4)
    ctx = ps.StageIO(receive, output)
    async with trio.open_nursery() as nursery:
        handle = await start_supervisor(
            nursery, ps.PipelineStage("upstream", ps.parse_reading, "s"), context=ctx
        )
        await handle.send(ps.Start())
        async with send:
            await send.send("porch 3.5")
        outcome = await handle.outcome()
    assert outcome.final_state == ps.Drained()
    assert [r async for r in results] == [ps.Reading("porch", 3.5)]


async def test_an_unstarted_stage_whose_commands_closed_drains(autojump_clock: MockClock) -> None:
    _, receive = trio.open_memory_channel[str](0)
    output, _ = trio.open_memory_channel[ps.Reading](0)
    async with trio.open_nursery() as nursery:
        handle = await start_supervisor(
            nursery,
            ps.PipelineStage("orphan", ps.parse_reading, "s"),
            context=ps.StageIO(receive, output),
        )
        handle.close_events()
        outcome = await handle.outcome()
    assert outcome.final_state == ps.Drained()


async def test_an_idle_stage_backs_off_instead_of_spinning(autojump_clock: MockClock) -> None:
    _, receive = trio.open_memory_channel[str](0)
    output, _ = trio.open_memory_channel[ps.Reading](0)
    stage = ps.PipelineStage("waiting", ps.parse_reading, "s")
    async with trio.open_nursery() as nursery:
        handle = await start_supervisor(nursery, stage, context=ps.StageIO(receive, output))
        await handle.send(ps.Start())
        await trio.sleep(1.0)
        assert stage.idle.next_delay == stage.idle.maximum
        await handle.send(ps.Drain())
        outcome = await handle.outcome()
    # 1 s of sleeps growing from 1 ms to a 20 ms cap is about 55 dispatches, not a spin.
    assert outcome.dispatches < 100
    assert stage.writer_id == "stage:s"


# -- both ----------------------------------------------------------------------------------


def test_examples_draw_in_the_docs() -> None:
    registry = {name: DOC_DIAGRAMS[name] for name in ("connection_manager", "pipeline_stage")}
    assert stale(ROOT / "docs" / "diagrams", registry) == []


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("connection_manager.py", "=> Closed(reason='shutdown requested')"),
        ("pipeline_stage.py", "=> Drained(); journal: [CompletionEvent(writer_id='stage:parse'"),
    ],
)
def test_runs_as_a_script(script: str, expected: str) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout


# -- the "testing your supervisor" how-to, verbatim ----------------------------------------


async def test_how_to_harness_shutdown_during_backoff(autojump_clock: MockClock) -> None:
    transport = cm.FakeTransport(["refuse", "refuse", "refuse"])
    async with supervisor_harness(cm.ConnectionManager("cm"), context=cm.Link(transport)) as h:
        await h.wait_for_state(cm.Backoff)
        await h.send(cm.Shutdown("operator"))
        outcome = await h.outcome()
    assert outcome.final_state == cm.Closed("operator")
    assert h.states == [
        cm.Disconnected(),
        cm.Connecting(1),
        cm.Backoff(1, 1),
        cm.ShuttingDown("operator"),
        cm.Closed("operator"),
    ]
    assert [r.event for r in h.records if r.failure] == [
        cm.Failure(
            "dispatch_state failed in state Connecting: ConnectionRefused: attempt 1 refused"
        )
    ]
    assert [c.final_state for c in h.completions] == [cm.Closed("operator")]


async def test_how_to_event_script(autojump_clock: MockClock) -> None:
    link = cm.Link(cm.FakeTransport())
    script = EventScript[cm.ManagerEvent].of(cm.Send("a"), cm.Send("b"), cm.Shutdown(), delay=0.5)
    async with supervisor_harness(cm.ConnectionManager("cm"), context=link) as h:
        h.play(script)
        outcome = await h.outcome()
    assert outcome.final_state == cm.Closed("shutdown requested")
    assert link.transport.delivered == [(1, "a"), (1, "b")]
    assert script.sent == [cm.Send("a"), cm.Send("b"), cm.Shutdown()]


async def test_how_to_machine_harness(autojump_clock: MockClock) -> None:
    machine = cm.manager_spec().new_machine(cm.Backoff(2, 2))
    h = MachineHarness(machine, cm.Link(cm.FakeTransport()))
    assert await h.fire_timeout() == []  # not due yet
    await trio.sleep(cm.BACKOFF_TICK)
    await h.fire_timeout()
    await trio.sleep(cm.BACKOFF_TICK)
    await h.fire_timeout()
    assert h.state == cm.Connecting(3)
    assert await h.send(cm.Send("x")) == [cm.Enqueue("x")]
    assert h.ctx.outbox == ["x"]
