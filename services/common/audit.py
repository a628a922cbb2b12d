"""The audit trail: who did what to which household (schema `audit`, platform-wide).

Written for every command and for every read of a household or of a report:
- an accepted command, by `CommandBus.run` in the command's own transaction: the row
  commits with the effect or not at all;
- a refused command over HTTP rolls back, so its row is written afterwards in a statement
  of its own; if that write fails the refusal is still answered (the log says
  `audit_write_failed`): an audit outage must not turn a 403 or a 409 into a 500. From
  Kafka, the refusal is written in the batch's transaction with its dead letter;
- a read, before its answer is sent: a read whose row cannot be written is not served.

Rows hold ids and closed labels only (no payload), and are kept `ALFI_AUDIT_RETENTION_DAYS`
(400 by default: a year of activity plus the time to look into a complaint about it):

    python -m services.common.audit [--household UUID | --label LABEL] [--since 2026-01-01] [--limit N]
    python -m services.common.audit purge [--days N]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import structlog
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from .migrations import migrate, sql_files

SCHEMA = "audit"
SQL = Path(__file__).parent / "sql"
ACCEPTED = "accepted"

log = structlog.get_logger("alfi.audit")


class AuditSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ALFI_AUDIT_", extra="ignore", frozen=True)

    retention_days: int = Field(400, ge=1)


@dataclass(frozen=True)
class Entry:
    """One audited action. `outcome`: `accepted` or `rejected:<kind>`."""

    actor: str
    token_id: str | None
    service: str
    action: str
    household_id: UUID | None
    object_id: str | None
    outcome: str
    correlation_id: str | None = None


COLUMNS = tuple(f.name for f in fields(Entry))


_TYPES = {"household_id": "uuid"}  # every other column is text


@functools.cache
def insert_many_sql(first: int = 1) -> str:
    """The INSERT of rows given as one array per column (`columns_of`), its parameters
    numbered from `first`: part of a larger statement (outbox.enqueue writes commands'
    rows with their events, in one round trip)."""
    arrays = ", ".join(f"${first + i}::{_TYPES.get(name, 'text')}[]" for i, name in enumerate(COLUMNS))
    return f"INSERT INTO audit.events ({', '.join(COLUMNS)}) SELECT * FROM unnest({arrays})"


def columns_of(entries: Sequence[Entry]) -> list[list[Any]]:
    return [[getattr(entry, name) for entry in entries] for name in COLUMNS]




def rejected(kind: str) -> str:
    return f"rejected:{kind}"


async def migrate_audit(conn: asyncpg.Connection) -> None:
    await migrate(conn, SCHEMA, sql_files(SQL, "audit_*.sql"))


async def record(conn: asyncpg.Connection | asyncpg.Pool, entry: Entry) -> None:
    await conn.execute(insert_many_sql(), *columns_of([entry]))


async def record_quietly(pool: asyncpg.Pool, entry: Entry) -> None:
    """Record a refusal after its transaction rolled back, never failing the caller."""
    try:
        await record(pool, entry)
    except Exception as error:  # noqa: BLE001 - the refusal is answered either way; the log tells
        log.warning("audit_write_failed", service=entry.service, action=entry.action,
                    outcome=entry.outcome, error=type(error).__name__)


async def entries(conn: asyncpg.Connection, household: UUID | None = None, label: str | None = None,
                  since: date | None = None, limit: int = 100) -> list[asyncpg.Record]:
    """The newest `limit` rows, optionally of one household, one actor, since a day."""
    since_at = datetime.combine(since, time(), UTC) if since else None
    return await conn.fetch(
        f"SELECT at, {', '.join(COLUMNS)} FROM audit.events"
        " WHERE ($1::uuid IS NULL OR household_id = $1) AND ($2::text IS NULL OR actor = $2)"
        " AND ($3::timestamptz IS NULL OR at >= $3) ORDER BY at DESC, id DESC LIMIT $4",
        household, label, since_at, limit)


async def purge(conn: asyncpg.Connection, retention_days: int) -> int:
    """Delete the rows older than the retention period; return how many."""
    deleted = await conn.fetchval(
        "WITH gone AS (DELETE FROM audit.events WHERE at < now() - make_interval(days => $1) RETURNING 1)"
        " SELECT count(*) FROM gone", retention_days)
    return int(deleted)


def format_entries(rows: list[Any]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, datetime):
            return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return "-" if value is None else str(value)

    header = ("at", *COLUMNS)
    lines = [header] + [tuple(cell(row[name]) for name in header) for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines)


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog="python -m services.common.audit",
                                  description="Read or purge the platform's audit trail")
    cli.add_argument("command", nargs="?", choices=("list", "purge"), default="list")
    who = cli.add_mutually_exclusive_group()
    who.add_argument("--household", type=UUID, help="one household's rows")
    who.add_argument("--label", help="one actor's rows: a token label, kafka:<topic> or a job's name")
    cli.add_argument("--since", type=date.fromisoformat, help="from this day (YYYY-MM-DD, UTC)")
    cli.add_argument("--limit", type=int, default=100, help="newest rows shown (default 100)")
    cli.add_argument("--days", type=int, help="purge: keep this many days (default ALFI_AUDIT_RETENTION_DAYS, 400)")
    return cli


async def _main(args: argparse.Namespace) -> int:
    conn = await asyncpg.connect(os.environ["DATABASE_URL"])
    try:
        await migrate_audit(conn)
        if args.command == "purge":
            days = args.days or AuditSettings().retention_days
            print(f"purged {await purge(conn, days)} audit rows older than {days} days")
        else:
            print(format_entries(await entries(conn, args.household, args.label, args.since, args.limit)))
    finally:
        await conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(_main(parser().parse_args())))
