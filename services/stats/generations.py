"""Generations of the projections: schema `stats_g<N>`, the current one named in
`stats.generation`. The API and the live projector use the current one; a rebuild fills
the next from offset 0 and switches the pointer in one transaction."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg

from alfi_contracts.topics import CASEWORK_EVENTS, INTAKE_EVENTS, VEILLE_EVENTS

from services.common.migrations import migrate, sql_files

BASE = "stats"
PROJECTION_SQL = Path(__file__).parent / "projection_sql"
PROJECTOR = "projector"  # the name positions are stored under, in every generation
EVENT_TOPICS = (INTAKE_EVENTS, CASEWORK_EVENTS, VEILLE_EVENTS)  # what the projections are built from


def schema_of(generation: int) -> str:
    return f"stats_g{int(generation)}"


def search_path(generation: int) -> str:
    # The generation first; then the base schema, whose outbox takes dead letters.
    return f'"{schema_of(generation)}", {BASE}, public'


async def current(conn: asyncpg.Connection) -> int:
    return await conn.fetchval(f"SELECT current FROM {BASE}.generation")


@contextlib.asynccontextmanager
async def snapshot(pool: asyncpg.Pool) -> AsyncIterator[tuple[asyncpg.Connection, int]]:
    """A read-only repeatable-read transaction on the current generation: one consistent
    snapshot (figures and the positions they were computed at) even while a rebuild
    switches generations."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        generation = await current(conn)
        await conn.execute(f"SET LOCAL search_path TO {search_path(generation)}")
        yield conn, generation


def migration_files() -> list[Path]:
    """The migrations of one generation's schema (and of a scratch schema like it)."""
    positions = sql_files(Path(__file__).parents[1] / "common" / "sql", "platform_002_consumer_positions.sql")
    return positions + sql_files(PROJECTION_SQL)


async def prepare(conn: asyncpg.Connection, generation: int, fresh: bool = False) -> None:
    """Create (or, `fresh`, recreate empty) a generation's schema and tables."""
    if fresh:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema_of(generation)}" CASCADE')
    await migrate(conn, schema_of(generation), migration_files())


async def defer_secondary_indexes(conn: asyncpg.Connection, generation: int) -> list[str]:
    """Drop the generation's indexes that back no constraint and return their
    definitions, to create them once it is filled: a rebuild then maintains only the
    primary keys its upserts need (interviews' date index alone was ~20% of
    PostgreSQL's work per event; built at the end it takes a fraction of a second)."""
    rows = await conn.fetch(
        "SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS definition"
        " FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid"
        " WHERE t.relnamespace = $1::regnamespace"
        "   AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)"
        " ORDER BY 1",
        schema_of(generation),
    )
    for row in rows:
        await conn.execute(f"DROP INDEX {row['name']}")
    return [row["definition"] for row in rows]


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


async def drop_all_but(conn: asyncpg.Connection, generation: int) -> list[str]:
    """Drop every generation schema except `generation`'s; returns the dropped ones."""
    names = [r["nspname"] for r in await conn.fetch(
        "SELECT nspname FROM pg_namespace WHERE nspname ~ '^stats_g[0-9]+$' AND nspname <> $1 ORDER BY 1",
        schema_of(generation))]
    for name in names:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    return names


async def switch(conn: asyncpg.Connection, generation: int, previous: int | None = None,
                 grace_seconds: float = 0.0) -> None:
    """Point the reports at `generation` (in the caller's transaction). Erasures are
    reconciled first, so the figures neither lose nor count twice a household erased
    while the new generation was filled:
    - erased in the new generation, its grace period over, but not yet anonymised (the
      live projector had not applied the erasure): it is anonymised from `previous`,
      current until now (the new generation may have read its events once the key was
      gone);
    - every anonymised household (whether the new generation read its erasure or not):
      its rows in the new generation go, and it is recorded there as erased, as reading
      the erasure would have done."""
    from .projector import anonymise  # the projector imports this module

    await conn.execute(f"SELECT current FROM {BASE}.generation FOR UPDATE")  # the live batch commits first
    new = schema_of(generation)
    if previous is not None:
        pending = [r["household_id"] for r in await conn.fetch(
            f'SELECT household_id FROM "{new}".erasures WHERE erased_at <= now() - make_interval(secs => $1)'
            f" EXCEPT SELECT household_id FROM {BASE}.anonymised_households", float(grace_seconds))]
        if pending:
            await conn.execute(f"SET LOCAL search_path TO {search_path(previous)}")
            await anonymise(conn, pending)
    await conn.execute(f"SET LOCAL search_path TO {search_path(generation)}")
    await reconcile_anonymised(conn)
    await conn.execute(f"UPDATE {BASE}.generation SET current = $1, switched_at = now()", generation)


async def reconcile_anonymised(conn: asyncpg.Connection) -> None:
    """In the schema first on the search_path (a new generation, a scratch replay): every
    anonymised household is recorded as erased and its rows go; its residue counts it."""
    from .projector import forget  # the projector imports this module

    await conn.execute(f"INSERT INTO erasures (household_id, erased_at) SELECT household_id, anonymised_at"
                       f" FROM {BASE}.anonymised_households ON CONFLICT (household_id) DO NOTHING")
    await forget(conn, [r["household_id"] for r in await conn.fetch(
        f"SELECT household_id FROM {BASE}.anonymised_households")])
    await conn.execute(FORGET_REVIEWS)


# A meeting's review of a situation erased by a concurrent transaction: the meeting (keyed
# by its own id) and the situation's household are in different partitions, so two
# consumers sharing the partitions (a rebuild's workers, a group's members) can apply them
# at once, each missing the other's uncommitted row. Run at a rebuild's switch and with
# every anonymisation round (projector.finalise).
FORGET_REVIEWS = "DELETE FROM reviews r USING erased_situations e WHERE r.situation_id = e.situation_id"
