"""The ``SEQUENTIAL`` queue, with only its head in memory.

A durable queue may hold far more boundaries than memory should (a reactor that was down
while its producers kept writing, say). :class:`PendingQueue` keeps a window of entries
at the head of the queue in memory, and counts the ones behind it that live only in the
store; the reactor reads the next page when the window runs dry. Restarting therefore
reads one page, whatever the depth of the queue, and memory stays bounded by the page
size plus the boundaries accepted while the window reached the end of the queue (at
most ``max_pending``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from ._persistence import Queued

#: Entries read from the store at a time.
PAGE_SIZE = 256


class PendingQueue:
    """Accepted ``SEQUENTIAL`` boundaries not yet settled, oldest first.

    The head is in memory (:attr:`window`); :attr:`unloaded` entries behind it are only
    in the store, and are read back by seq order, after :attr:`last_seq`.
    """

    __slots__ = ("window", "unloaded", "last_seq")

    def __init__(self) -> None:
        self.window: deque[Queued] = deque()
        #: Entries in the store behind the window.
        self.unloaded = 0
        #: The seq of the newest entry the window has held; the next page starts after it.
        self.last_seq = 0

    def __len__(self) -> int:
        return len(self.window) + self.unloaded

    def __bool__(self) -> bool:
        return bool(self.window) or self.unloaded > 0

    @property
    def needs_page(self) -> bool:
        """Whether the head must be read from the store first."""
        return not self.window and self.unloaded > 0

    def head(self) -> Queued:
        """The oldest entry (call only when the window is not empty)."""
        return self.window[0]

    def pop(self) -> Queued:
        """Remove the oldest entry: it was settled."""
        return self.window.popleft()

    def restore(self, head: Sequence[Queued], length: int) -> None:
        """Start from the store's first page ``head`` of a queue of ``length`` entries."""
        self.window.extend(head)
        self.unloaded = max(length - len(head), 0)
        if head:
            self.last_seq = head[-1].seq

    def extend(self, entries: Sequence[Queued]) -> None:
        """Newly queued ``entries``, in seq order: they join the window if it reaches the
        end of the queue, else they wait in the store with the rest."""
        if self.unloaded:
            self.unloaded += len(entries)
        else:
            self.window.extend(entries)
            if entries:
                self.last_seq = entries[-1].seq

    def load(self, page: Sequence[Queued], limit: int) -> None:
        """``page``: the entries after :attr:`last_seq`, at most ``limit`` of them. A short
        page means the store holds no more, whatever was counted."""
        self.window.extend(page)
        self.unloaded = 0 if len(page) < limit else max(self.unloaded - len(page), 0)
        if page:
            self.last_seq = page[-1].seq
