"""Generations of the projections: schema `stats_g<N>`, the current one named in
`stats.generation`. The API and the live projector use the current one; a rebuild fills
the next from offset 0 and switches the pointer in one transaction."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from services.common.migrations import migrate, sql_files

BASE = "stats"
PROJECTION_SQL = Path(__file__).parent / "projection_sql"
PROJECTOR = "projector"  # the name positions are stored under, in every generation


def schema_of(generation: int) -> str:
    return f"stats_g{int(generation)}"


def search_path(generation: int) -> str:
    # The generation first; then the base schema, whose outbox takes dead letters.
    return f'"{schema_of(generation)}", {BASE}, public'


async def current(conn: asyncpg.Connection) -> int:
    return await conn.fetchval(f"SELECT current FROM {BASE}.generation")


async def prepare(conn: asyncpg.Connection, generation: int, fresh: bool = False) -> None:
    """Create (or, `fresh`, recreate empty) a generation's schema and tables."""
    if fresh:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema_of(generation)}" CASCADE')
    positions = sql_files(Path(__file__).parents[1] / "common" / "sql", "platform_002_consumer_positions.sql")
    await migrate(conn, schema_of(generation), positions + sql_files(PROJECTION_SQL))


async def ensure_current(conn: asyncpg.Connection) -> int:
    """The current generation, creating generation 1 on first start; migrated."""
    async with conn.transaction():
        await conn.execute(f"LOCK TABLE {BASE}.generation IN EXCLUSIVE MODE")
        generation = await conn.fetchval(f"SELECT current FROM {BASE}.generation")
        if generation is None:
            generation = 1
            await conn.execute(f"INSERT INTO {BASE}.generation (current) VALUES (1)")
    await prepare(conn, generation)
    return generation


async def switch(conn: asyncpg.Connection, generation: int) -> None:
    await conn.execute(f"UPDATE {BASE}.generation SET current = $1, switched_at = now()", generation)
