"""Processors and the validated DAG they form."""

from __future__ import annotations

import enum
import inspect
import math
import numbers
from collections import Counter, deque
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
        #: Whether each function seen is async: many processors often share one.
        self._is_async: dict[Callable[..., Any], bool] = {}

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
        """Add processor ``id`` running ``function`` once everything in ``after`` is done.

        Every argument is checked here and every problem reported by :meth:`build`, named
        after the processor: ``after`` must be a collection of ids (not one string)
        without repeats, ``intent`` an :class:`Intent`, ``retries`` a whole number
        ``>= 0``, ``retry_backoff`` a finite number ``>= 0`` and ``timeout`` a positive
        number (or ``None``).
        """
        if id in self._processors:
            self._problems.append(f"duplicate processor id {_label(id)}")
            return self
        dependencies: tuple[str, ...] = ()
        bad: list[str] = []
        if isinstance(after, (str, bytes)):
            bad.append(_not_a_collection(after))
        else:
            try:
                dependencies = tuple(after)
            except TypeError:
                bad.append(_not_a_collection(after))
            count = len(dependencies)
            if count > 1 and (
                dependencies[0] == dependencies[1] if count == 2 else len(set(dependencies)) < count
            ):
                repeated = [dep for dep, n in Counter(dependencies).items() if n > 1]
                bad.append(f"after= lists {', '.join(map(_label, repeated))} more than once")
        if type(intent) is not Intent:
            bad.append(f"intent must be Intent.TRANSFORM or Intent.ANALYZE, not {intent!r}")
        if type(retries) is not int or retries < 0:
            bad.append(f"retries must be a whole number >= 0, not {retries!r}")
        if not (_is_number(retry_backoff) and 0 <= retry_backoff < math.inf):
            bad.append(
                f"retry_backoff must be a finite number of seconds >= 0, not {retry_backoff!r}"
            )
        if timeout is not None and not (_is_number(timeout) and timeout > 0):
            bad.append(f"timeout must be a positive number of seconds or None, not {timeout!r}")
        is_async = _is_async(function, self._is_async)
        if blocking and is_async:
            bad.append("blocking=True needs a sync function")
        if bad:
            self._problems.extend(f"processor {_label(id)}: {problem}" for problem in bad)
        self._processors[id] = Processor(
            id, function, dependencies, intent, blocking, retries, retry_backoff, timeout, is_async
        )
        return self

    def build(self) -> Dag[P]:
        """Validate and return the DAG.

        Raises :class:`DagDefinitionError` for duplicate ids, unknown dependencies, cycles
        (naming one), and transforms that could run at the same time (both would replace
        the payload; order them with ``after``). Costs time in proportion to processors
        plus dependencies.
        """
        problems = list(self._problems)
        processors = self._processors
        # Processors are numbered in declaration order and the graph is walked on those
        # numbers: list indexing, not hashing ids, on every step.
        ids = list(processors)
        number = {pid: i for i, pid in enumerate(ids)}
        dependencies: list[list[int]] = []
        for p in processors.values():
            known = []
            for dep in p.dependencies:
                i = number.get(dep)
                if i is None:
                    problems.append(
                        f"processor {_label(p.id)} depends on unknown processor {_label(dep)}"
                    )
                else:
                    known.append(i)
            dependencies.append(known)
        if problems:
            raise DagDefinitionError(problems)
        order, children = _topological_order(ids, dependencies)
        name = ids.__getitem__
        ordered = tuple(ids[i] for i in order)
        declared = list(processors.values())
        transform = Intent.TRANSFORM
        chain = tuple(ids[i] for i in order if declared[i].intent is transform)
        problems.extend(_unordered_transforms(processors, ordered, chain))
        if problems:
            raise DagDefinitionError(problems)
        dag: Dag[P] = Dag._create(
            processors=dict(processors),
            order=ordered,
            dependents={pid: tuple(map(name, children[i])) for i, pid in enumerate(ids)},
            transform_chain=chain,
        )
        return dag


