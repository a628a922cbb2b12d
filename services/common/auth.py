"""Bearer tokens with scopes, territories, a worker and an expiry, stored hashed.

A token is high-entropy random (256 bits), so a plain SHA-256 is enough to make the stored
table useless to a reader; no slow password hash is needed. A token is named by its short
id, the first 8 hex digits of that hash: not a secret, safe to print, log and audit.

    python -m services.common.auth issue --scopes "reports:read" --label funders \\
        [--territories bretagne,normandie] [--worker sw-017] [--ttl 90d|12h|never]
    python -m services.common.auth list
    python -m services.common.auth revoke <id or unique label>

Tokens issued from the command line expire after `--ttl`, by default `ALFI_TOKEN_TTL` or
90 days (`never` for none, to be avoided). `issue_token` itself issues for as long as it
is told (no ttl: no expiry), which the tests and local tools use. `make run` writes a
fresh development token at every start, with the command line's default expiry.
"""

from __future__ import annotations

import argparse
import getpass
import asyncio
import hashlib
import os
import re
import secrets
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from pydantic import TypeAdapter, ValidationError

from alfi_contracts.vocabulary import Slug, WorkerId

from .access import Principal
from . import audit
from .audit import migrate_audit
from .db import stateless
from .migrations import migrate, sql_files

SCHEMA = "auth"
SQL = Path(__file__).parent / "sql"
ALL_SCOPES = (
    "intake:read", "intake:write", "intake:erase", "casework:write", "veille:write", "reports:read",
    "reports:publish", "reports:freeze", "veille:read", "reports:quality",
)
DEFAULT_CLI_TTL = "90d"
TOKEN_ID_LENGTH = 8
_TTL = re.compile(r"^([0-9]+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_SLUG = TypeAdapter(Slug)
_WORKER = TypeAdapter(WorkerId)


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def token_id(token_hash: bytes) -> str:
    return token_hash.hex()[:TOKEN_ID_LENGTH]


async def migrate_auth(conn: asyncpg.Connection) -> None:
    """The platform-wide schemas every service and the token command line need: `auth`
    (tokens) and `audit` (who did what, audit.py), which every token check feeds."""
    await migrate(conn, SCHEMA, sql_files(SQL, "auth_*.sql"))
    await migrate_audit(conn)


def parse_ttl(text: str) -> timedelta | None:
    """`90d`, `12h`, `30m`, `3600s` as a duration; `never` as None (no expiry)."""
    text = text.strip().lower()
    if text == "never":
        return None
    match = _TTL.match(text)
    if not match or int(match[1]) == 0:
        raise ValueError(f"a ttl is a positive number with s, m, h or d (90d, 12h), or never; not {text!r}")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


def _checked(scopes: list[str], territories: list[str], worker_id: str | None) -> None:
    unknown = sorted(set(scopes) - set(ALL_SCOPES))
    if unknown:
        raise ValueError(f"unknown scopes {unknown}; known: {', '.join(ALL_SCOPES)}")
    try:
        for territory in territories:
            _SLUG.validate_python(territory)
        if worker_id is not None:
            _WORKER.validate_python(worker_id)
    except ValidationError:
        raise ValueError("territories are lowercase slugs (bretagne, pays-de-la-loire);"
                         " a worker id looks like sw-017") from None


async def issue_token(
    conn: asyncpg.Connection, scopes: list[str], label: str, ttl: timedelta | None = None,
    territories: list[str] | tuple[str, ...] = (), worker_id: str | None = None, actor: str = "code",
) -> str:
    """A new token; no `territories` means every territory, no `ttl` no expiry. Audited
    (`issue_token`, by `actor`, the token's id as object)."""
    territories = sorted(set(territories))
    _checked(scopes, territories, worker_id)
    token = "alfi_" + secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO auth.tokens (token_hash, scopes, label, expires_at, territories, worker_id)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        digest(token), sorted(set(scopes)), label, datetime.now(UTC) + ttl if ttl else None,
        territories, worker_id,
    )
    await audit.record(conn, audit.Entry(actor, None, "auth", "issue_token", None, token_id(digest(token)), "accepted"))
    return token


_VALID = ("SELECT t.token_hash, t.label, t.scopes, t.territories, t.worker_id FROM auth.tokens t {join}"
          " WHERE {where} AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())")


def _principal(row: asyncpg.Record | None) -> Principal | None:
    if row is None:
        return None
    return Principal(token_id(row["token_hash"]), row["label"], frozenset(row["scopes"]),
                     frozenset(row["territories"]), row["worker_id"])


async def principal_of(pool: asyncpg.Pool, token: str) -> Principal | None:
    """Who the token acts as, or None when it is unknown, expired or revoked."""
    async with stateless(pool) as conn:
        return _principal(await conn.fetchrow(_VALID.format(join="", where="t.token_hash = $1"), digest(token)))


LINK_SCOPES = frozenset({"reports:read"})
LINK_TTL_MAX = timedelta(hours=24)


async def mint_report_link(conn: asyncpg.Connection, token: str, year: int, ttl: timedelta) -> tuple[str, datetime]:
    """A secret for a browser to read `year`'s printable reports as `token` (reads only),
    until `ttl` from now (at most LINK_TTL_MAX) or until the token stops being valid."""
    if not timedelta(0) < ttl <= LINK_TTL_MAX:
        raise ValueError("a link lives more than 0 s and at most 24 h")
    link = "rl_" + secrets.token_urlsafe(32)
    expires_at = await conn.fetchval(
        "INSERT INTO auth.report_links (link_hash, token_hash, year, expires_at) VALUES ($1, $2, $3, now() + $4)"
        " RETURNING expires_at", digest(link), digest(token), year, ttl)
    await conn.execute("DELETE FROM auth.report_links WHERE expires_at < now() - interval '1 day'")
    return link, expires_at


