"""The migration runner on the real PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path
from uuid import uuid4

import asyncpg
import pytest

from services.common.migrations import MigrationError, migrate


def write(directory: Path, name: str, sql: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(sql)


async def test_applies_in_order_once(db, tmp_path):
    schema = f"m_{uuid4().hex[:8]}"
    write(tmp_path, "001_households.sql", "CREATE TABLE households (id uuid PRIMARY KEY);")
    write(tmp_path, "002_programme.sql", "ALTER TABLE households ADD COLUMN programme text;")
    assert await migrate(db, schema, tmp_path) == ["001_households.sql", "002_programme.sql"]
    assert await migrate(db, schema, tmp_path) == []
    columns = await db.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_schema=$1 AND table_name='households'",
        schema,
    )
    assert {r["column_name"] for r in columns} == {"id", "programme"}


async def test_a_failing_migration_leaves_nothing_applied(db, tmp_path):
    schema = f"m_{uuid4().hex[:8]}"
    write(tmp_path, "001_ok.sql", "CREATE TABLE a (id int);")
    write(tmp_path, "002_broken.sql", "CREATE TABLE b (id int REFERENCES nowhere(id));")
    with pytest.raises(MigrationError, match="002_broken.sql"):
        await migrate(db, schema, tmp_path)
    exists = await db.fetchval("SELECT count(*) FROM information_schema.schemata WHERE schema_name=$1", schema)
    assert exists == 0


async def test_an_edited_migration_is_refused(db, tmp_path):
    schema = f"m_{uuid4().hex[:8]}"
    write(tmp_path, "001_a.sql", "CREATE TABLE a (id int);")
    await migrate(db, schema, tmp_path)
    write(tmp_path, "001_a.sql", "CREATE TABLE a (id bigint);")
    with pytest.raises(MigrationError, match="edited after it was applied"):
        await migrate(db, schema, tmp_path)


async def test_concurrent_starts_apply_once(database_url, tmp_path):
    schema = f"m_{uuid4().hex[:8]}"
    write(tmp_path, "001_a.sql", "CREATE TABLE a (id int); SELECT pg_sleep(0.2);")
    conns = [await asyncpg.connect(database_url) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate(c, schema, tmp_path) for c in conns))
    finally:
        for c in conns:
            await c.close()
    assert sorted(len(r) for r in results) == [0, 0, 1]


async def test_concurrent_starts_of_processes_whose_search_path_names_the_schema(database_url, tmp_path):
    """As each service starts: a connection whose search_path names its schema before it
    exists migrates another schema (the keyring) first, then its own. The catalog cache
    then says "no such schema", and an advisory lock does not refresh it: two workers
    starting together failed on pg_namespace's unique index (10 times out of 10 before
    migrate() read the catalog itself)."""
    own, other = tmp_path / "own", tmp_path / "other"
    write(own, "001_a.sql", "CREATE TABLE a (id int); SELECT pg_sleep(0.2);")
    write(other, "001_k.sql", "CREATE TABLE IF NOT EXISTS k (id int);")

    async def start(schema: str, first: str) -> list[str]:
        conn = await asyncpg.connect(database_url, server_settings={"search_path": f"{schema},public"})
        try:
            await migrate(conn, first, other)
            return await migrate(conn, schema, own)
        finally:
            await conn.close()

    for _ in range(5):
        schema, first = f"m_{uuid4().hex[:8]}", f"k_{uuid4().hex[:8]}"
        results = await asyncio.gather(start(schema, first), start(schema, first))
        assert sorted(len(r) for r in results) == [0, 1]
