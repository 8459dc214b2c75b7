"""Leases across real processes, on SQLite and PostgreSQL: never two owners at once, and a
process paused past its TTL cannot write once another took over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import trio

from fsmflow.store import LeaseLost, Put, Store, open_store

from ._backends import drop_schema, new_schema, postgres_dsn

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def _target(kind: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    if kind == "sqlite":
        yield str(tmp_path / "shared.sqlite3"), "-"
        return
    schema = new_schema()
    try:
        yield postgres_dsn(), schema
    finally:
        drop_schema(schema)


def _spawn(target: str, schema: str, owner: str, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.store._lease_child", target, schema, owner, mode],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


async def _open(target: str, schema: str) -> Store:
    options = {} if schema == "-" else {"schema": schema}
    return await open_store(target, **options)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_two_processes_contending_never_own_at_once(kind: str, tmp_path: Path) -> None:
    with _target(kind, tmp_path) as (target, schema):
        async with await _open(target, schema):
            pass  # create the schema before the children race for it
        children = [_spawn(target, schema, owner, "contend") for owner in ("p1", "p2")]
        for child in children:
            assert child.wait(timeout=120) == 0
            assert child.stdout is not None
            child.stdout.close()
        async with await _open(target, schema) as store:
            entries = [e.value.decode().split(":") for e in await store.read("log")]
    assert len(entries) == 2 * 20 * 3
    # Each token's entries are contiguous, from one owner, in order; tokens only grow.
    runs: list[tuple[str, int]] = []
    for owner, token, i in entries:
        if not runs or runs[-1] != (owner, int(token)):
            assert int(i) == 0, f"token {token} interleaved with another owner's writes"
            runs.append((owner, int(token)))
    tokens = [token for _, token in runs]
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens) == 40


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_a_process_paused_past_its_ttl_is_fenced_off(kind: str, tmp_path: Path) -> None:
    with _target(kind, tmp_path) as (target, schema):
        async with await _open(target, schema):
            pass
        child = _spawn(target, schema, "paused", "hold")
        assert child.stdout is not None
        try:
            assert child.stdout.readline().startswith("acquired")
            assert child.stdout.readline().startswith("wrote")  # committed, now sleeping
            os.kill(child.pid, signal.SIGSTOP)
            await trio.sleep(1.3)  # past its 1 s TTL
            async with await _open(target, schema) as store:
                lease = await store.acquire_lease("resource", "successor", 30)
                assert lease.token == 2
                await store.write_batch([Put("state", "owner", b"successor")], fence=lease.fence)
                before = [e.value for e in await store.read("log")]
                os.kill(child.pid, signal.SIGCONT)
                rest = child.stdout.read()
                assert child.wait(timeout=30) == 3, rest
                assert rest.strip() == "lost", "its next fenced write was refused"
                state = await store.get("state", "owner")
                assert state is not None and state.value == b"successor"
                assert [e.value for e in await store.read("log")] == before
                with pytest.raises(LeaseLost):
                    await store.renew_lease(
                        type(lease)("resource", "paused", 1, lease.expires_at), 30
                    )
        finally:
            if child.poll() is None:
                os.kill(child.pid, signal.SIGCONT)
                child.kill()
                child.wait()
            child.stdout.close()
