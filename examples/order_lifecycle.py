"""An order's lifecycle: states that carry data, payment reminders driven by a state
timeout, a cancel that works from any state, and actions that write to a ledger and an
outbox.

Run it from the repository root with ``python3 examples/order_lifecycle.py``; draw it with
``fsmflow diagram examples.order_lifecycle:order_spec --format mermaid``.

The machine only decides. :func:`drive` is the driver a supervisor would otherwise be: it
feeds events, sleeps until the current state's timeout falls due, and runs every action the
machine hands back.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import trio

from fsmflow import FsmBuilder, FsmSpec, StateMachine, Transition, UnhandledEventError, goto, stay

#: Seconds an order may wait for its payment before the next reminder goes out.
PAYMENT_WINDOW = 0.05
#: Reminders sent before an unpaid order is cancelled.
MAX_REMINDERS = 2


# -- states ------------------------------------------------------------------------------


@attrs.frozen
class Pending:
    """Placed, waiting for the payment."""


@attrs.frozen
class PaymentRetry:
    """Still unpaid after ``attempt`` reminders, each with a fresh payment link."""

    attempt: int


@attrs.frozen
class Paid:
    amount: int


@attrs.frozen
class Shipped:
    tracking: str


@attrs.frozen
class Delivered:
    """Final: the customer has the goods."""


@attrs.frozen
class Cancelled:
    """Final: the order will not be fulfilled."""

    reason: str


OrderState = Pending | PaymentRetry | Paid | Shipped | Delivered | Cancelled


# -- events ------------------------------------------------------------------------------


@attrs.frozen
class PaymentReceived:
    amount: int


@attrs.frozen
class Ship:
    tracking: str


@attrs.frozen
class DeliveryConfirmed:
    pass


@attrs.frozen
class Cancel:
    reason: str


OrderEvent = PaymentReceived | Ship | DeliveryConfirmed | Cancel


# -- context and actions -----------------------------------------------------------------


@attrs.frozen
class LedgerEntry:
    kind: str
    amount: int


@attrs.define
class Order:
    """The context: what actions change. Handlers read it; only actions write it."""

    order_id: str
    total: int
    ledger: list[LedgerEntry] = attrs.Factory(list)
    #: Messages for other systems, as ``"recipient: text"``.
    outbox: list[str] = attrs.Factory(list)

    def balance(self) -> int:
        """Money kept: charges minus refunds."""
        return sum(e.amount if e.kind == "charge" else -e.amount for e in self.ledger)


@attrs.frozen
class Charge:
    amount: int

    async def execute(self, ctx: Order) -> None:
        ctx.ledger.append(LedgerEntry("charge", self.amount))


@attrs.frozen
class Refund:
    amount: int

    async def execute(self, ctx: Order) -> None:
        ctx.ledger.append(LedgerEntry("refund", self.amount))


@attrs.frozen
class Send:
    recipient: str
    text: str

    async def execute(self, ctx: Order) -> None:
        ctx.outbox.append(f"{self.recipient}: {self.text}")


OrderAction = Charge | Refund | Send
OrderTransition = Transition[OrderState, OrderAction]


# -- handlers ----------------------------------------------------------------------------


def take_payment(
    state: Pending | PaymentRetry, event: PaymentReceived, ctx: Order
) -> OrderTransition:
    if event.amount != ctx.total:
        return stay(Send("payments", f"reject {event.amount}: order total is {ctx.total}"))
    return goto(Paid(event.amount), Charge(event.amount))


def first_reminder(state: Pending, ctx: Order) -> OrderTransition:
    return goto(PaymentRetry(1))


def next_reminder(state: PaymentRetry, ctx: Order) -> OrderTransition:
    if state.attempt < MAX_REMINDERS:
        return goto(PaymentRetry(state.attempt + 1))
    return goto(Cancelled(f"no payment after {state.attempt} reminders"))


def ship(state: Paid, event: Ship, ctx: Order) -> OrderTransition:
    return goto(Shipped(event.tracking))


def confirm_delivery(state: Shipped, event: DeliveryConfirmed, ctx: Order) -> OrderTransition:
    return goto(Delivered(), Send("customer", f"order {ctx.order_id} delivered"))


def cancel(state: OrderState, event: Cancel, ctx: Order) -> OrderTransition:
    """The wildcard: a cancel in any state without a handler of its own for it."""
    match state:
        case Pending() | PaymentRetry():
            return goto(Cancelled(event.reason))
        case Paid(amount=amount):
            return goto(Cancelled(event.reason), Refund(amount))
        case Shipped(tracking=tracking):
            return goto(
                Cancelled(event.reason),
                Send("warehouse", f"intercept parcel {tracking}"),
                Refund(ctx.total),
            )
        case _:  # already cancelled; Delivered has a handler of its own
            return stay()


def refuse_cancel(state: Delivered, event: Cancel, ctx: Order) -> OrderTransition:
    """Wins over the wildcard: a delivered order is returned, not cancelled."""
    return stay(Send("customer", f"order {ctx.order_id} was delivered; request a return"))


# -- hooks -------------------------------------------------------------------------------


def send_reminder(state: PaymentRetry, ctx: Order) -> list[OrderAction]:
    return [
        Send("customer", f"reminder {state.attempt}/{MAX_REMINDERS}: payment link #{state.attempt}")
    ]


def void_link(state: PaymentRetry, ctx: Order) -> list[OrderAction]:
    return [Send("payments", f"void payment link #{state.attempt}")]


def announce_shipment(state: Shipped, ctx: Order) -> list[OrderAction]:
    return [Send("customer", f"order {ctx.order_id} shipped, tracking {state.tracking}")]


def announce_cancellation(state: Cancelled, ctx: Order) -> list[OrderAction]:
    return [Send("customer", f"order {ctx.order_id} cancelled: {state.reason}")]


def order_spec() -> FsmSpec[OrderState, OrderEvent, Order, OrderAction]:
    """The order machine; the docs' diagram is generated from it."""
    builder = FsmBuilder[OrderState, OrderEvent, Order, OrderAction](
        states=OrderState, events=OrderEvent, initial=Pending, name="order lifecycle"
    )
    builder.when(Pending).on(PaymentReceived, take_payment, to=[Paid]).timeout(
        PAYMENT_WINDOW, first_reminder, to=[PaymentRetry]
    )
    (
        builder.when(PaymentRetry)
        .on(PaymentReceived, take_payment, to=[Paid])
        .timeout(PAYMENT_WINDOW, next_reminder, to=[PaymentRetry, Cancelled])
        .on_entry(send_reminder)
        .on_exit(void_link)
    )
    builder.when(Paid).on(Ship, ship, to=[Shipped])
    builder.when(Shipped).on(DeliveryConfirmed, confirm_delivery, to=[Delivered])
    # A handler that only stays declares its own state, drawn as a loop.
    builder.when(Delivered).on(Cancel, refuse_cancel, to=())
    builder.from_any().on(Cancel, cancel, to=[Cancelled])
    builder.on_entry(Shipped, announce_shipment)
    builder.on_entry(Cancelled, announce_cancellation)
    return builder.strict().build()


