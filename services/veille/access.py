"""Which territory a veille command touches (services.common.access).

- An escalation: its household's territory (the replica, read FOR SHARE as the handler
  reads it).
- A resolution: the situation's household's territory, from the situation row locked
  FOR UPDATE as the handler locks it.
- A meeting: the territory it names (the situations it reviews are not checked one by
  one: a meeting is the territory's).
"""

from __future__ import annotations

import asyncpg

from alfi_contracts.commands import ResolveSituation
from services.common.access import Scope, household_of, named_territory, replicated_household, rules


async def _resolution(conn: asyncpg.Connection, command: ResolveSituation) -> Scope:
    return await household_of(conn, "situations", "situation_id", command.situation_id, "situation")


scope_of = rules({
    "escalate_situation": replicated_household,
    "resolve_situation": _resolution,
    "record_meeting": named_territory,
})
