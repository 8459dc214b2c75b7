"""The lease rules, as pure functions of the stored lease and the store's clock.

Every backend reads the resource's lease row inside its transaction, asks these functions
what the row becomes (or which error to raise), and writes the result in the same
transaction. Keeping the rules here means the backends cannot disagree about when a lease
may be taken over, when a token grows, or what a fenced write must find.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ._errors import LeaseHeld, LeaseLost
from ._protocols import Fence, Lease

#: The owner of a free lease.
FREE = ""


def check_ttl(ttl: float) -> None:
    if not (ttl > 0 and math.isfinite(ttl)):
        raise ValueError(f"a lease's ttl must be a positive, finite number of seconds, not {ttl!r}")


def check_delay(delay: float) -> None:
    if math.isnan(delay) or delay < 0:
        raise ValueError(f"a lease delay must be >= 0 seconds (math.inf: never), not {delay!r}")


def prefixes(prefix: str | Sequence[str]) -> list[str]:
    """A claim's prefixes in priority order (one string is one prefix)."""
    return [prefix] if isinstance(prefix, str) else list(prefix)


def claimable(row: Lease, now: float) -> bool:
    """Free and offered for now or earlier, or held and expired."""
    return row.expires_at <= now


def acquired(row: Lease | None, resource: str, owner: str, ttl: float, now: float) -> Lease:
    """The lease ``owner`` gets, or :class:`LeaseHeld` while someone holds it unexpired."""
    check_ttl(ttl)
    if not owner:
        raise ValueError("a lease owner must be a non-empty string")
    if row is not None and row.owner != FREE and row.expires_at > now:
        raise LeaseHeld(resource, row.owner, row.expires_at - now)
    token = 1 if row is None else row.token + 1
    return Lease(resource, owner, token, now + ttl)


def renewed(row: Lease | None, lease: Lease, ttl: float, now: float) -> Lease:
    check_ttl(ttl)
    check_fence(row, lease.fence)
    return Lease(lease.resource, lease.owner, lease.token, now + ttl)


def offered(row: Lease | None, resource: str, delay: float, now: float) -> Lease | None:
    """The free lease after an offer, or ``None`` when nothing changes."""
    check_delay(delay)
    at = now + delay
    if row is None:
        return Lease(resource, FREE, 0, at)
    if row.owner != FREE or row.expires_at <= at:
        return None
    return Lease(resource, FREE, row.token, at)


def released(row: Lease | None, resource: str, token: int, delay: float, now: float) -> Lease:
    check_delay(delay)
    check_fence(row, Fence(resource, token))
    return Lease(resource, FREE, token, now + delay)


def check_fence(row: Lease | None, fence: Fence) -> None:
    """Raise :class:`LeaseLost` unless ``row`` still carries ``fence``'s token and an owner."""
    if row is None:
        raise LeaseLost(fence.resource, fence.token, None, None)
    if row.token != fence.token or row.owner == FREE:
        raise LeaseLost(fence.resource, fence.token, row.owner or None, row.token)
