"""Workflows the durable tests run, written the way a user writes them (mypy --strict
checks this module: step inputs against earlier steps' outputs, undos, signals)."""

from __future__ import annotations

import time

import anyio
import attrs

from fsmflow.durable import Queue, RetryPolicy, StepContext, Workflow


@attrs.frozen
class Order:
    id: str
    amount: int
    fail_at: str = ""
    fail_undo_at: str = ""


@attrs.frozen
class Reservation:
    sku: str
    quantity: int


@attrs.frozen
class Payment:
    charge_id: str
    amount: int


@attrs.frozen
class Receipt:
    order_id: str
    charge_id: str
    tracking: str


@attrs.frozen
class Approval:
    by: str


#: What steps did, for the assertions: (step or undo, idempotency key).
EFFECTS: list[tuple[str, str]] = []


class Refused(Exception):
    """A failure no retry fixes."""


order = Workflow("order", input=Order, output=Receipt, signals=[Approval])


@order.step()
async def reserve(ctx: StepContext, o: Order) -> Reservation:
    EFFECTS.append(("reserve", ctx.idempotency_key))
    if o.fail_at == "reserve":
        raise Refused("out of stock")
    return Reservation(f"sku-{o.id}", 1)


@reserve.undo
async def release(ctx: StepContext, o: Order, r: Reservation) -> None:
    EFFECTS.append(("release", ctx.idempotency_key))
    if o.fail_undo_at == "release":
        raise Refused("warehouse unreachable")


@order.step(reserve, retry=RetryPolicy(attempts=3, initial_delay=0.0, give_up_on=(Refused,)))
def charge(ctx: StepContext, o: Order, r: Reservation) -> Payment:
    EFFECTS.append(("charge", ctx.idempotency_key))
    if o.fail_at == "charge":
        raise Refused("card declined")
    return Payment(f"ch-{o.id}", o.amount * r.quantity)


@charge.undo
def refund(ctx: StepContext, o: Order, p: Payment) -> None:
    EFFECTS.append(("refund", ctx.idempotency_key))
    if o.fail_undo_at == "refund":
        raise Refused("refund refused")


@order.step(charge)
async def ship(ctx: StepContext, o: Order, p: Payment) -> Receipt:
    EFFECTS.append(("ship", ctx.idempotency_key))
    if o.fail_at == "ship":
        raise Refused("no courier")
    return Receipt(o.id, p.charge_id, f"track-{o.id}")


# -- a workflow that waits for a signal and sleeps ---------------------------------------

approval = Workflow("approval", input=str, output=str, signals=[Approval])


@approval.step()
async def ask(ctx: StepContext, who: str) -> Approval:
    return await ctx.wait_for_signal(Approval, timeout=3600)


@approval.step(ask)
async def cool_off(ctx: StepContext, who: str, a: Approval) -> str:
    await ctx.sleep(2.0)
    return f"{who} approved by {a.by}"


# -- blocking, timeouts, retries -----------------------------------------------------------

chores = Workflow("chores", input=int, output=int)
ATTEMPTS: list[int] = []


@chores.step(blocking=True)
def crunch(ctx: StepContext, n: int) -> int:
    time.sleep(0.01)  # blocks its thread, not the event loop
    return sum(range(n))


@chores.step(crunch, retry=RetryPolicy(attempts=4, initial_delay=0.001, jitter=0.0))
async def flaky(ctx: StepContext, n: int, total: int) -> int:
    ATTEMPTS.append(ctx.attempt)
    if ctx.attempt < 3:
        raise ConnectionError("upstream busy")
    return total


slow = Workflow("slow", input=float, output=str)


@slow.step(timeout=0.05, retry=RetryPolicy(attempts=2, initial_delay=0.0))
async def dawdle(ctx: StepContext, seconds: float) -> str:
    await anyio.sleep(seconds)
    return "done"


# -- queues --------------------------------------------------------------------------------

limited = Workflow(
    "limited",
    input=str,
    output=str,
    queue=Queue("limited", concurrency=2, per_key=1, priorities=3),
)
RUNNING: list[str] = []
PEAK: list[int] = []


@limited.step()
async def hold(ctx: StepContext, name: str) -> str:
    RUNNING.append(name)
    PEAK.append(len(RUNNING))
    await anyio.sleep(0.05)
    RUNNING.remove(name)
    return name
