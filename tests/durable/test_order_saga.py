"""The order-saga example: compensation in one process, and a worker process killed
mid-order while another finishes it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from examples import order_saga

ROOT = Path(__file__).resolve().parents[2]


async def test_orders_ship_or_are_compensated() -> None:
    order_saga._memory_ledger.clear()
    outcomes = await order_saga.main()
    assert outcomes["A-1"] == "shipped, tracking track-A-1"
    assert outcomes["A-2"].startswith("compensated: step 'ship' failed")
    assert outcomes["A-2"].endswith("undone: charge, reserve_stock")
    assert outcomes["A-3"] == "shipped, tracking track-A-3"
    refunds = [w for w in order_saga._memory_ledger.values() if w.startswith("refund")]
    assert refunds == ["refund 31000 cents"]


def test_a_killed_worker_is_replaced_mid_order() -> None:
    result = subprocess.run(
        [sys.executable, "examples/order_saga.py", "crash"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    lines = result.stdout.splitlines()
    assert "SIGKILL it" in lines[1]
    assert "another worker finished the order" in lines[2] and "track-B-7" in lines[2]
    ledger = [line for line in lines if "ledger:" in line]
    # Each effect once, whoever ran it: the killed worker's charge never reached the
    # ledger, or reached it once and was not repeated.
    assert [line.split()[1] for line in ledger] == ["reserve", "charge", "ship"]
