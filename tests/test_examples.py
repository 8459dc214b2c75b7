"""Every example runs, and ends the way its docs say it does."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from trio.testing import MockClock

import examples
from examples import order_lifecycle, turnstile
from examples.order_lifecycle import (
    PAYMENT_WINDOW,
    Cancel,
    Cancelled,
    Charge,
    Delivered,
    LedgerEntry,
    Order,
    OrderEvent,
    Paid,
    PaymentReceived,
    PaymentRetry,
    Pending,
    Refund,
    Send,
    Ship,
    Wait,
)
from fsmflow import UnhandledEventError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(m.name for m in pkgutil.iter_modules(examples.__path__))


def test_examples_are_discovered() -> None:
    assert {"order_lifecycle", "turnstile"} <= set(EXAMPLES)


@pytest.mark.parametrize("name", EXAMPLES)
async def test_every_example_main_runs(name: str, autojump_clock: MockClock) -> None:
    module = importlib.import_module(f"examples.{name}")
    assert await module.main() is not None


async def test_turnstile_counts_coins_and_passes() -> None:
    counter = await turnstile.main()
    assert (counter.coins, counter.passes) == (3, 2)
    assert counter.log == [
        "coin accepted",
        "coin refunded: already unlocked",
        "person passed",
        "coin accepted",
        "person passed",
    ]


async def test_order_outcomes(autojump_clock: MockClock) -> None:
    outcomes = await order_lifecycle.main()

    happy = outcomes["happy"]
    assert happy.state == Delivered()
    assert happy.order.ledger == [LedgerEntry("charge", 4200)]
    assert happy.order.outbox[0] == "payments: reject 4000: order total is 4200"
    assert happy.order.outbox[-1] == "customer: order A-1 was delivered; request a return"

    late = outcomes["late payer"]
    assert late.state == Cancelled("found it cheaper")
    assert late.order.ledger == [LedgerEntry("charge", 1500), LedgerEntry("refund", 1500)]
    assert late.order.balance() == 0

    never = outcomes["never paid"]
    assert never.state == Cancelled("no payment after 2 reminders")
    assert never.order.ledger == []
    assert never.order.outbox == [
        "customer: reminder 1/2: payment link #1",
        "payments: void payment link #1",
        "customer: reminder 2/2: payment link #2",
        "payments: void payment link #2",
        "customer: order C-3 cancelled: no payment after 2 reminders",
    ]


async def test_reminder_fires_only_once_the_window_has_passed(autojump_clock: MockClock) -> None:
    machine = order_lifecycle.order_spec().new_machine(Pending())
    order = Order("D-4", total=10)
    machine.timeout_deadline()
    await trio.sleep(PAYMENT_WINDOW / 2)
    assert await machine.check_timeout(order) == []
    assert machine.state_variant is Pending
    await trio.sleep(PAYMENT_WINDOW / 2)
    assert await machine.check_timeout(order) == [Send("customer", "reminder 1/2: payment link #1")]
    assert machine.state == PaymentRetry(1)


async def test_self_transition_runs_exit_then_entry_then_own_actions(
    autojump_clock: MockClock,
) -> None:
    machine = order_lifecycle.order_spec().new_machine(PaymentRetry(1))
    order = Order("E-5", total=10)
    assert await machine.handle(PaymentReceived(10), order) == [
        Send("payments", "void payment link #1"),
        Charge(10),
    ]
    assert machine.state == Paid(10)
    assert await machine.handle(Cancel("oops"), order) == [
        Send("customer", "order E-5 cancelled: oops"),
        Refund(10),
    ]


async def test_cancel_in_transit_intercepts_the_parcel_and_refunds(
    autojump_clock: MockClock,
) -> None:
    order = Order("H-8", total=300)
    script: list[OrderEvent | Wait] = [
        PaymentReceived(300),
        Ship("TRK-9"),
        Cancel("too slow"),
        Cancel("again"),
    ]
    machine = await order_lifecycle.drive(order, script)
    assert machine.state == Cancelled("too slow")
    assert order.ledger == [LedgerEntry("charge", 300), LedgerEntry("refund", 300)]
    assert order.outbox[-2:] == [
        "customer: order H-8 cancelled: too slow",
        "warehouse: intercept parcel TRK-9",
    ]


async def test_drive_fires_every_timeout_due_within_a_wait(autojump_clock: MockClock) -> None:
    start = trio.current_time()
    machine = await order_lifecycle.drive(Order("F-6", total=10), [Wait(PAYMENT_WINDOW * 2.5)])
    assert machine.state == PaymentRetry(2)
    assert trio.current_time() - start == pytest.approx(PAYMENT_WINDOW * 2.5)


async def test_order_machine_is_strict(autojump_clock: MockClock) -> None:
    machine = order_lifecycle.order_spec().new_machine(Cancelled("gone"))
    with pytest.raises(UnhandledEventError, match=r"no handler for event Ship in state Cancelled"):
        await machine.handle(Ship("T"), Order("G-7", total=1))


def test_order_lifecycle_runs_as_a_script() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "order_lifecycle.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "order C-3 (total 990)" in result.stdout
    assert "=> Cancelled(reason='no payment after 2 reminders'), balance 0" in result.stdout
