"""The asyncpg connection pool each service opens on its own schema."""

from __future__ import annotations

import asyncpg

from .settings import ServiceSettings


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
    )
