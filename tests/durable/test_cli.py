"""``fsmflow worker`` as a real process, and the durable ``runs`` actions."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from store._backends import drop_schema, postgres_dsn

from fsmflow.cli import main
from fsmflow.durable import RunHandle, RunStatus, start_run
from fsmflow.durable._cli import load_workflows
from fsmflow.store import Store, open_store

from .workflows import Approval, Order, approval, order

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """What ``--store`` / ``STORE`` is given: a SQLite file's path, or the DSN of the test
    session's PostgreSQL database (its default schema, dropped afterwards)."""
    if request.param == "sqlite":
        yield str(tmp_path / "runs.sqlite3")
        return
    dsn = postgres_dsn()
    try:
        yield dsn
    finally:
        drop_schema("fsmflow")


async def _open(location: str) -> Store:
    return await open_store(location)


def _runs(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(["runs", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


async def test_worker_command_runs_workflows_until_sigterm(tmp_path: Path, location: str) -> None:
    db = location
    async with await _open(db) as store:
        handle = await start_run(store, order, Order("cli", 3))
        with (tmp_path / "worker.log").open("w") as log:
            process = await trio.lowlevel.open_process(
                [
                    sys.executable,
                    "-m",
                    "fsmflow",
                    "worker",
                    "tests.durable.workflows:order",
                    "--store",
                    str(db),
                    "--poll-interval",
                    "0.02",
                ],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stderr=log,
            )
            try:
                with trio.fail_after(60):
                    receipt = await handle.result()
                assert receipt.tracking == "track-cli"
            finally:
                process.send_signal(signal.SIGTERM)
                with trio.fail_after(30):
                    status = await process.wait()
        assert status == 0
        assert "serving order" in (tmp_path / "worker.log").read_text()


def test_worker_command_reports_bad_references(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["worker", "tests.durable.workflows:nothing", "--store", "x.db"]) == 2
    assert "no attribute 'nothing'" in capsys.readouterr().err
    assert main(["worker", "tests.durable.workflows:Order", "--store", "x.db"]) == 2
    assert "not a Workflow" in capsys.readouterr().err
    assert [f.name for f in load_workflows("tests.durable.workflows:order")] == ["order"]


async def test_runs_actions(
    tmp_path: Path, location: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = location
    async with await _open(db) as store:
        waiting = await start_run(store, approval, "ann", run_id="r-approval")
        later = await start_run(store, order, Order("later", 1), run_id="r-later", delay=3600)
    status, out, _ = await trio.to_thread.run_sync(_runs, ["list", str(db)], capsys)
    assert status == 0 and "r-approval" in out and "pending" in out
    status, out, _ = await trio.to_thread.run_sync(_runs, ["list", str(db), "--json"], capsys)
    assert {row["run_id"] for row in json.loads(out)} == {"r-approval", "r-later"}
    status, out, _ = await trio.to_thread.run_sync(
        _runs, ["signal", str(db), "r-approval", "Approval", '{"by": "cli"}'], capsys
    )
    assert status == 0 and "sent" in out
    status, out, _ = await trio.to_thread.run_sync(_runs, ["show", str(db), "r-approval"], capsys)
    assert "control #1 signal" in out
    status, out, _ = await trio.to_thread.run_sync(_runs, ["cancel", str(db), "r-later"], capsys)
    assert status == 0 and "cancel requested" in out
    status, out, err = await trio.to_thread.run_sync(_runs, ["retry", str(db), "r-later"], capsys)
    assert status == 1 and "only dead-lettered runs can be retried" in err
    status, out, err = await trio.to_thread.run_sync(_runs, ["show", str(db), "nope"], capsys)
    assert status == 1 and "no durable run 'nope'" in err
    status, _, err = await trio.to_thread.run_sync(_runs, ["list", str(tmp_path / "x")], capsys)
    assert status == 2 and "does not exist" in err
    async with await _open(db) as store:
        assert await RunHandle.attach(store, order, later.run_id).status() is RunStatus.CANCELLED
        assert await RunHandle.attach(store, approval, waiting.run_id).status() is (
            RunStatus.PENDING
        )
    assert Approval("cli") == Approval(by="cli")
