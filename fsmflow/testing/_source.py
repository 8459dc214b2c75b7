"""``EventScript``: a fake external-event source for tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, TypeVar

import anyio
import attrs

from ..supervisor import EventSender, ExternalChannelClosed

E_co = TypeVar("E_co", covariant=True)
E = TypeVar("E")


@attrs.define
class EventScript(Generic[E_co]):
    """A scripted producer of external events: each step is ``(delay, event)``, the event
    being sent ``delay`` seconds after the previous one on the running loop's clock (so
    trio's ``MockClock`` drives it without real waiting).

    ``sent`` lists the events the supervisor's channel accepted, in order; when the
    channel closes before the script ends (the run finished), playing stops quietly and
    ``interrupted`` is set.

    A script of one event class fits a supervisor whose events include that class. For
    a mix of event classes, name the event type, as with ``ChannelBuilder``:
    ``EventScript[Event].of(Start(), Stop())`` (type checkers would otherwise infer
    ``EventScript[object]``).
    """

    steps: Sequence[tuple[float, E_co]]
    _sent: list[E_co] = attrs.field(factory=list, init=False)
    interrupted: bool = attrs.field(default=False, init=False)

    @classmethod
    def of(cls: type[EventScript[E]], *events: E, delay: float = 0.0) -> EventScript[E]:
        """A script sending ``events`` in order, ``delay`` seconds apart (the first after
        ``delay`` too)."""
        return cls([(delay, event) for event in events])

    @property
    def sent(self) -> Sequence[E_co]:
        return self._sent

    async def play(self, sender: EventSender[E_co]) -> None:
        """Send every step through ``sender`` (waiting while the channel is full), then
        close ``sender``; the script owns it."""
        try:
            for delay, event in self.steps:
                if delay > 0:
                    await anyio.sleep(delay)
                await sender.send(event)
                self._sent.append(event)
        except ExternalChannelClosed:
            self.interrupted = True
        finally:
            sender.close()
