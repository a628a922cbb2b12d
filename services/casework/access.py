"""Which territory and worker a casework command touches (services.common.access).

- An interview: its household's territory (the replica, read FOR SHARE as the handler
  reads it) and the worker it is recorded under: a token bound to a worker (a field
  tool) records interviews only under that worker.
- A cancellation: the interview's household's territory and the interview's worker, from
  the interview row locked FOR UPDATE as the handler locks it.
- A workshop: the territory it names. A rehousing: its household's territory.
"""

from __future__ import annotations

import asyncpg

from alfi_contracts.commands import CancelInterview, RecordInterview
from services.common.access import Scope, household_of, named_territory, replicated_household, rules


async def _interview(conn: asyncpg.Connection, command: RecordInterview) -> Scope:
    return Scope((await replicated_household(conn, command)).territory, command.worker_id)


async def _cancellation(conn: asyncpg.Connection, command: CancelInterview) -> Scope:
    return await household_of(conn, "interviews", "interview_id", command.interview_id, "interview", "worker_id")


scope_of = rules({
    "record_interview": _interview,
    "cancel_interview": _cancellation,
    "record_workshop": named_territory,
    "confirm_rehousing": replicated_household,
})
