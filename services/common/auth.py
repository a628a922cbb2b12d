"""Bearer tokens with scopes, stored hashed (SHA-256 of a 256-bit random token).

A token is high-entropy random, so a plain SHA-256 is enough to make the stored table
useless to a reader; no slow password hash is needed. `make token SCOPES="..."` runs
`python -m services.common.auth issue` against the local stack.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import secrets
from datetime import datetime, timedelta, UTC
from pathlib import Path

import asyncpg

from .migrations import migrate, sql_files

SCHEMA = "auth"
SQL = Path(__file__).parent / "sql"
ALL_SCOPES = (
    "intake:read", "intake:write", "casework:write", "veille:write", "reports:read",
)


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def migrate_auth(conn: asyncpg.Connection) -> None:
    await migrate(conn, SCHEMA, sql_files(SQL, "auth_*.sql"))


async def issue_token(
    conn: asyncpg.Connection, scopes: list[str], label: str, ttl: timedelta | None = None
) -> str:
    unknown = sorted(set(scopes) - set(ALL_SCOPES))
    if unknown:
        raise ValueError(f"unknown scopes {unknown}; known: {', '.join(ALL_SCOPES)}")
    token = "alfi_" + secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO auth.tokens (token_hash, scopes, label, expires_at) VALUES ($1, $2, $3, $4)",
        digest(token), sorted(set(scopes)), label, datetime.now(UTC) + ttl if ttl else None,
    )
    return token


async def scopes_of(pool: asyncpg.Pool, token: str) -> frozenset[str] | None:
    row = await pool.fetchrow(
        "SELECT scopes FROM auth.tokens WHERE token_hash = $1 AND revoked_at IS NULL"
        " AND (expires_at IS NULL OR expires_at > now())",
        digest(token),
    )
    return frozenset(row["scopes"]) if row else None


async def _main(args: argparse.Namespace) -> None:
    conn = await asyncpg.connect(os.environ["DATABASE_URL"])
    try:
        await migrate_auth(conn)
        scopes = ALL_SCOPES if args.scopes.strip() == "all" else args.scopes.replace(",", " ").split()
        print(await issue_token(conn, list(scopes), args.label))
    finally:
        await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Issue an API token for the platform")
    sub = parser.add_subparsers(dest="command", required=True)
    issue = sub.add_parser("issue")
    issue.add_argument("--scopes", required=True, help='space- or comma-separated, or "all"')
    issue.add_argument("--label", default="cli")
    asyncio.run(_main(parser.parse_args()))
