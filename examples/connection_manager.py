"""A connection manager: a self-supervised FSM that connects, backs off, reconnects and
shuts down on command.

It shows the supervisor loop at work:

* ``dispatch_state`` does the work of the current state (dial, connect, release) and a
  connect that raises becomes a ``Failure`` event through ``event_for_action_error``;
* an action that fails (sending on a connection that died) becomes a ``Failure`` too, and
  the FSM answers it by reconnecting, with the message kept in the outbox;
* a state timeout cuts off a connect that hangs, and ticks an exponential backoff;
* the external-event policy makes ``Connected`` and ``Backoff`` wait for commands
  (``BLOCK``) while ``Connecting`` only looks for one between attempts (``POLL``).

Run it from the repository root with ``python3 examples/connection_manager.py``; draw it
with ``fsmflow diagram examples.connection_manager:ConnectionManager``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Literal

import attrs
import trio

from fsmflow import (
    TERMINATE,
    EventLoopDirective,
    EventSender,
    ExternalEventMode,
    ExternalEventPolicy,
    FsmBuilder,
    FsmSpec,
    RunOutcome,
    SelfSupervised,
    Transition,
    Trigger,
    goto,
    start_supervisor,
    stay,
)

#: Seconds the fake transport takes to answer a connect.
CONNECT_LATENCY = 0.005
#: Seconds a connect may take before the state timeout abandons it.
CONNECT_TIMEOUT = 0.05
#: Seconds per backoff tick; the n-th failed attempt waits 2**(n-1) ticks (capped).
BACKOFF_TICK = 0.01
MAX_BACKOFF_TICKS = 8
#: Failed attempts in a row before the manager gives up and closes.
MAX_ATTEMPTS = 5


# -- the fake transport -------------------------------------------------------------------


class ConnectionRefused(Exception):
    pass


class ConnectionLost(Exception):
    pass


class FakeConnection:
    """One session of the fake transport; ``send`` fails once it has died."""

    def __init__(self, transport: FakeTransport, session: int) -> None:
        self.transport = transport
        self.session = session
        self.alive = True

    async def send(self, payload: str) -> None:
        await trio.lowlevel.checkpoint()
        if not self.alive:
            raise ConnectionLost(f"session {self.session} is gone")
        self.transport.delivered.append((self.session, payload))

    def close(self) -> None:
        self.alive = False


class FakeTransport:
    """A deterministic transport: the first connects fail as ``failures`` says.

    ``"refuse"`` fails after :data:`CONNECT_LATENCY`; ``"hang"`` never answers. Once the
    failures are used up, every connect succeeds with a new session number. When
    ``notify`` is set, :meth:`drop` reports the drop on it as a ``Dropped`` event.
    """

    def __init__(self, failures: Sequence[Literal["refuse", "hang"]] = ()) -> None:
        self._failures = list(failures)
        self.attempts = 0
        self.sessions = 0
        self.current: FakeConnection | None = None
        #: (session, payload) of every message that reached the other side, in order.
        self.delivered: list[tuple[int, str]] = []
        self.notify: EventSender[ManagerEvent] | None = None
        self.released = False

    async def connect(self) -> FakeConnection:
        self.attempts += 1
        await trio.sleep(CONNECT_LATENCY)
        if self._failures:
            if self._failures.pop(0) == "hang":
                await trio.sleep_forever()
            raise ConnectionRefused(f"attempt {self.attempts} refused")
        self.sessions += 1
        self.current = FakeConnection(self, self.sessions)
        return self.current

    async def drop(self, reason: str) -> None:
        """Kill the current session, as a network failure would."""
        connection = self.current
        if connection is None:
            return
        connection.alive = False
        if self.notify is not None:
            await self.notify.send(Dropped(connection.session, reason))

    async def release(self) -> None:
        """Give back what the transport holds, including its drop-notification sender."""
        if self.notify is not None:
            self.notify.close()
            self.notify = None
        self.released = True


# -- states --------------------------------------------------------------------------------


@attrs.frozen
class Disconnected:
    """Not started yet."""


@attrs.frozen
class Connecting:
    attempt: int


@attrs.frozen
class Connected:
    session: int


@attrs.frozen
class Backoff:
    """Waiting ``ticks_left`` more ticks of :data:`BACKOFF_TICK` after ``attempt`` failed."""

    attempt: int
    ticks_left: int


@attrs.frozen
class ShuttingDown:
    reason: str


@attrs.frozen
class Closed:
    """Final."""

    reason: str


ManagerState = Disconnected | Connecting | Connected | Backoff | ShuttingDown | Closed


# -- events --------------------------------------------------------------------------------


@attrs.frozen
class Dial:
    """Internal: leave ``Disconnected``."""


@attrs.frozen(eq=False)
class Established:
    """Internal: a connect succeeded."""

    connection: FakeConnection


@attrs.frozen
class Failure:
    """Internal: ``dispatch_state`` or an action raised (``event_for_action_error``)."""

    message: str


@attrs.frozen
class Released:
    """Internal: the transport was released."""


@attrs.frozen
class Send:
    """Command: deliver ``payload`` (queued while not connected)."""

    payload: str


@attrs.frozen
class Shutdown:
    """Command: close the connection and stop."""

    reason: str = "shutdown requested"


@attrs.frozen
class Dropped:
    """From the transport: ``session`` died."""

    session: int
    reason: str


ManagerEvent = Dial | Established | Failure | Released | Send | Shutdown | Dropped


# -- context and actions -------------------------------------------------------------------


@attrs.define
class Link:
    """The context: the transport, the live connection and the messages not yet sent."""

    transport: FakeTransport
    connection: FakeConnection | None = None
    #: Messages waiting for a connection, oldest first. Nothing leaves it unsent.
    outbox: list[str] = attrs.Factory(list)
    log: list[str] = attrs.Factory(list)


@attrs.frozen
class Adopt:
    connection: FakeConnection

    async def execute(self, ctx: Link) -> None:
        ctx.connection = self.connection


@attrs.frozen
class Enqueue:
    payload: str

    async def execute(self, ctx: Link) -> None:
        ctx.outbox.append(self.payload)


@attrs.frozen
class Flush:
    """Send the outbox in order; a message leaves it only once it was sent."""

    async def execute(self, ctx: Link) -> None:
        if ctx.connection is None:
            raise ConnectionLost("no connection to flush on")
        while ctx.outbox:
            await ctx.connection.send(ctx.outbox[0])
            del ctx.outbox[0]


@attrs.frozen
class CloseConnection:
    async def execute(self, ctx: Link) -> None:
        if ctx.connection is not None:
            ctx.connection.close()
            ctx.connection = None


@attrs.frozen
class Note:
    line: str

    async def execute(self, ctx: Link) -> None:
        ctx.log.append(self.line)


ManagerAction = Adopt | Enqueue | Flush | CloseConnection | Note
ManagerTransition = Transition[ManagerState, ManagerAction]


# -- handlers ------------------------------------------------------------------------------


def backoff_ticks(attempt: int) -> int:
    """Ticks to wait after the ``attempt``-th failure in a row: 1, 2, 4, ... capped."""
    return int(min(2 ** (attempt - 1), MAX_BACKOFF_TICKS))


def dial(state: Disconnected, event: Dial, ctx: Link) -> ManagerTransition:
    return goto(Connecting(1))


def established(state: Connecting, event: Established, ctx: Link) -> ManagerTransition:
    session = event.connection.session
    return goto(
        Connected(session),
        Adopt(event.connection),
        Note(f"connected: session {session} after {state.attempt} attempt(s)"),
        Flush(),
    )


def _retry_or_give_up(attempt: int, why: str) -> ManagerTransition:
    if attempt >= MAX_ATTEMPTS:
        return goto(ShuttingDown(f"gave up after {attempt} attempts: {why}"))
    ticks = backoff_ticks(attempt)
    return goto(
        Backoff(attempt, ticks),
        Note(f"attempt {attempt} failed ({why}); retry in {ticks * BACKOFF_TICK:g}s"),
    )


def connect_failed(state: Connecting, event: Failure, ctx: Link) -> ManagerTransition:
    return _retry_or_give_up(state.attempt, event.message)


def connect_timed_out(state: Connecting, ctx: Link) -> ManagerTransition:
    return _retry_or_give_up(state.attempt, "connect timed out")


def backoff_tick(state: Backoff, ctx: Link) -> ManagerTransition:
    if state.ticks_left > 1:
        return goto(Backoff(state.attempt, state.ticks_left - 1))
    return goto(Connecting(state.attempt + 1))


def transmit(state: Connected, event: Send, ctx: Link) -> ManagerTransition:
    return stay(Enqueue(event.payload), Flush())


def queue(state: ManagerState, event: Send, ctx: Link) -> ManagerTransition:
    return stay(Enqueue(event.payload))


def dropped(state: Connected, event: Dropped, ctx: Link) -> ManagerTransition:
    if event.session != state.session:
        return stay()  # a late report about an older session
    return goto(Connecting(1), Note(f"session {event.session} dropped: {event.reason}"))


def connection_lost(state: Connected, event: Failure, ctx: Link) -> ManagerTransition:
    return goto(Connecting(1), Note(f"session {state.session} lost: {event.message}"))


def shut_down(state: ManagerState, event: Shutdown, ctx: Link) -> ManagerTransition:
    return goto(ShuttingDown(event.reason))


def released(state: ShuttingDown, event: Released, ctx: Link) -> ManagerTransition:
    return goto(Closed(state.reason), Note(f"closed: {state.reason}"))


def failed(state: ManagerState, event: Failure, ctx: Link) -> ManagerTransition:
    return goto(Closed(f"failed: {event.message}"), CloseConnection())


def close_on_exit(state: Connected, ctx: Link) -> list[ManagerAction]:
    """Leaving ``Connected`` for whatever reason closes the connection."""
    return [CloseConnection()]


@functools.cache
def manager_spec() -> FsmSpec[ManagerState, ManagerEvent, Link, ManagerAction]:
    builder = FsmBuilder[ManagerState, ManagerEvent, Link, ManagerAction](
        states=ManagerState, events=ManagerEvent, initial=Disconnected, name="connection manager"
    )
    builder.when(Disconnected).on(Dial, dial, to=[Connecting]).on(Send, queue, to=())
    (
        builder.when(Connecting)
        .on(Established, established, to=[Connected])
        .on(Failure, connect_failed, to=[Backoff, ShuttingDown])
        .on(Send, queue, to=())
        .timeout(CONNECT_TIMEOUT, connect_timed_out, to=[Backoff, ShuttingDown])
    )
    (
        builder.when(Connected)
        .on(Send, transmit, to=())
        .on(Dropped, dropped, to=[Connecting])
        .on(Failure, connection_lost, to=[Connecting])
        .on_exit(close_on_exit)
    )
    (
        builder.when(Backoff)
        .on(Send, queue, to=())
        .timeout(BACKOFF_TICK, backoff_tick, to=[Backoff, Connecting])
    )
    builder.when(ShuttingDown).on(Released, released, to=[Closed])
    builder.when(Disconnected).on(Shutdown, shut_down, to=[ShuttingDown])
    builder.when(Connecting).on(Shutdown, shut_down, to=[ShuttingDown])
    builder.when(Connected).on(Shutdown, shut_down, to=[ShuttingDown])
    builder.when(Backoff).on(Shutdown, shut_down, to=[ShuttingDown])
    builder.when(Disconnected).on(Failure, failed, to=[Closed])
    builder.when(Backoff).on(Failure, failed, to=[Closed])
    builder.when(ShuttingDown).on(Failure, failed, to=[Closed])
    # Not registered, so ignored: a Dropped about an older session outside Connected.
    return builder.build()


# -- the supervisor ------------------------------------------------------------------------


class ConnectionManager(
    ExternalEventPolicy[ManagerState, ManagerEvent],
    SelfSupervised[ManagerState, ManagerEvent, Link, ManagerAction],
):
    """Keeps one connection up until told to shut down.

    Commands (``Send``, ``Shutdown``) and transport reports (``Dropped``) are external
    events; start it with :func:`fsmflow.start_supervisor` to get a handle that sends them.
    """

    @classmethod
    def fsm_spec(cls) -> FsmSpec[ManagerState, ManagerEvent, Link, ManagerAction]:
        return manager_spec()

    def event_for_action_error(self, msg: str) -> ManagerEvent:
        return Failure(msg)

    def external_event_mode(self, state: ManagerState) -> ExternalEventMode:
        match state:
            case Connected() | Backoff():
                # Nothing to do but wait for a command, a drop report or (in Backoff)
                # the state timeout, which bounds the wait.
                return ExternalEventMode.BLOCK
            case Disconnected() | Connecting():
                # Take a command if one is waiting, else (re)try the connect.
                return ExternalEventMode.POLL
            case _:
                # Finish shutting down; later commands stay queued and are dropped.
                return ExternalEventMode.IGNORE

    def on_external_event_channel_closed(self, state: ManagerState) -> ManagerEvent | None:
        match state:
            case ShuttingDown() | Closed():
                return None
            case _:
                return Shutdown("no one can send commands any more")

    async def dispatch_state(
        self, state: ManagerState, ctx: Link
    ) -> EventLoopDirective[ManagerEvent]:
        match state:
            case Disconnected():
                return Trigger(Dial())
            case Connecting():
                # Raising here is fine: the loop feeds Failure(message) to the FSM.
                return Trigger(Established(await ctx.transport.connect()))
            case Connected():
                # Only reached without an external channel (``run()`` called directly):
                # then no command can ever arrive, so stop.
                return Trigger(Shutdown("no external event channel"))
            case Backoff():
                # The loop runs dispatch under the state's timeout, which ends this wait.
                await trio.sleep_forever()
            case ShuttingDown():
                await ctx.transport.release()
                return Trigger(Released())
            case Closed():
                return TERMINATE


# -- running it ----------------------------------------------------------------------------


@attrs.frozen
class ConnectedTo:
    """A watcher predicate: connected with session ``session``."""

    session: int

    def __call__(self, state: ManagerState) -> bool:
        return isinstance(state, Connected) and state.session == self.session


@attrs.frozen
class Report:
    """What :func:`main` observed."""

    outcome: RunOutcome[ManagerState]
    link: Link
    transport: FakeTransport


async def main() -> Report:
    """Connect through two refusals and a hang, lose the connection, reconnect, shut down."""
    transport = FakeTransport(["refuse", "hang", "refuse"])
    link = Link(transport)
    manager = ConnectionManager("connection")
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        handle = await start_supervisor(nursery, manager, context=link)
        transport.notify = handle.sender()
        await handle.wait_for(ConnectedTo(1))
        elapsed = trio.current_time() - start
        print(f"connected after {transport.attempts} attempts and {elapsed:.3f}s")
        await handle.send(Send("hello"))
        await handle.send(Send("world"))
        await transport.drop("connection reset by peer")
        await handle.send(Send("while reconnecting"))
        await handle.wait_for(ConnectedTo(2))
        await handle.send(Send("after reconnecting"))
        await handle.send(Shutdown())
        outcome = await handle.outcome()
    print("\n".join(link.log))
    for session, payload in transport.delivered:
        print(f"session {session} delivered {payload!r}")
    print(f"=> {outcome.final_state!r} after {outcome.transitions} transitions")
    return Report(outcome, link, transport)


if __name__ == "__main__":
    trio.run(main)
