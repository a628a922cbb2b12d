"""intake's rules. Each handler runs in one transaction with its events (outbox).

- A household is enrolled once; the same id with the same content replays (200), other
  content is a conflict (409).
- A closed household's referent cannot change and it cannot be closed again; a referent
  change or closure cannot be dated before the enrolment.
- After erasure nothing more is recorded; erasure clears every personal attribute and the
  request hash, keeps the public facts (programme, territory, dates) and destroys the
  household's key, so its sealed fields can no longer be read anywhere. Erasing again is
  a no-op (200), as a repeated DELETE should be; replaying the enrolment answers 409
  whatever its content.
"""

from __future__ import annotations

from datetime import date
from uuid import uuid4

import asyncpg

from alfi_contracts.commands import ChangeReferent, CloseAccompaniment, EnrolHousehold, ErasePersonalData
from alfi_contracts.events import (
    HouseholdAccompanimentClosed, HouseholdEnrolled, HouseholdPersonalDataErased, HouseholdReferentChanged,
)
from services.common.commands import Outcome, Unit, insert_once, locked
from services.common.errors import Conflict
from services.common.keyring import Erased, destroy_key, locked_key, new_key

# What erasure clears in the write model: the columns of the enrolment's personal fields
# (alfi_contracts.privacy), and the closure's outcome.
PERSONAL_COLUMNS = ("referent_worker_id", "youth", "dalo_priority", "adults", "children", "closure_outcome")
PUBLIC_FIELDS = (
    "household_id", "programme", "territory", "referent_worker_id", "enrolled_on", "youth",
    "dalo_priority", "adults", "children", "closed_on", "closure_outcome", "erased_on",
)


def view(row: asyncpg.Record) -> dict:
    return {name: row[name] for name in PUBLIC_FIELDS}


async def household(conn: asyncpg.Connection, household_id) -> asyncpg.Record:
    row = await locked(conn, "households", "household_id", household_id, "household")
    if row["erased_on"] is not None:
        raise Erased(household_id)
    return row


async def enrol_household(unit: Unit, command: EnrolHousehold) -> Outcome:
    command = command.model_copy(update={"household_id": command.household_id or uuid4()})
    try:
        key = new_key()  # stored in the enrolment's own statement
        row, created = await insert_once(unit.conn, "households", "household_id", command.model_dump(), command,
                                         household_key=key)
    except Conflict:
        if await unit.conn.fetchval("SELECT erased_on FROM households WHERE household_id = $1",
                                    command.household_id) is not None:
            # The same answer whatever the content: nothing of the erased enrolment is
            # left to compare a guess with (its request hash was cleared).
            raise Erased(command.household_id) from None
        raise
    if created:
        if not row["key_created"]:  # a key was there already, or the household was erased
            key = await locked_key(unit.conn, command.household_id)
        await unit.emit(HouseholdEnrolled(**command.model_dump()), key=key)
    return Outcome(view(row), created=created)


async def change_referent(unit: Unit, command: ChangeReferent) -> Outcome:
    row = await household(unit.conn, command.household_id)
    if row["closed_on"] is not None:
        raise Conflict(f"The accompaniment closed on {row['closed_on']}: its referent cannot change.")
    if command.changed_on < row["enrolled_on"]:
        raise Conflict(f"changed_on {command.changed_on} is before the enrolment on {row['enrolled_on']}.",
                       field="changed_on")
    row = await unit.conn.fetchrow(
        "UPDATE households SET referent_worker_id = $2 WHERE household_id = $1 RETURNING *",
        command.household_id, command.referent_worker_id,
    )
    await unit.emit(HouseholdReferentChanged(**command.model_dump()))
    return Outcome(view(row), created=False)


async def close_accompaniment(unit: Unit, command: CloseAccompaniment) -> Outcome:
    row = await household(unit.conn, command.household_id)
    if row["closed_on"] is not None:
        raise Conflict(f"The accompaniment is already closed (on {row['closed_on']}).")
    if command.closed_on < row["enrolled_on"]:
        raise Conflict(f"closed_on {command.closed_on} is before the enrolment on {row['enrolled_on']}.",
                       field="closed_on")
    row = await unit.conn.fetchrow(
        "UPDATE households SET closed_on = $2, closure_outcome = $3 WHERE household_id = $1 RETURNING *",
        command.household_id, command.closed_on, command.outcome,
    )
    await unit.emit(HouseholdAccompanimentClosed(**command.model_dump()))
    return Outcome(view(row), created=False)


async def erase_personal_data(unit: Unit, command: ErasePersonalData) -> Outcome:
    row = await unit.conn.fetchrow(
        "SELECT * FROM households WHERE household_id = $1 FOR UPDATE", command.household_id)
    if row is not None and row["erased_on"] is not None:
        return Outcome(view(row), created=False)  # already erased: a repeated DELETE is a no-op
    await household(unit.conn, command.household_id)
    today = date.today()
    row = await unit.conn.fetchrow(
        f"UPDATE households SET erased_on = $2, request_hash = NULL, {', '.join(f'{c} = NULL' for c in PERSONAL_COLUMNS)}"
        " WHERE household_id = $1 RETURNING *",
        command.household_id, today,
    )
    await unit.emit(HouseholdPersonalDataErased(household_id=command.household_id, erased_on=today))
    # Last: every event above was sealed with the key this destroys.
    await destroy_key(unit.conn, command.household_id, unit.erasure_grace_seconds)
    return Outcome(view(row), created=False)


HANDLERS = {
    "enrol_household": enrol_household,
    "change_referent": change_referent,
    "close_accompaniment": close_accompaniment,
    "erase_personal_data": erase_personal_data,
}
