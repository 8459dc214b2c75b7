"""Processors and the validated DAG they form."""

from __future__ import annotations

import enum
import inspect
import itertools
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar, final

import attrs

from .._util import NoPublicConstructor
from ..diagrams import Flowchart, FlowEdge, FlowNode, NodeShape

P = TypeVar("P")


class Intent(enum.Enum):
    """What a processor may do to the canonical payload."""

    #: May return the next canonical payload (``None`` keeps it).
    TRANSFORM = "transform"
    #: Contributes a result only; never changes the payload.
    ANALYZE = "analyze"


class DagDefinitionError(ValueError):
    """The DAG is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid DAG:\n" + "\n".join(f"  - {p}" for p in self.problems))


@attrs.frozen(slots=True)
class ProcessorInput(Generic[P]):
    """What a processor receives."""

    #: The processor's id.
    id: str
    #: The canonical payload as left by the latest transform among its ancestors.
    payload: P
    #: Outcomes of its direct dependencies (with ``BEST_EFFORT`` failures included).
    dependencies: Mapping[str, Any]
    #: 1 for the first attempt, +1 per retry.
    attempt: int


ProcessorFn = Callable[[ProcessorInput[P]], Any]


@attrs.frozen(slots=True)
class Processor(Generic[P]):
    """One node of the DAG."""

    id: str
    function: ProcessorFn[P] = attrs.field(repr=False)
    dependencies: tuple[str, ...]
    intent: Intent
    #: Run a sync function in a worker thread (for blocking I/O or CPU work).
    blocking: bool
    #: Extra attempts after a failure.
    retries: int
    #: Seconds before the first retry; doubled for each further one.
    retry_backoff: float
    #: Seconds one attempt may take, or ``None``.
    timeout: float | None
    is_async: bool


@final
class Dag(Generic[P], metaclass=NoPublicConstructor):
    """A validated DAG; create it with :meth:`DagBuilder.build`.

    ``order`` is a topological order; ``dependents`` maps each id to the ids that depend
    on it; ``transform_chain`` lists the transforms, each an ancestor of the next.
    """

    _factory_hint = "DagBuilder.build()"

    def __init__(
        self,
        processors: Mapping[str, Processor[P]],
        order: tuple[str, ...],
        dependents: Mapping[str, tuple[str, ...]],
        transform_chain: tuple[str, ...],
    ) -> None:
        self.processors = processors
        self.order = order
        self.dependents = dependents
        self.transform_chain = transform_chain

    def __len__(self) -> int:
        return len(self.processors)

    def __repr__(self) -> str:
        return f"<Dag: {len(self.processors)} processors, {len(self.transform_chain)} transforms>"

    def flowchart(self, *, title: str | None = None) -> Flowchart:
        """The DAG as a picture: one node per processor in topological order (transforms
        as rounded boxes, analyzers as plain boxes), one edge per dependency. This makes a
        DAG drawable by :func:`fsmflow.diagrams.to_mermaid` and ``fsmflow diagram``."""
        shapes = {Intent.TRANSFORM: NodeShape.ROUNDED, Intent.ANALYZE: NodeShape.BOX}
        nodes = tuple(
            FlowNode.of(pid, shape=shapes[self.processors[pid].intent]) for pid in self.order
        )
        edges = tuple(
            FlowEdge(dep, pid) for pid in self.order for dep in self.processors[pid].dependencies
        )
        return Flowchart(nodes, edges, title=title, direction="LR")


class DagBuilder(Generic[P]):
    """Declare processors with ids, dependencies and an intent, then :meth:`build`."""

    def __init__(self) -> None:
        self._processors: dict[str, Processor[P]] = {}
        self._problems: list[str] = []

    def add(
        self,
        id: str,
        function: Callable[[ProcessorInput[P]], Awaitable[Any] | Any],
        *,
        after: Iterable[str] = (),
        intent: Intent = Intent.ANALYZE,
        blocking: bool = False,
        retries: int = 0,
        retry_backoff: float = 0.1,
        timeout: float | None = None,
    ) -> DagBuilder[P]:
        """Add processor ``id`` running ``function`` once everything in ``after`` is done."""
        if id in self._processors:
            self._problems.append(f"duplicate processor id {id!r}")
            return self
        if retries < 0 or retry_backoff < 0 or (timeout is not None and timeout <= 0):
            self._problems.append(
                f"processor {id!r}: retries and retry_backoff must be >= 0 and timeout > 0"
            )
        is_async = inspect.iscoroutinefunction(function)
        if blocking and is_async:
            self._problems.append(f"processor {id!r}: blocking=True needs a sync function")
        self._processors[id] = Processor(
            id, function, tuple(after), intent, blocking, retries, retry_backoff, timeout, is_async
        )
        return self

    def build(self) -> Dag[P]:
        """Validate and return the DAG.

        Raises :class:`DagDefinitionError` for duplicate ids, unknown dependencies, cycles
        (naming one), and transforms that could run at the same time (both would replace
        the payload; order them with ``after``).
        """
        problems = list(self._problems)
        processors = self._processors
        for p in processors.values():
            for dep in p.dependencies:
                if dep not in processors:
                    problems.append(f"processor {p.id!r} depends on unknown processor {dep!r}")
        if problems:
            raise DagDefinitionError(problems)
        order = _topological_order(processors)
        dependents: dict[str, list[str]] = {pid: [] for pid in processors}
        for pid in order:
            for dep in processors[pid].dependencies:
                dependents[dep].append(pid)
        chain = tuple(pid for pid in order if processors[pid].intent is Intent.TRANSFORM)
        problems.extend(_unordered_transforms(processors, order, chain))
        if problems:
            raise DagDefinitionError(problems)
        dag: Dag[P] = Dag._create(
            processors=dict(processors),
            order=order,
            dependents={k: tuple(v) for k, v in dependents.items()},
            transform_chain=chain,
        )
        return dag


def _topological_order(processors: Mapping[str, Processor[Any]]) -> tuple[str, ...]:
    """Kahn's algorithm, first-ready first (so independent processors keep declaration
    order); a cycle raises naming its members."""
    waiting = {pid: len(set(p.dependencies)) for pid, p in processors.items()}
    dependents: dict[str, list[str]] = {pid: [] for pid in processors}
    for pid, p in processors.items():
        for dep in set(p.dependencies):
            dependents[dep].append(pid)
    ready = deque(pid for pid, count in waiting.items() if count == 0)
    order: list[str] = []
    while ready:
        pid = ready.popleft()
        order.append(pid)
        for child in dependents[pid]:
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    if len(order) < len(processors):
        cycle = _find_cycle(processors, {pid for pid, c in waiting.items() if c > 0})
        raise DagDefinitionError([f"cycle: {' -> '.join(cycle)}"])
    return tuple(order)


def _find_cycle(processors: Mapping[str, Processor[Any]], stuck: set[str]) -> list[str]:
    """One cycle among the ``stuck`` processors, as a closed path of ids."""
    start = min(stuck)
    path = [start]
    seen = {start: 0}
    node = start
    while True:
        node = min(d for d in processors[node].dependencies if d in stuck)
        if node in seen:
            cycle = [*path[seen[node] :], node]
            return list(reversed(cycle))
        seen[node] = len(path)
        path.append(node)


def _unordered_transforms(
    processors: Mapping[str, Processor[Any]], order: tuple[str, ...], chain: tuple[str, ...]
) -> list[str]:
    """Transforms must form a chain (each an ancestor of the next in topological order),
    otherwise two of them could replace the payload at the same time."""
    if len(chain) < 2:
        return []
    index = {pid: i for i, pid in enumerate(order)}
    ancestors: dict[str, int] = {}
    for pid in order:
        bits = 0
        for dep in processors[pid].dependencies:
            bits |= ancestors[dep] | (1 << index[dep])
        ancestors[pid] = bits
    return [
        f"transforms {earlier!r} and {later!r} could run at the same time and both replace "
        f"the payload; order them (add after=[{earlier!r}] to {later!r})"
        for earlier, later in itertools.pairwise(chain)
        if not ancestors[later] >> index[earlier] & 1
    ]
