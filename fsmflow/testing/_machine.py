"""``MachineHarness``: drive a bare :class:`StateMachine` by hand in tests."""

from __future__ import annotations

from typing import Generic, TypeVar, cast

import anyio

from ..fsm import FsmAction, StateMachine
from ..supervisor import TransitionRecord

S = TypeVar("S")
E = TypeVar("E")
C = TypeVar("C")
A = TypeVar("A")


class MachineHarness(Generic[S, E, C, A]):
    """Feed events to a machine, collect the actions it returns and (by default) run them.

    No supervisor is involved, so nothing turns errors into events: a handler error
    raises the machine's :class:`FsmError`, a failing action raises :class:`ActionError`
    (the state has then already changed, as the machine decided). Use it to test a spec's
    decisions in isolation; use :func:`supervisor_harness` to test failure handling.
    """

    def __init__(self, machine: StateMachine[S, E, C, A], ctx: C, *, run_actions: bool = True):
        self.machine = machine
        self.ctx = ctx
        #: Run each event's actions before returning (``False``: only collect them).
        self.run_actions = run_actions
        #: One record per handled event or fired timeout; ``supervisor`` is the spec's name.
        self.records: list[TransitionRecord] = []
        #: Every action returned, in order.
        self.actions: list[A] = []

    @property
    def state(self) -> S:
        return self.machine.state

    async def send(self, event: E) -> list[A]:
        """Handle ``event``; return its actions after running them (see ``run_actions``)."""
        from_state = self.machine.state
        actions = await self.machine.handle(event, self.ctx)
        return await self._took(from_state, event, actions)

    async def feed(self, *events: E) -> list[A]:
        """:meth:`send` each event in turn; return all their actions."""
        actions: list[A] = []
        for event in events:
            actions.extend(await self.send(event))
        return actions

    async def fire_timeout(self) -> list[A]:
        """Fire the current state's timeout if it is due on the loop's clock (advance a
        ``MockClock`` first); return its actions, ``[]`` when nothing was due."""
        deadline = self.machine.timeout_deadline()
        if deadline is None or anyio.current_time() < deadline:
            return []
        from_state = self.machine.state
        actions = await self.machine.check_timeout(self.ctx)
        return await self._took(from_state, "timeout", actions)

    async def _took(self, from_state: S, event: object, actions: list[A]) -> list[A]:
        self.records.append(
            TransitionRecord(
                supervisor=self.machine.spec.name,
                from_state=from_state,
                event=event,
                to_state=self.machine.state,
                actions=tuple(actions),
                at=anyio.current_time(),
                failure=False,
            )
        )
        self.actions.extend(actions)
        if self.run_actions:
            await self.machine.execute_actions(cast("list[FsmAction[C]]", actions), self.ctx)
        return actions
