"""Keeping leases alive: one task renews every lease a worker holds.

This is the one place that renews, so it can be swapped for the store's own
lease-holding helper when there is one. A lease it cannot renew (``LeaseLost``: someone
took the resource over, or it was released) has the scope registered with it cancelled
at once, so the work done under it stops at its next await.
"""

from __future__ import annotations

import logging
import math

import anyio

from ..store import Lease, LeaseLost, Store, StoreError

logger = logging.getLogger("fsmflow.durable")


class LeaseKeeper:
    """Renews held leases every ``ttl / 3`` seconds (of the store's clock, roughly).

    ``hold(lease, scope)`` registers a lease and the cancel scope of the work it guards;
    ``drop(resource)`` forgets it (after the work released it). Run :meth:`run` in the
    worker's task group. A renewal that fails for any other reason (the store briefly
    unreachable) is retried on the next round: the lease may still expire meanwhile, and
    then the fenced writes of the work fail and it stops the same way.
    """

    def __init__(self, store: Store, ttl: float) -> None:
        if not (ttl > 0 and math.isfinite(ttl)):
            raise ValueError(f"lease ttl must be a positive number of seconds, not {ttl!r}")
        self.store = store
        self.ttl = ttl
        self._held: dict[str, tuple[Lease, anyio.CancelScope | None]] = {}
        #: Leases lost since start (renewal refused): what tests and stats read.
        self.lost = 0

    def hold(self, lease: Lease, scope: anyio.CancelScope | None = None) -> None:
        self._held[lease.resource] = (lease, scope)

    def drop(self, resource: str) -> None:
        self._held.pop(resource, None)

    def held(self) -> list[Lease]:
        return [lease for lease, _ in self._held.values()]

    async def run(self) -> None:
        """Renew forever (until cancelled)."""
        while True:
            await anyio.sleep(self.ttl / 3)
            await self.renew_all()

    async def renew_all(self) -> None:
        for resource, entry in list(self._held.items()):
            lease, scope = entry
            try:
                renewed = await self.store.renew_lease(lease, self.ttl)
            except LeaseLost as exc:
                if self._held.get(resource) is not entry:
                    continue  # released by its work meanwhile: nothing was lost
                self.lost += 1
                logger.warning("lease lost, stopping its work: %s", exc)
                self._held.pop(resource, None)
                if scope is not None:
                    scope.cancel()
                continue
            except StoreError as exc:
                logger.warning("could not renew %s (will retry): %s", resource, exc)
                continue
            if self._held.get(resource) is entry:
                self._held[resource] = (renewed, scope)
