"""The household replica casework and veille keep from intake's events.

Applied by a TransactionalConsumer, so each batch and its position commit together.
An event that cannot be read goes to `alfi.intake.events.dlq` through the outbox.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from uuid import UUID

import asyncpg

from alfi_contracts import ContractError, decode
from alfi_contracts.events import (
    HouseholdAccompanimentClosed, HouseholdEnrolled, HouseholdPersonalDataErased,
)

from .consumer import Batches
from .deadletters import write_dead_letter
from .errors import Conflict, NotYetKnown
from .keyring import Erased, KeyCache


Eraser = Callable[[asyncpg.Connection, UUID], Awaitable[None]]


def replica_applier(schema: str, on_erasure: Eraser | None = None):  # noqa: ANN201
    """Apply intake's events to the replica. An erasure clears the replica's personal
    facts and, through `on_erasure`, those of the service's own write model, in the
    same transaction as the consumer's position."""
    keys = KeyCache()

    async def apply(conn: asyncpg.Connection, batches: Batches) -> None:
        await keys.load(conn, {r.key.decode(errors="replace") for rs in batches.values() for r in rs if r.key})
        for tp, record in ((tp, r) for tp, records in batches.items() for r in records):
            try:
                _, data = decode(record.value or b"", keys.unsealer)
            except ContractError as error:
                await write_dead_letter(conn, schema, tp, record, error.kind, error.detail)
                continue
            if isinstance(data, HouseholdEnrolled):
                await conn.execute(
                    "INSERT INTO households (household_id, enrolled_on, youth, dalo_priority, programme, territory)"
                    " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (household_id) DO UPDATE"
                    # a household replicated before territories were: re-reading intake's
                    # events (a position set back) fills them in
                    " SET programme = EXCLUDED.programme, territory = EXCLUDED.territory"
                    " WHERE households.territory IS NULL",
                    data.household_id, data.enrolled_on, data.youth, data.dalo_priority,
                    data.programme.value, data.territory,
                )
            elif isinstance(data, HouseholdAccompanimentClosed):
                await conn.execute(
                    "UPDATE households SET closed_on = $2 WHERE household_id = $1",
                    data.household_id, data.closed_on,
                )
            elif isinstance(data, HouseholdPersonalDataErased):
                keys.forget(str(data.household_id))
                await conn.execute(
                    "UPDATE households SET erased_on = $2, youth = NULL, dalo_priority = NULL WHERE household_id = $1",
                    data.household_id, data.erased_on,
                )
                if on_erasure:
                    await on_erasure(conn, data.household_id)

    return apply


async def not_erased(conn: asyncpg.Connection, household_id: UUID) -> None:
    """Erased (409) when the replica says the household was erased."""
    if await conn.fetchval("SELECT erased_on FROM households WHERE household_id = $1", household_id):
        raise Erased(household_id)


async def open_household(conn: asyncpg.Connection, household_id, on: date, what: str) -> asyncpg.Record:
    """The replicated household, which must be open on `on` for `what` to be recorded."""
    row = await conn.fetchrow(
        "SELECT * FROM households WHERE household_id = $1 FOR SHARE", household_id
    )
    if row is None:
        raise NotYetKnown(
            f"Household {household_id} is not known here yet: its enrolment may still be on "
            "its way from intake. Retry shortly; if it persists, check the id.",
            field="household_id",
        )
    if row["erased_on"] is not None:
        raise Erased(household_id)
    if on < row["enrolled_on"]:
        raise Conflict(f"{what} on {on} is before the household's enrolment on {row['enrolled_on']}.",
                       field="household_id")
    if row["closed_on"] is not None and on > row["closed_on"]:
        raise Conflict(f"{what} on {on} is after the household's accompaniment closed on {row['closed_on']}.",
                       field="household_id")
    return row
