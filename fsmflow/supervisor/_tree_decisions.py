"""What a tree decides when a child's run ends: nothing, a restart (of which children,
after which delay), giving up, or that the child ended for good (and perhaps that the
tree shuts itself down). Pure decisions over the context; the actions carry them out.

The rules follow Erlang/OTP's ``supervisor``:

* a child's :class:`RestartType` says whether its exit asks for a restart at all;
* the :class:`RestartStrategy` says which children restart with it; the grouped
  strategies restart every child of the group whose spec the tree holds, a transient
  child that ended normally earlier included, and stop-and-drop its temporary ones;
* one restart more than the :class:`RestartIntensity` allows, and the tree gives up;
* a significant child that ended for good may shut the tree down (:class:`AutoShutdown`).
"""

from __future__ import annotations

import attrs

from ._tree_context import Child, TreeContext
from ._tree_states import ChildExited
from ._tree_values import (
    AutoShutdown,
    PendingRestart,
    RestartRecord,
    RestartStrategy,
    RestartType,
)


@attrs.frozen
class Ended:
    """The child's run is over for good: the tree forgets it if ``forget``, and shuts
    down (orderly) for ``auto_shutdown`` when that is not ``None``."""

    child_id: str
    forget: bool
    auto_shutdown: str | None


@attrs.frozen
class RestartPlan:
    """Restart children: ``pending`` is the new set of pending restarts, ``stopping``
    the live children of the group to stop first."""

    record: RestartRecord
    pending: tuple[PendingRestart, ...]
    stopping: tuple[str, ...]


@attrs.frozen
class IntensityExceeded:
    """One restart too many: the tree gives up."""

    record: RestartRecord


ExitDecision = Ended | RestartPlan | IntensityExceeded


def decide_exit(
    ctx: TreeContext, event: ChildExited, pending: tuple[PendingRestart, ...], now: float
) -> ExitDecision | None:
    """What ``event`` means; ``None`` when nothing is to be done (a stale report about an
    earlier run, or an exit the tree caused or already accounted for)."""
    child = ctx.children.get(event.child_id)
    run = None if child is None else child.run
    if child is None or run is None or run.number != event.run or run.exit_expected:
        return None
    exit_kind = event.outcome.exit
    if not child.spec.restart.restarts_after(exit_kind):
        reason = _auto_shutdown_reason(ctx, child, {p.child_id for p in pending})
        return Ended(child.spec.id, ctx.forgets(child), reason)
    error = None if event.outcome.error is None else str(event.outcome.error)
    recent = [r for r in ctx.window if r.at > now - ctx.intensity.period]
    if len(recent) >= ctx.intensity.max_restarts:
        return IntensityExceeded(RestartRecord(child.spec.id, exit_kind, error, now, (), 0.0))
    earlier = sum(1 for r in recent if r.child_id == child.spec.id)
    delay = ctx.backoff.delay(earlier, ctx.rng)
    restart, stop = _group(ctx, child)
    record = RestartRecord(child.spec.id, exit_kind, error, now, restart, delay)
    return RestartPlan(record, _merge(ctx, pending, restart, now + delay), stop)


def _group(ctx: TreeContext, child: Child) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The children to restart and the live ones to stop first, by strategy.

    As OTP does it: the group is every child whose spec the tree holds (all of them, or
    the exited one and those after it); every non-temporary child of the group restarts,
    whether it was running, waiting to restart, or stopped; temporary ones are stopped
    and not started again.
    """
    if ctx.pooled or ctx.strategy is RestartStrategy.ONE_FOR_ONE:
        return (child.spec.id,), ()
    scope = list(ctx.children.values())
    if ctx.strategy is RestartStrategy.REST_FOR_ONE:
        scope = scope[scope.index(child) :]
    restart = tuple(
        other.spec.id
        for other in scope
        if other is child or other.spec.restart is not RestartType.TEMPORARY
    )
    stop = tuple(other.spec.id for other in scope if other is not child and other.live)
    return restart, stop


def _merge(
    ctx: TreeContext, pending: tuple[PendingRestart, ...], restart: tuple[str, ...], due: float
) -> tuple[PendingRestart, ...]:
    """Add ``restart`` (due at ``due``) to what is already pending, in start order.

    Under the grouped strategies everything pending becomes due together, at the
    latest due time, so the group still starts in order.
    """
    dues = {p.child_id: p.due for p in pending}
    dues.update(dict.fromkeys(restart, due))
    if ctx.strategy is not RestartStrategy.ONE_FOR_ONE:
        dues = dict.fromkeys(dues, max(dues.values()))
    order = {child_id: i for i, child_id in enumerate(ctx.children)}
    ordered = sorted(dues, key=lambda child_id: order.get(child_id, len(order)))
    return tuple(PendingRestart(child_id, dues[child_id]) for child_id in ordered)


def split_due(
    pending: tuple[PendingRestart, ...], now: float
) -> tuple[tuple[str, ...], tuple[PendingRestart, ...]]:
    """The children due by ``now`` (in start order) and the restarts still waiting."""
    due = tuple(p.child_id for p in pending if p.due <= now)
    return due, tuple(p for p in pending if p.due > now)


def _auto_shutdown_reason(ctx: TreeContext, child: Child, pending: set[str]) -> str | None:
    """Why the tree shuts itself down now that ``child`` ended for good, or ``None``."""
    if not child.spec.significant or ctx.auto_shutdown is AutoShutdown.NEVER:
        return None
    if ctx.auto_shutdown is AutoShutdown.ANY_SIGNIFICANT:
        return f"auto_shutdown (any_significant): significant child {child.spec.id!r} ended"
    for other in ctx.children.values():
        if other is child or not other.spec.significant:
            continue
        if other.live or other.restart_pending or other.spec.id in pending:
            return None
    return f"auto_shutdown (all_significant): the last significant child, {child.spec.id!r}, ended"
