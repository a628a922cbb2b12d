"""SQL migrations: `.sql` files applied once, in the order given, into one schema.

Written by hand (about fifty lines) because the migration tools on PyPI bring a second
database driver (SQLAlchemy/psycopg) for what is here: an advisory lock so concurrent
starts do not race, one transaction for the whole run, and a checksum per file so an
already-applied migration that was edited is refused instead of silently ignored.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import asyncpg


class MigrationError(RuntimeError):
    pass


def _checksum(sql: str) -> str:
    return hashlib.sha256(sql.encode()).hexdigest()


def sql_files(directory: Path, pattern: str = "*.sql") -> list[Path]:
    return sorted(directory.glob(pattern))


async def migrate(conn: asyncpg.Connection, schema: str, files: Path | list[Path]) -> list[str]:
    """Apply the files (or a directory's *.sql) not yet applied to `schema`; return their names."""
    files = sql_files(files) if isinstance(files, Path) else files
    applied_now: list[str] = []
    ident = '"' + schema.replace('"', '""') + '"'
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"migrate:{schema}")
        # Not CREATE ... IF NOT EXISTS alone: it consults the catalog cache, which an
        # advisory lock does not refresh, so a process that waited for another's migration
        # may not see the schema it created and fail on pg_namespace's unique index (seen
        # with two uvicorn workers starting together). These reads see what was committed.
        if not await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema):
            await conn.execute(f"CREATE SCHEMA {ident}")
        if not await conn.fetchval("SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = 'schema_migrations'",
                                   schema):
            await conn.execute(
                f"CREATE TABLE {ident}.schema_migrations ("
                " name text PRIMARY KEY, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
        done = {
            row["name"]: row["checksum"]
            for row in await conn.fetch(f"SELECT name, checksum FROM {ident}.schema_migrations")
        }
        unknown = set(done) - {f.name for f in files}
        if unknown:
            raise MigrationError(f"{schema}: applied migrations no longer present: {sorted(unknown)}")
        await conn.execute(f"SET LOCAL search_path TO {ident}, public")
        for file in files:
            sql = file.read_text()
            if file.name in done:
                if done[file.name] != _checksum(sql):
                    raise MigrationError(f"{schema}: {file.name} was edited after it was applied")
                continue
            try:
                await conn.execute(sql)
            except asyncpg.PostgresError as error:
                raise MigrationError(f"{schema}: {file.name} failed: {error}") from error
            await conn.execute(
                f"INSERT INTO {ident}.schema_migrations (name, checksum) VALUES ($1, $2)",
                file.name, _checksum(sql),
            )
            applied_now.append(file.name)
    return applied_now
