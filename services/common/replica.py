"""The household replica casework and veille keep from intake's events.

Applied by a TransactionalConsumer, so each batch and its position commit together.
An event that cannot be read goes to `alfi.intake.events.dlq` through the outbox.
"""

from __future__ import annotations

from datetime import date

import asyncpg

from alfi_contracts import ContractError, decode
from alfi_contracts.events import (
    HouseholdAccompanimentClosed, HouseholdEnrolled, HouseholdPersonalDataErased,
)

from .consumer import Batches
from .deadletters import write_dead_letter
from .errors import Conflict, NotYetKnown


def replica_applier(schema: str):  # noqa: ANN201
    async def apply(conn: asyncpg.Connection, batches: Batches) -> None:
        for tp, record in ((tp, r) for tp, records in batches.items() for r in records):
            try:
                _, data = decode(record.value or b"")
            except ContractError as error:
                await write_dead_letter(conn, schema, tp, record, error.kind, error.detail)
                continue
            if isinstance(data, HouseholdEnrolled):
                await conn.execute(
                    "INSERT INTO households (household_id, enrolled_on, youth, dalo_priority)"
                    " VALUES ($1, $2, $3, $4) ON CONFLICT (household_id) DO NOTHING",
                    data.household_id, data.enrolled_on, data.youth, data.dalo_priority,
                )
            elif isinstance(data, HouseholdAccompanimentClosed):
                await conn.execute(
                    "UPDATE households SET closed_on = $2 WHERE household_id = $1",
                    data.household_id, data.closed_on,
                )
            elif isinstance(data, HouseholdPersonalDataErased):
                await conn.execute(
                    "UPDATE households SET erased_on = $2 WHERE household_id = $1",
                    data.household_id, data.erased_on,
                )

    return apply


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
        raise Conflict(f"Household {household_id}'s personal data was erased: nothing more can be recorded.",
                       field="household_id")
    if on < row["enrolled_on"]:
        raise Conflict(f"{what} on {on} is before the household's enrolment on {row['enrolled_on']}.",
                       field="household_id")
    if row["closed_on"] is not None and on > row["closed_on"]:
        raise Conflict(f"{what} on {on} is after the household's accompaniment closed on {row['closed_on']}.",
                       field="household_id")
    return row
