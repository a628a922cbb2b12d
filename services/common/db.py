"""The asyncpg connection pool each service opens on its own schema."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg

from .settings import ServiceSettings


class Connection(asyncpg.Connection):
    """asyncpg's connection, with one difference on its way back to the pool: a use
    declared stateless (`stateless`) skips the reset query (advisory locks, LISTEN,
    cursors, session settings: one more round trip per use). An open transaction is
    rolled back whatever the use (asyncpg does it before asking for the query). A
    consumer's session search_path or the relay's advisory lock still get the full reset."""

    _no_session_state = False

    def declare_stateless(self) -> None:
        self._no_session_state = True

    def get_reset_query(self) -> str:
        if self._no_session_state:
            self._no_session_state = False
            return ""
        return super().get_reset_query()


@contextlib.asynccontextmanager
async def stateless(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection for work that leaves nothing on the session beyond its
    transactions (a token check, a command: SET LOCAL at most), so that it goes back to
    the pool without the reset query. Pools not made by create_pool reset as usual."""
    async with pool.acquire() as conn:
        if hasattr(conn, "declare_stateless"):  # through the pool's proxy
            conn.declare_stateless()
        yield conn


async def create_pool(settings: ServiceSettings, schema: str) -> asyncpg.Pool:
    """A pool whose connections resolve unqualified names in the service's schema first."""
    return await asyncpg.create_pool(
        settings.database_url,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        # Connecting gives up after 5 s (asyncpg's default is 60): a PostgreSQL that drops
        # packets answers 503 soon, like one that refuses connections.
        timeout=5,
        server_settings={"search_path": f"{schema},public", "application_name": settings.service},
        connection_class=Connection,
    )
