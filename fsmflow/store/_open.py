"""``open_store``: a store from a string, for the command line and configuration files."""

from __future__ import annotations

import os
import re
from typing import Any

from ._protocols import Store

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_CONNINFO = re.compile(r"\s*(host|hostaddr|dbname|user|port|service)\s*=")


def is_postgres_dsn(target: str | os.PathLike[str]) -> bool:
    """Whether ``target`` names a PostgreSQL database (a ``postgresql://`` URL or a libpq
    ``key=value`` string such as ``"host=db dbname=app"``) rather than a SQLite file."""
    return isinstance(target, str) and (
        target.startswith(_POSTGRES_SCHEMES) or _CONNINFO.match(target) is not None
    )


async def open_store(target: str | os.PathLike[str], **options: Any) -> Store:
    """Open the store ``target`` names: a ``postgresql://`` (or ``postgres://``) URL or a
    libpq ``key=value`` string opens a :class:`~fsmflow.store.PostgresStore`, anything
    else is the path of a
    :class:`~fsmflow.store.SqliteStore` file. ``options`` go to that class's ``open``
    (``schema=``, ``durability=``...). Close it with ``aclose()`` or ``async with``.
    """
    if is_postgres_dsn(target):
        from ._postgres import PostgresStore

        return await PostgresStore.open(str(target), **options)
    from ._sqlite import SqliteStore

    return await SqliteStore.open(target, **options)
