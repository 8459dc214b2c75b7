"""``MemoryStore``: the protocols in memory, for tests and ephemeral runs."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import anyio.lowlevel

from ._errors import VersionConflict
from ._protocols import Append, BatchOp, Checkpoint, Delete, LogEntry, Put, Versioned
from ._single_ops import SingleOpWrites


class MemoryStore(SingleOpWrites):
    """Every :class:`Store` operation on plain dicts.

    Same semantics as :class:`SqliteStore` (versions, never-reused log seqs, atomic
    batches), nothing survives the process. Each call is a checkpoint, so code tested
    against it meets the same cancellation points as with a real backend.
    """

    def __init__(self) -> None:
        self._kv: dict[tuple[str, str], Versioned] = {}
        self._logs: dict[str, dict[int, bytes]] = {}
        self._log_heads: dict[str, int] = {}
        self._checkpoints: dict[str, dict[int, Checkpoint]] = {}

    # -- key / value ------------------------------------------------------------------

    async def get(self, namespace: str, key: str) -> Versioned | None:
        await anyio.lowlevel.checkpoint()
        return self._kv.get((namespace, key))

    async def keys(self, namespace: str) -> list[str]:
        await anyio.lowlevel.checkpoint()
        return sorted(k for ns, k in self._kv if ns == namespace)

    # -- logs -------------------------------------------------------------------------

    async def read(self, log: str, *, after: int = 0, limit: int | None = None) -> list[LogEntry]:
        await anyio.lowlevel.checkpoint()
        entries: list[LogEntry] = []
        for seq, value in self._logs.get(log, {}).items():
            if seq > after:
                if limit is not None and len(entries) >= limit:
                    break
                entries.append(LogEntry(seq, value))
        return entries

    async def length(self, log: str) -> int:
        await anyio.lowlevel.checkpoint()
        return len(self._logs.get(log, {}))

    # -- checkpoints ------------------------------------------------------------------

    async def save_checkpoint(self, run_id: str, step: int, value: bytes) -> None:
        await anyio.lowlevel.checkpoint()
        steps = self._checkpoints.setdefault(run_id, {})
        steps[step] = Checkpoint(run_id, step, value, time.time())

    async def latest_checkpoint(self, run_id: str) -> Checkpoint | None:
        await anyio.lowlevel.checkpoint()
        steps = self._checkpoints.get(run_id)
        return steps[max(steps)] if steps else None

    async def checkpoints(self, run_id: str) -> list[Checkpoint]:
        await anyio.lowlevel.checkpoint()
        steps = self._checkpoints.get(run_id, {})
        return [steps[s] for s in sorted(steps)]

    async def runs(self) -> list[str]:
        await anyio.lowlevel.checkpoint()
        return sorted(r for r, steps in self._checkpoints.items() if steps)

    async def delete_run(self, run_id: str) -> int:
        await anyio.lowlevel.checkpoint()
        return len(self._checkpoints.pop(run_id, {}))

    # -- batches ----------------------------------------------------------------------

    async def write_batch(self, ops: Sequence[BatchOp]) -> list[int | bool | None]:
        await anyio.lowlevel.checkpoint()
        undo: list[Callable[[], None]] = []
        results: list[int | bool | None] = []
        try:
            for op in ops:
                results.append(self._apply(op, undo))
        except BaseException:
            for step in reversed(undo):
                step()
            raise
        return results

    def _apply(self, op: BatchOp, undo: list[Callable[[], None]]) -> int | bool:
        if isinstance(op, Put):
            key = (op.namespace, op.key)
            old = self._kv.get(key)
            current = 0 if old is None else old.version
            if op.expected_version is not None and op.expected_version != current:
                raise VersionConflict(f"{op.namespace}/{op.key}", op.expected_version, current)
            self._kv[key] = Versioned(op.value, current + 1)
            undo.append(lambda: self._restore(key, old))
            return current + 1
        if isinstance(op, Delete):
            key = (op.namespace, op.key)
            old = self._kv.pop(key, None)
            undo.append(lambda: self._restore(key, old))
            return old is not None
        if isinstance(op, Append):
            head = self._log_heads.get(op.log, 0)
            seq = head + 1
            self._log_heads[op.log] = seq
            self._logs.setdefault(op.log, {})[seq] = op.value
            undo.append(lambda: self._undo_append(op.log, seq, head))
            return seq
        entries = self._logs.get(op.log, {})
        if op.seq not in entries:
            return False
        value = entries.pop(op.seq)
        undo.append(lambda: self._reinsert(op.log, op.seq, value))
        return True

    def _restore(self, key: tuple[str, str], old: Versioned | None) -> None:
        if old is None:
            self._kv.pop(key, None)
        else:
            self._kv[key] = old

    def _undo_append(self, log: str, seq: int, head: int) -> None:
        self._logs[log].pop(seq, None)
        self._log_heads[log] = head

    def _reinsert(self, log: str, seq: int, value: bytes) -> None:
        entries = self._logs[log]
        entries[seq] = value
        self._logs[log] = dict(sorted(entries.items()))

    async def aclose(self) -> None:
        await anyio.lowlevel.checkpoint()
