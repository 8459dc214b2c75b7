"""The errors of supervision trees: how a tree's run fails, and how a request made
through its handle is refused."""

from __future__ import annotations

from collections.abc import Sequence

from ._records import SupervisorError
from ._tree_values import ChildState, RestartIntensity, RestartRecord


class RestartIntensityExceeded(SupervisorError):
    """A tree gave up: one more restart would have exceeded its restart intensity.

    Raised by the tree's run after it stopped every child. ``history`` holds the
    restart records, oldest first; the last one is the exit that was one too many.
    """

    def __init__(
        self, tree: str, intensity: RestartIntensity, history: Sequence[RestartRecord]
    ) -> None:
        self.intensity = intensity
        self.history = tuple(history)
        last = self.history[-1]
        lines = "".join(f"\n  {_describe_record(r)}" for r in self.history)
        super().__init__(
            tree,
            "Escalating",
            "ChildrenStopped",
            f"restart intensity exceeded: child {last.child_id!r} ended "
            f"({last.exit.value}) after {intensity.max_restarts} restart(s) within "
            f"{intensity.period:g}s; restart history:{lines}",
        )


class FailedToStartChild(SupervisorError):
    """A tree's start failed because child ``child_id`` could not start (OTP's
    ``failed_to_start_child``).

    Raised by the tree's run, and by ``start()``, after the children that had started
    were stopped in reverse order. ``error`` (also ``__cause__``) is why the child could
    not start: its factory or ``initial_state()`` / ``initial_context()`` raised, its
    machine could not be built, or, for a child that is itself a tree, its own start
    failed.
    """

    def __init__(self, tree: str, child_id: str, error: BaseException | None) -> None:
        self.child_id = child_id
        self.error = error
        cause = "unknown error" if error is None else f"{type(error).__name__}: {error}"
        super().__init__(
            tree, "Starting", "StartFailed", f"failed to start child {child_id!r}: {cause}"
        )
        self.__cause__ = error


class TreeRequestError(Exception):
    """A request made through a tree's handle was refused; nothing was changed.

    ``tree`` names the tree and ``child_id`` the child the request was about.
    """

    def __init__(self, tree: str, child_id: str | None, message: str) -> None:
        self.tree = tree
        self.child_id = child_id
        super().__init__(f"tree {tree!r}: {message}")


class TreeNotRunning(TreeRequestError):
    """The tree's run is not in progress (not started yet, or over), so no request can
    be served. A request queued when the run ended is answered with this too."""

    def __init__(self, tree: str, child_id: str | None = None) -> None:
        super().__init__(tree, child_id, "the tree is not running")


class ChildNotFound(TreeRequestError, LookupError):
    """The tree holds no child with that id."""

    def __init__(self, tree: str, child_id: str) -> None:
        super().__init__(tree, child_id, f"no child {child_id!r}")


class ChildAlreadyPresent(TreeRequestError):
    """``start_child`` with an id the tree already holds (running or not); ``state``
    says where that child is."""

    def __init__(self, tree: str, child_id: str, state: ChildState) -> None:
        self.state = state
        super().__init__(tree, child_id, f"child {child_id!r} is already present ({state.value})")


class ChildNotStopped(TreeRequestError):
    """``restart_child`` or ``delete_child`` on a child that is not stopped; ``state``
    says where it is (``terminate_child`` it first)."""

    def __init__(self, tree: str, child_id: str, state: ChildState) -> None:
        self.state = state
        super().__init__(tree, child_id, f"child {child_id!r} is {state.value}; terminate it first")


class ChildStartError(TreeRequestError):
    """A child that ``start_child`` or ``restart_child`` asked for could not start.

    ``error`` (also ``__cause__``) is why. ``start_child`` then keeps no spec for it;
    after ``restart_child`` the child stays stopped. Neither counts toward the restart
    intensity (as in OTP).
    """

    def __init__(self, tree: str, child_id: str, error: BaseException | None) -> None:
        self.error = error
        cause = "unknown error" if error is None else f"{type(error).__name__}: {error}"
        super().__init__(tree, child_id, f"child {child_id!r} could not start: {cause}")
        self.__cause__ = error


def _describe_record(record: RestartRecord) -> str:
    """One history line, with the child's error (often several lines) indented below."""
    line = f"at {record.at:.3f}: {record.child_id!r} {record.exit.value}"
    if record.restarted:
        line += f" -> restarted {', '.join(record.restarted)} after {record.delay:.3f}s"
    else:
        line += " -> not restarted"
    if record.error is not None:
        line += "".join(f"\n      {part}" for part in record.error.splitlines())
    return line
