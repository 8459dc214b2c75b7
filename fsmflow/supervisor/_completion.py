"""Writing a run's completion event so that no cancellation can lose it.

On trio every cancellation comes from a cancel scope, and a shielded scope keeps them out.
asyncio also cancels natively — ``task.cancel()``, ``asyncio.wait_for`` timing out — and
such a cancellation goes through any shield into whatever the task awaits. So on asyncio
the write runs in a task of its own, which no cancellation of the run's task reaches;
the run's task waits for it, takes each native cancellation that arrives meanwhile, and
re-raises it once the write is done.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import anyio
import trio

logger = logging.getLogger("fsmflow.supervisor")


async def write_completion(sup: Any) -> tuple[bool, BaseException | None]:
    """Call ``sup.write_completion_event()`` shielded, within ``sup.completion_timeout``.

    Returns whether it finished without error, and the native cancellation that arrived
    meanwhile (for the caller to re-raise once it has recorded the outcome), if any.
    An error in the write is logged, never raised.
    """
    if trio.lowlevel.in_trio_task():
        return await _write_shielded(sup), None
    return await _write_in_own_task(sup)


async def _write_shielded(sup: Any) -> bool:
    """The write under a shielded scope with a deadline: it happens even while the run is
    being cancelled, yet cannot hold the cancellation up forever."""
    with anyio.move_on_after(sup.completion_timeout, shield=True):
        try:
            await sup.write_completion_event()
        except Exception:
            logger.exception("%s: write_completion_event failed", sup.name)
            return False
        return True
    logger.error(
        "%s: write_completion_event did not finish within %.1fs",
        sup.name,
        sup.completion_timeout,
    )
    return False


async def _write_in_own_task(sup: Any) -> tuple[bool, BaseException | None]:
    writer = asyncio.get_running_loop().create_task(
        _write_shielded(sup), name=f"completion:{sup.name}"
    )
    cancellation: BaseException | None = None
    # anyio's own cancellations stay out; native ones reach the wait below and are kept.
    with anyio.CancelScope(shield=True):
        while not writer.done():
            try:
                await asyncio.wait((writer,))
            except asyncio.CancelledError as exc:
                cancellation = exc
    if writer.cancelled():
        return False, cancellation
    return writer.result(), cancellation
