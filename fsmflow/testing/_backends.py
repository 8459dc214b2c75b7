"""``each_backend``: run an async pytest test on every anyio backend."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

#: The anyio backends fsmflow supports, in the order tests run on them.
BACKENDS = ("trio", "asyncio")


def each_backend(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Turn an ``async def`` pytest test into one test per backend in :data:`BACKENDS`.

    The result is a plain function parametrised over ``backend`` that runs the test with
    ``anyio.run``; the test's own fixtures keep working (they are set up outside the event
    loop, so use only backend-neutral ones, not ``autojump_clock``). It coexists with
    pytest-trio's ``trio_mode``, which would otherwise run every async test on trio only.
    pytest is imported when the decorator is used; fsmflow itself does not need it.
    """
    import pytest

    signature = inspect.signature(test)
    if "backend" in signature.parameters:
        raise TypeError(f"{test.__qualname__}: each_backend supplies 'backend' itself")

    @functools.wraps(test)
    def run_on(backend: str, **fixtures: Any) -> None:
        anyio.run(functools.partial(test, **fixtures), backend=backend)

    parameters = [inspect.Parameter("backend", inspect.Parameter.KEYWORD_ONLY)]
    parameters += [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in signature.parameters.values()
    ]
    run_on.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    parametrised: Callable[..., None] = pytest.mark.parametrize("backend", BACKENDS)(run_on)
    return parametrised
