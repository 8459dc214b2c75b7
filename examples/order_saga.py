"""An order saga run durably: reserve stock, charge the card, ship; when a later step
fails for good, the charge is refunded and the stock released, in that order.

Every step's output is committed together with the run's new state in one transaction
fenced by the run's lease, so a worker that dies mid-order costs at most the step it was
running — and another worker finishes the order.

* ``python3 examples/order_saga.py`` runs three orders through two workers in this
  process (one order cannot be shipped and is compensated) and prints what happened.
* ``python3 examples/order_saga.py crash`` starts a pool of worker processes on a SQLite
  file (``fsmflow worker examples.order_saga:order_saga --store FILE``), starts an order,
  SIGKILLs the worker that is charging it, and shows another worker finish the order.

Draw it with ``fsmflow diagram examples.order_saga:order_saga``.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import attrs
import trio

from fsmflow.durable import (
    RetryPolicy,
    RunFailed,
    StepContext,
    Worker,
    Workflow,
    start_run,
)
from fsmflow.store import MemoryStore, SqliteStore


@attrs.frozen
class Order:
    id: str
    sku: str
    quantity: int
    cents: int
    address: str


@attrs.frozen
class Reservation:
    id: str
    sku: str
    quantity: int


@attrs.frozen
class Payment:
    id: str
    cents: int


@attrs.frozen
class Shipment:
    order_id: str
    payment_id: str
    tracking: str


class Undeliverable(Exception):
    """No courier goes there: retrying will not help."""


# The "outside systems" (stock, payments, shipping) keep a ledger keyed by the
# idempotency key each step passes them: a repeated call has no second effect. In the
# crash demo the ledger is a SQLite file all worker processes share.
LEDGER_ENV = "ORDER_SAGA_LEDGER"
_memory_ledger: dict[str, str] = {}


def record(key: str, what: str) -> bool:
    """Apply ``what`` once for ``key``; ``False`` when it was applied before."""
    path = os.environ.get(LEDGER_ENV)
    if path is None:
        if key in _memory_ledger:
            return False
        _memory_ledger[key] = what
        return True
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        db.execute("CREATE TABLE IF NOT EXISTS ledger (key TEXT PRIMARY KEY, what TEXT, pid INT)")
        cursor = db.execute(
            "INSERT OR IGNORE INTO ledger VALUES (?, ?, ?)", (key, what, os.getpid())
        )
        return cursor.rowcount == 1
    finally:
        db.close()


order_saga = Workflow("order_saga", input=Order, output=Shipment)
_CALLS = RetryPolicy(attempts=5, initial_delay=0.05, max_delay=2.0, give_up_on=(Undeliverable,))


@order_saga.step(retry=_CALLS)
async def reserve_stock(ctx: StepContext, order: Order) -> Reservation:
    record(ctx.idempotency_key, f"reserve {order.quantity} x {order.sku}")
    return Reservation(f"res-{order.id}", order.sku, order.quantity)


@reserve_stock.undo
async def release_stock(ctx: StepContext, order: Order, reservation: Reservation) -> None:
    record(ctx.idempotency_key, f"release {reservation.id}")


@order_saga.step(retry=_CALLS)
async def charge(ctx: StepContext, order: Order) -> Payment:
    # A slow payment provider: long enough for the crash demo to kill the worker here.
    await anyio.sleep(float(os.environ.get("ORDER_SAGA_CHARGE_SECONDS", "0")))
    record(ctx.idempotency_key, f"charge {order.cents} cents")
    return Payment(f"pay-{order.id}", order.cents)


@charge.undo
async def refund(ctx: StepContext, order: Order, payment: Payment) -> None:
    record(ctx.idempotency_key, f"refund {payment.cents} cents")


@order_saga.step(reserve_stock, charge, retry=_CALLS)
async def ship(
    ctx: StepContext, order: Order, reservation: Reservation, payment: Payment
) -> Shipment:
    if "nowhere" in order.address.lower():
        raise Undeliverable(f"no courier delivers to {order.address!r}")
    record(ctx.idempotency_key, f"ship {reservation.id} to {order.address}")
    return Shipment(order.id, payment.id, f"track-{order.id}")


ORDERS = [
    Order("A-1", "lamp", 1, 4200, "1 Main St"),
    Order("A-2", "desk", 2, 31000, "9 Nowhere Rd"),
    Order("A-3", "chair", 4, 12000, "5 Elm St"),
]


async def main() -> dict[str, str]:
    """Three orders, two workers in this process; returns each order's outcome."""
    store = MemoryStore()
    handles = [await start_run(store, order_saga, o, idempotency_key=o.id) for o in ORDERS]
    outcomes: dict[str, str] = {}
    async with anyio.create_task_group() as tg:
        for _ in range(2):
            await tg.start(Worker(store, [order_saga], poll_interval=0.01).run)
        for order, handle in zip(ORDERS, handles, strict=True):
            try:
                shipment = await handle.result()
                outcomes[order.id] = f"shipped, tracking {shipment.tracking}"
            except RunFailed as failed:
                outcomes[order.id] = (
                    f"{failed.status.name.lower()}: {failed.error}; undone: "
                    + ", ".join(failed.undone)
                )
        tg.cancel_scope.cancel()
    for order_id, outcome in outcomes.items():
        print(f"{order_id}: {outcome}")
    return outcomes