def _topological_order(
    ids: list[str], dependencies: list[list[int]]
) -> tuple[list[int], list[list[int]]]:
    """Kahn's algorithm on processor numbers, first-ready first (so independent
    processors keep declaration order); a cycle raises naming its members. Dependencies
    are distinct (``add`` rejects repeats), so each one counts once. Returns the order
    and each processor's dependents, in declaration order."""
    waiting = [len(deps) for deps in dependencies]
    dependents: list[list[int]] = [[] for _ in ids]
    for i, deps in enumerate(dependencies):
        for dep in deps:
            dependents[dep].append(i)
    ready = deque(i for i, count in enumerate(waiting) if count == 0)
    order: list[int] = []
    while ready:
        i = ready.popleft()
        order.append(i)
        for child in dependents[i]:
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    if len(order) < len(ids):
        cycle = _find_cycle(dependencies, [count > 0 for count in waiting])
        raise DagDefinitionError([f"cycle: {' -> '.join(_plain(ids[i]) for i in cycle)}"])
    return order, dependents


def _find_cycle(dependencies: list[list[int]], stuck: list[bool]) -> list[int]:
    """One cycle among the ``stuck`` processors, as a closed path of numbers. It starts
    from the first stuck processor in declaration order and follows each one's first
    stuck dependency, so ids need not be comparable with each other."""
    start = stuck.index(True)
    path = [start]
    seen = {start: 0}
    node = start
    while True:
        node = next(d for d in dependencies[node] if stuck[d])
        if node in seen:
            cycle = [*path[seen[node] :], node]
            return list(reversed(cycle))
        seen[node] = len(path)
        path.append(node)


def _is_async(function: Callable[..., Any], known: dict[Callable[..., Any], bool]) -> bool:
    """Whether ``function`` is async (see ``_coroutine_function``), remembered in
    ``known`` (a callable object that cannot be hashed is simply asked every time)."""
    try:
        is_async = known.get(function)
    except TypeError:
        return _coroutine_function(function)
    if is_async is None:
        is_async = known[function] = _coroutine_function(function)
    return is_async


def _coroutine_function(function: Callable[..., Any]) -> bool:
    """A coroutine function, or a callable object whose ``__call__`` is one."""
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        getattr(function, "__call__", None)  # noqa: B004 - async __call__ of callable objects
    )


def _not_a_collection(after: object) -> str:
    return f"after= must be a collection of processor ids, such as after=[{after!r}], not {after!r}"


def _label(pid: object) -> str:
    """How messages show a processor id: its ``repr`` (quoted, for a string)."""
    return repr(pid)


def _plain(pid: object) -> str:
    """How a cycle shows a processor id: a string as it is, anything else by ``repr``."""
    return pid if isinstance(pid, str) else repr(pid)


def _is_number(value: object) -> bool:
    """A real number, not a bool; checked without the ABC for the usual two types."""
    kind = type(value)
    if kind is float or kind is int:
        return True
    return isinstance(value, numbers.Real) and kind is not bool


def _unordered_transforms(
    processors: Mapping[str, Processor[Any]], order: tuple[str, ...], chain: tuple[str, ...]
) -> list[str]:
    """Transforms must form a chain (each an ancestor of the next in topological order),
    otherwise two of them could replace the payload at the same time.

    Linear in processors plus dependencies: each processor gets the chain position of
    the latest transform among its ancestors (the maximum over its dependencies, each
    counting itself if it is a transform). A transform's ancestors can only hold earlier
    transforms, so the latest of them is its predecessor in the chain exactly when that
    predecessor is an ancestor."""
    if len(chain) < 2:
        return []
    position = {pid: i for i, pid in enumerate(chain)}
    #: Per processor: the chain position of the latest transform it is or descends from.
    latest: dict[str, int] = {}
    problems = []
    for pid in order:
        before = max((latest[dep] for dep in processors[pid].dependencies), default=-1)
        here = position.get(pid)
        if here is None:
            latest[pid] = before
            continue
        if here > 0 and before != here - 1:
            earlier = chain[here - 1]
            problems.append(
                f"transforms {_label(earlier)} and {_label(pid)} could run at the same time "
                f"and both replace the payload; order them (add after=[{_label(earlier)}] to "
                f"{_label(pid)})"
            )
        latest[pid] = here
    return problems
