"""How a run executes: :class:`RunOptions` and the defaults of the entry points."""

from __future__ import annotations

import math
import os

import attrs

from ..store import Store
from ._checkpoint import CheckpointPolicy
from ._lease import DEFAULT_LEASE_TTL


def new_trace_id() -> str:
    """A random W3C-style trace id (32 hex digits)."""
    return os.urandom(16).hex()


#: Default bound on node executions per run.
DEFAULT_MAX_STEPS = 1000
#: Default bound on fan-out branches running at once.
DEFAULT_MAX_CONCURRENCY = 64


@attrs.frozen(slots=True)
class RunOptions:
    """How a run executes and checkpoints (see :func:`~fsmflow.graph.execute_stream`)."""

    max_steps: int = DEFAULT_MAX_STEPS
    store: Store | None = None
    policy: CheckpointPolicy = attrs.field(factory=CheckpointPolicy)
    compact_after: int = 20
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    #: The run's lease on its thread lasts this long without renewal (it is renewed
    #: every third of it).
    lease_ttl: float = DEFAULT_LEASE_TTL

    def __attrs_post_init__(self) -> None:
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, not {self.max_steps}")
        if self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, not {self.max_concurrency}")
        if self.compact_after < 0:
            raise ValueError(f"compact_after must be >= 0, not {self.compact_after}")
        if not (self.lease_ttl > 0 and math.isfinite(self.lease_ttl)):
            raise ValueError(
                f"lease_ttl must be a positive number of seconds, not {self.lease_ttl}"
            )