# -- the crash demo ----------------------------------------------------------------------


def _ledger_rows(path: str) -> list[tuple[str, str, int]]:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT key, what, pid FROM ledger ORDER BY rowid").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()


async def _start(db: str, order: Order) -> str:
    async with await SqliteStore.open(db) as store:
        return (await start_run(store, order_saga, order)).run_id


async def _result(db: str, run_id: str) -> Shipment:
    from fsmflow.durable import RunHandle

    async with await SqliteStore.open(db) as store:
        return await RunHandle.attach(store, order_saga, run_id).result(poll_interval=0.1)


async def _holder(db: str, run_id: str) -> str:
    from fsmflow.durable import show_durable_run

    async with await SqliteStore.open(db) as store:
        shown = await show_durable_run(store, run_id)
    lease = shown["lease"]
    return "" if lease is None else str(lease["owner"])


def crash_demo(directory: Path, workers: int = 2, lease_ttl: float = 2.0) -> Shipment:
    """Run the order on a pool of worker processes, kill the one charging it, and
    return the shipment another worker produced."""
    db, ledger = str(directory / "orders.sqlite3"), str(directory / "ledger.sqlite3")
    env = {
        **os.environ,
        LEDGER_ENV: ledger,
        "ORDER_SAGA_CHARGE_SECONDS": "1.5",
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
    }
    pool = {}
    for n in range(workers):
        owner = f"worker-{n + 1}"
        pool[owner] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fsmflow",
                "worker",
                "examples.order_saga:order_saga",
                "--store",
                db,
                "--owner",
                owner,
                "--lease-ttl",
                str(lease_ttl),
                "--poll-interval",
                "0.1",
            ],
            env=env,
            stderr=subprocess.DEVNULL,
        )
    try:
        run_id = trio.run(_start, db, Order("B-7", "sofa", 1, 89900, "3 Oak Ave"))
        print(f"started order B-7 as run {run_id} with {workers} workers")
        while True:  # wait until the order is being charged
            owner = trio.run(_holder, db, run_id)
            if owner and any("reserve" in what for _, what, _ in _ledger_rows(ledger)):
                break
            time.sleep(0.05)
        print(f"{owner} reserved the stock and is charging the card: SIGKILL it")
        pool[owner].send_signal(signal.SIGKILL)
        pool[owner].wait()
        started = time.monotonic()
        shipment = trio.run(_result, db, run_id)
        print(
            f"another worker finished the order {time.monotonic() - started:.1f}s later: {shipment}"
        )
        for key, what, pid in _ledger_rows(ledger):
            print(f"  ledger: {what:<28} (process {pid}, key {key.split(':', 1)[1]})")
        return shipment
    finally:
        for process in pool.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)


if __name__ == "__main__":
    if sys.argv[1:] == ["crash"]:
        with tempfile.TemporaryDirectory() as tmp:
            crash_demo(Path(tmp))
    else:
        trio.run(main)
