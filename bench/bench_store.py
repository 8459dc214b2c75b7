"""Store benchmark: fsmflow's durable writes side by side with the raw floors.

SQLite (one file, WAL): one task awaiting one-row ``write_batch`` calls in sequence and 32
concurrent tasks doing the same (group commit), against a hand-written same-thread
``BEGIN IMMEDIATE; INSERT; COMMIT`` loop on the same table shape, at ``synchronous=NORMAL``
and at ``FULL``. PostgreSQL (the server of ``FSMFLOW_TEST_POSTGRES_DSN``, default
127.0.0.1:5432): a fenced one-row write against raw psycopg ``INSERT`` + ``commit()``.
Every contestant's rows are counted after timing.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    format_table,
    measure_rounds,
    parse_settings,
    ratio,
    write_json,
)

from fsmflow.store import Durability, PostgresStore, Put, SqliteStore

VALUE = b"x" * 100
NORMAL = Durability.NORMAL
DSN = os.environ.get("FSMFLOW_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def _fresh(directory: Path, name: str) -> Path:
    path = directory / name
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


def raw_sqlite(directory: Path, synchronous: str) -> Any:
    def run(operations: int, warmup: int) -> float:
        db = sqlite3.connect(_fresh(directory, "raw.sqlite3"), isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.execute(
            "CREATE TABLE kv (namespace TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,"
            " version INTEGER NOT NULL, PRIMARY KEY (namespace, key)) WITHOUT ROWID"
        )
        counter = iter(range(10**9))

        def body(n: int) -> None:
            for _ in range(n):
                db.execute("BEGIN IMMEDIATE")
                db.execute("INSERT INTO kv VALUES ('ns', ?, ?, 1)", (str(next(counter)), VALUE))
                db.execute("COMMIT")

        body(warmup)
        start = time.perf_counter()
        body(operations)
        elapsed = time.perf_counter() - start
        (rows,) = db.execute("SELECT count(*) FROM kv").fetchone()
        assert rows == operations + warmup
        db.close()
        return elapsed

    return run


def fsmflow_sqlite(directory: Path, durability: Durability, tasks: int) -> Any:
    def run(operations: int, warmup: int) -> float:
        async def main() -> float:
            path = _fresh(directory, "fsmflow.sqlite3")
            async with await SqliteStore.open(path, durability=durability) as store:

                async def writer(prefix: str, count: int) -> None:
                    for i in range(count):
                        await store.write_batch([Put("ns", f"{prefix}{i}", VALUE)])

                await writer("w", warmup)
                start = time.perf_counter()
                async with trio.open_nursery() as nursery:
                    for task in range(tasks):
                        nursery.start_soon(writer, f"{task}-", operations // tasks)
                elapsed = time.perf_counter() - start
                assert len(await store.keys("ns")) == warmup + operations // tasks * tasks
                return elapsed

        return trio.run(main)

    return run


def raw_postgres(operations: int, warmup: int) -> float:
    with psycopg.connect(DSN) as db:
        db.execute("DROP TABLE IF EXISTS bench_raw")
        db.execute("CREATE TABLE bench_raw (key text PRIMARY KEY, value bytea NOT NULL)")
        db.commit()
        counter = iter(range(10**9))

        def body(n: int) -> None:
            for _ in range(n):
                db.execute("INSERT INTO bench_raw VALUES (%s, %s)", (str(next(counter)), VALUE))
                db.commit()

        body(warmup)
        start = time.perf_counter()
        body(operations)
        elapsed = time.perf_counter() - start
        (rows,) = db.execute("SELECT count(*) FROM bench_raw").fetchone() or (0,)
        assert rows == operations + warmup
        db.execute("DROP TABLE bench_raw")
        db.commit()
        return elapsed


def fsmflow_postgres(operations: int, warmup: int) -> float:
    async def main() -> float:
        with psycopg.connect(DSN, autocommit=True) as admin:
            admin.execute("DROP SCHEMA IF EXISTS fsmflow_bench CASCADE")
        async with await PostgresStore.open(DSN, schema="fsmflow_bench") as store:
            lease = await store.acquire_lease("bench", "bench", 600)
            counter = iter(range(10**9))

            async def body(n: int) -> None:
                for _ in range(n):
                    await store.write_batch(
                        [Put("ns", str(next(counter)), VALUE)], fence=lease.fence
                    )

            await body(warmup)
            start = time.perf_counter()
            await body(operations)
            elapsed = time.perf_counter() - start
            assert len(await store.keys("ns")) == operations + warmup
        with psycopg.connect(DSN, autocommit=True) as admin:
            admin.execute("DROP SCHEMA fsmflow_bench CASCADE")
        return elapsed

    return trio.run(main)


def main() -> None:
    settings = parse_settings(__doc__.splitlines()[0] if __doc__ else "store benchmark")
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        runners: list[tuple[str, int, Any]] = [
            ("raw sqlite INSERT+COMMIT (NORMAL)", 4000, raw_sqlite(directory, "NORMAL")),
            (
                "fsmflow sqlite, 1 task (NORMAL)",
                4000,
                fsmflow_sqlite(directory, Durability.NORMAL, 1),
            ),
            (
                "fsmflow sqlite, 32 tasks (NORMAL)",
                8000,
                fsmflow_sqlite(directory, Durability.NORMAL, 32),
            ),
            ("raw sqlite INSERT+COMMIT (FULL)", 400, raw_sqlite(directory, "FULL")),
            ("fsmflow sqlite, 1 task (FULL)", 400, fsmflow_sqlite(directory, Durability.FULL, 1)),
            ("raw psycopg INSERT+commit()", 300, raw_postgres),
            ("fsmflow postgres, fenced, 1 task", 300, fsmflow_postgres),
        ]
        results = measure_rounds(runners, settings)
    by_name = {m.name: m for m in results}
    table = [(m.name, m.summary()) for m in results]
    print(format_table(["contestant", "writes/s median (min..max)"], table))
    pairs = [
        ("fsmflow sqlite, 1 task (NORMAL)", "raw sqlite INSERT+COMMIT (NORMAL)", "aim >= 0.33x"),
        ("fsmflow sqlite, 32 tasks (NORMAL)", "raw sqlite INSERT+COMMIT (NORMAL)", "aim >= 2x"),
        ("fsmflow sqlite, 1 task (FULL)", "raw sqlite INSERT+COMMIT (FULL)", "aim >= 0.8x"),
        ("fsmflow postgres, fenced, 1 task", "raw psycopg INSERT+commit()", "aim >= 0.5x"),
    ]
    print()
    print(
        format_table(
            ["ratio", "median (paired min..max)", "aim"],
            [(f"{a} / {b}", ratio(by_name[a], by_name[b]), aim) for a, b, aim in pairs],
        )
    )
    if settings.json_path is not None:
        write_json(settings.json_path, {"results": [m.as_json() for m in results]})


if __name__ == "__main__":
    main()
