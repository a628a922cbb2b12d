"""Which territory a veille command touches (services.common.access).

- An escalation: its household's territory (the replica, read FOR SHARE as the handler
  reads it).
- A resolution: the situation's household's territory, from the situation row locked
  FOR UPDATE as the handler locks it.
- A meeting: the territory it names, and those of the households of the situations it
  reviews (read FOR SHARE): a bound token cannot review, nor learn about, another
  territory's situations through a meeting (nor decide actions for them).
- A completion or cancellation of an action: its household's territory, from the action
  row locked FOR UPDATE as the handler locks it.
- The agenda (a read): the territory it asks for, one of the token's (routes.py).
"""

from __future__ import annotations

import asyncpg

from alfi_contracts.commands import CancelAction, CompleteAction, RecordMeeting, ResolveSituation
from services.common.access import Scope, household_of, replicated_household, rules


async def _resolution(conn: asyncpg.Connection, command: ResolveSituation) -> Scope:
    return await household_of(conn, "situations", "situation_id", command.situation_id, "situation")


async def _meeting(conn: asyncpg.Connection, command: RecordMeeting) -> Scope:
    rows = await conn.fetch(
        "SELECT s.situation_id, h.territory FROM situations s JOIN households h USING (household_id)"
        " WHERE s.situation_id = ANY($1::uuid[]) FOR SHARE OF s, h", [r.situation_id for r in command.reviewed])
    known = {r["situation_id"]: r["territory"] for r in rows}
    # An unknown situation touches no territory here: the handler refuses it (422).
    also = tuple(known[r.situation_id] for r in command.reviewed if r.situation_id in known)
    return Scope(command.territory, also=also)


async def _action(conn: asyncpg.Connection, command: CompleteAction | CancelAction) -> Scope:
    return await household_of(conn, "actions", "action_id", command.action_id, "action")


scope_of = rules({
    "escalate_situation": replicated_household,
    "resolve_situation": _resolution,
    "record_meeting": _meeting,
    "complete_action": _action,
    "cancel_action": _action,
})