# -- driving it --------------------------------------------------------------------------


@attrs.frozen
class Wait:
    """A script step: let ``seconds`` pass, firing any timeout that falls due meanwhile."""

    seconds: float


OrderMachine = StateMachine[OrderState, OrderEvent, Order, OrderAction]


async def run_actions(machine: OrderMachine, actions: list[OrderAction], order: Order) -> None:
    await machine.execute_actions(actions, order)
    for action in actions:
        print(f"{'':8}{action!r}")


async def wait(machine: OrderMachine, order: Order, seconds: float) -> None:
    """Sleep ``seconds``, waking at each timeout deadline to let the machine fire it."""
    end = trio.current_time() + seconds
    while True:
        deadline = machine.timeout_deadline()
        if deadline is None or deadline > end:
            await trio.sleep_until(end)
            return
        await trio.sleep_until(deadline)
        before = machine.state
        actions = await machine.check_timeout(order)
        print(f"    {'(timeout)':<32} {before!r} -> {machine.state!r}")
        await run_actions(machine, actions, order)


async def drive(order: Order, script: Sequence[OrderEvent | Wait]) -> OrderMachine:
    """Run ``script`` against a new machine for ``order`` and return the machine."""
    machine = order_spec().new_machine(Pending())
    machine.timeout_deadline()  # the initial state's timer starts now
    print(f"order {order.order_id} (total {order.total})")
    for step in script:
        if isinstance(step, Wait):
            await wait(machine, order, step.seconds)
            continue
        before = machine.state
        actions = await machine.handle(step, order)
        print(f"    {step!r:<32} {before!r} -> {machine.state!r}")
        await run_actions(machine, actions, order)
    return machine


@attrs.frozen
class Outcome:
    """How one scripted order ended."""

    state: OrderState
    order: Order


async def main() -> dict[str, Outcome]:
    """Three orders: paid at once, paid after a reminder then cancelled, never paid."""
    scripts: dict[str, tuple[Order, list[OrderEvent | Wait]]] = {
        "happy": (
            Order("A-1", total=4200),
            [
                PaymentReceived(4000),
                PaymentReceived(4200),
                Ship("TRK-77"),
                DeliveryConfirmed(),
                Cancel("changed my mind"),
            ],
        ),
        "late payer": (
            Order("B-2", total=1500),
            [Wait(PAYMENT_WINDOW * 1.5), PaymentReceived(1500), Cancel("found it cheaper")],
        ),
        "never paid": (Order("C-3", total=990), [Wait(PAYMENT_WINDOW * 4)]),
    }
    outcomes: dict[str, Outcome] = {}
    for name, (order, script) in scripts.items():
        machine = await drive(order, script)
        outcomes[name] = Outcome(machine.state, order)
        print(f"    => {machine.state!r}, balance {order.balance()}\n")
    # The machine is strict: an event it has no handler for is an error, not a no-op.
    order = Order("D-4", total=100)
    try:
        await order_spec().new_machine(Cancelled("unpaid")).handle(Ship("TRK-0"), order)
    except UnhandledEventError as exc:
        print(f"strict mode: {exc}")
    return outcomes


if __name__ == "__main__":
    trio.run(main)
