"""Which territory an intake command touches (services.common.access).

Enrolment names its territory; every other command acts on an enrolled household, whose
territory is read from the row the handler then changes, locked FOR UPDATE as the
handler locks it (a household's territory never changes after its enrolment).
"""

from __future__ import annotations

from typing import Any

import asyncpg

from services.common.access import Scope, named_territory, rules
from services.common.errors import NotFound


async def _enrolled(conn: asyncpg.Connection, command: Any) -> Scope:
    """The household's territory; 404 for an unknown household, as its handler answers."""
    territory = await conn.fetchval(
        "SELECT territory FROM households WHERE household_id = $1 FOR UPDATE", command.household_id)
    if territory is None:
        raise NotFound(f"No household {command.household_id}.", field="household_id")
    return Scope(territory)


scope_of = rules({
    "enrol_household": named_territory,
    "change_referent": _enrolled,
    "close_accompaniment": _enrolled,
    "erase_personal_data": _enrolled,
})
