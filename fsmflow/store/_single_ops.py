"""Single writes as one-operation batches, shared by every backend.

A backend implements :meth:`write_batch` once; ``put``, ``delete``, ``append``,
``remove``, ``release_lease`` and ``notify`` are that same atomic mechanism with one
operation, so the single-write and batch paths can never disagree about versions, seqs,
conflicts or tokens.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

from ._errors import LeaseLost
from ._protocols import (
    Append,
    BatchOp,
    Delete,
    Fence,
    Lease,
    Notify,
    Put,
    ReleaseLease,
    Remove,
)


class SingleOpWrites(ABC):
    @abstractmethod
    async def write_batch(
        self, ops: Sequence[BatchOp], *, fence: Fence | None = None
    ) -> list[int | bool | None]:
        """Apply ``ops`` atomically, in order (see :class:`~fsmflow.store.Store`)."""

    async def put(
        self, namespace: str, key: str, value: bytes, *, expected_version: int | None = None
    ) -> int:
        (version,) = await self.write_batch([Put(namespace, key, value, expected_version)])
        assert isinstance(version, int)
        return version

    async def delete(self, namespace: str, key: str) -> bool:
        (removed,) = await self.write_batch([Delete(namespace, key)])
        return bool(removed)

    async def append(self, log: str, value: bytes) -> int:
        (seq,) = await self.write_batch([Append(log, value)])
        assert isinstance(seq, int)
        return seq

    async def remove(self, log: str, seq: int) -> bool:
        (removed,) = await self.write_batch([Remove(log, seq)])
        return bool(removed)

    async def release_lease(self, lease: Lease) -> bool:
        try:
            await self.write_batch([ReleaseLease(lease.resource, lease.token, math.inf)])
        except LeaseLost:
            return False
        return True

    async def notify(self, channel: str) -> None:
        await self.write_batch([Notify(channel)])