async def principal_of_link(pool: asyncpg.Pool, link: str, year: int) -> Principal | None:
    """Who a report link reads as (its token, limited to LINK_SCOPES), or None when the
    link is unknown, for another year, expired, or its token is expired or revoked."""
    principal = _principal(await pool.fetchrow(_VALID.format(
        join="JOIN auth.report_links l ON l.token_hash = t.token_hash",
        where="l.link_hash = $1 AND l.year = $2 AND l.expires_at > now()"), digest(link), year))
    if principal is None:
        return None
    return replace(principal, label=f"{principal.label} (link)", scopes=principal.scopes & LINK_SCOPES)


async def list_tokens(conn: asyncpg.Connection) -> list[dict]:
    """Every token, newest first, by its short id: never the token nor its whole hash."""
    rows = await conn.fetch(
        "SELECT token_hash, label, scopes, territories, worker_id, created_at, expires_at, revoked_at"
        " FROM auth.tokens ORDER BY created_at DESC")
    return [{"id": token_id(r["token_hash"]), **{k: r[k] for k in r.keys() if k != "token_hash"}} for r in rows]


def format_tokens(tokens: list[dict], now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)

    def when(moment: datetime | None) -> str:
        return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"

    def state(t: dict) -> str:
        if t["revoked_at"]:
            return "revoked " + when(t["revoked_at"])
        if t["expires_at"] and t["expires_at"] <= now:
            return "expired"
        return "valid"

    header = ("id", "label", "scopes", "territories", "worker", "created", "expires", "state")
    lines = [header] + [
        (t["id"], t["label"], ",".join(t["scopes"]), ",".join(t["territories"]) or "all",
         t["worker_id"] or "-", when(t["created_at"]), when(t["expires_at"]) if t["expires_at"] else "never",
         state(t))
        for t in tokens
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
                     for line in lines)


class RevocationError(LookupError):
    pass


async def revoke_token(conn: asyncpg.Connection, id_or_label: str, actor: str = "code") -> str:
    """Revoke the one valid token with that short id (or a longer prefix of its hash), or
    else the one valid token with that label; return its id. Several matches revoke none."""
    async with conn.transaction():
        rows = await conn.fetch(
            "SELECT token_hash FROM auth.tokens WHERE revoked_at IS NULL"
            " AND (starts_with(encode(token_hash, 'hex'), lower($1)) AND length($1) >= $2)"
            " FOR UPDATE", id_or_label, TOKEN_ID_LENGTH)
        if not rows:
            rows = await conn.fetch(
                "SELECT token_hash FROM auth.tokens WHERE revoked_at IS NULL AND label = $1 FOR UPDATE",
                id_or_label)
        if not rows:
            raise RevocationError(f"no valid token has the id or label {id_or_label!r} (see `list`)")
        if len(rows) > 1:
            ids = ", ".join(token_id(r["token_hash"]) for r in rows)
            raise RevocationError(f"{len(rows)} valid tokens match {id_or_label!r} ({ids}): revoke one by its id")
        await conn.execute("UPDATE auth.tokens SET revoked_at = now() WHERE token_hash = $1", rows[0]["token_hash"])
        revoked = token_id(rows[0]["token_hash"])
        await audit.record(conn, audit.Entry(actor, None, "auth", "revoke_token", None, revoked, "accepted"))
        return revoked


def _cli_actor() -> str:
    """Who runs the command line, for the audit trail (an operator's account)."""
    return f"cli:{getpass.getuser()}"


def _words(text: str | None) -> list[str]:
    return (text or "").replace(",", " ").split()


async def _main(args: argparse.Namespace) -> int:
    try:
        ttl = parse_ttl(args.ttl) if args.command == "issue" else None
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    conn = await asyncpg.connect(os.environ["DATABASE_URL"])
    try:
        await migrate_auth(conn)
        if args.command == "issue":
            scopes = list(ALL_SCOPES) if args.scopes.strip() == "all" else _words(args.scopes)
            token = await issue_token(conn, scopes, args.label, ttl, _words(args.territories), args.worker,
                                      actor=_cli_actor())
            print(token)
            expiry = f"expires in {args.ttl}" if ttl else "never expires"
            print(f"token {token_id(digest(token))} ({args.label}) {expiry}", file=sys.stderr)
        elif args.command == "list":
            print(format_tokens(await list_tokens(conn)))
        else:
            print(f"revoked {await revoke_token(conn, args.id, actor=_cli_actor())}")
    except (ValueError, RevocationError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        await conn.close()
    return 0


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog="python -m services.common.auth",
                                  description="Issue, list and revoke the platform's API tokens")
    sub = cli.add_subparsers(dest="command", required=True)
    issue = sub.add_parser("issue", help="print a new token (only this once)")
    issue.add_argument("--scopes", required=True, help=f'space- or comma-separated, or "all": {" ".join(ALL_SCOPES)}')
    issue.add_argument("--label", default="cli", help="who or what holds it (shown by list and in the audit)")
    issue.add_argument("--ttl", default=os.environ.get("ALFI_TOKEN_TTL", DEFAULT_CLI_TTL),
                       help="lifetime: 90d, 12h, 30m, 3600s or never (default: ALFI_TOKEN_TTL, else 90d)")
    issue.add_argument("--territories", help="territory slugs it is limited to (default: every territory)")
    issue.add_argument("--worker", help="the one worker id it may record interviews under (a field tool)")
    sub.add_parser("list", help="every token by its short id, never the token")
    revoke = sub.add_parser("revoke", help="revoke a token by its short id, or by its label when unique")
    revoke.add_argument("id")
    return cli


if __name__ == "__main__":
    sys.exit(asyncio.run(_main(parser().parse_args())))
