"""casework's rules. Each handler runs in one transaction with its events (outbox).

- An interview or a rehousing needs a household known here (from intake's events; else
  409 with Retry-After), not erased, and open on that date (on or after its enrolment,
  not after its closure).
- A cancelled interview cannot be cancelled again; an unknown one is 404; nothing is
  recorded for an erased household (409), whose personal facts `erase` clears.
- A household is rehoused at most once. youth / dalo_priority default to the enrolment's.
- Creates are idempotent under a client-chosen id (same content 200, other content 409).
"""

from __future__ import annotations

from uuid import UUID, uuid4

import asyncpg

from alfi_contracts.commands import CancelInterview, ConfirmRehousing, RecordInterview, RecordWorkshop
from alfi_contracts.events import InterviewCancelled, InterviewHeld, RehousingConfirmed, WorkshopHeld
from services.common.commands import Outcome, Unit, insert_once, locked, record_view as view
from services.common.errors import Conflict
from services.common.replica import not_erased, open_household


async def record_interview(unit: Unit, command: RecordInterview) -> Outcome:
    command = command.model_copy(update={"interview_id": command.interview_id or uuid4()})
    await open_household(unit.conn, command.household_id, command.held_on, "An interview")
    row, created = await insert_once(unit.conn, "interviews", "interview_id", command.model_dump(), command)
    if created:
        await unit.emit(InterviewHeld(**command.model_dump()))
    return Outcome(view(row), created=created)


async def cancel_interview(unit: Unit, command: CancelInterview) -> Outcome:
    row = await locked(unit.conn, "interviews", "interview_id", command.interview_id, "interview")
    await not_erased(unit.conn, row["household_id"])
    if row["cancelled_on"] is not None:
        raise Conflict(f"Interview {command.interview_id} was already cancelled on {row['cancelled_on']}.")
    row = await unit.conn.fetchrow(
        "UPDATE interviews SET cancelled_on = $2, cancellation_reason = $3 WHERE interview_id = $1 RETURNING *",
        command.interview_id, command.cancelled_on, command.reason,
    )
    await unit.emit(InterviewCancelled(household_id=row["household_id"], **command.model_dump()))
    return Outcome(view(row), created=False)


async def record_workshop(unit: Unit, command: RecordWorkshop) -> Outcome:
    command = command.model_copy(update={"workshop_id": command.workshop_id or uuid4()})
    row, created = await insert_once(unit.conn, "workshops", "workshop_id", command.model_dump(), command)
    if created:
        await unit.emit(WorkshopHeld(**command.model_dump()))
    return Outcome(view(row), created=created)


async def confirm_rehousing(unit: Unit, command: ConfirmRehousing) -> Outcome:
    household = await open_household(unit.conn, command.household_id, command.confirmed_on, "A rehousing")
    command = command.model_copy(update={
        "rehousing_id": command.rehousing_id or uuid4(),
        "youth": household["youth"] if command.youth is None else command.youth,
        "dalo_priority": household["dalo_priority"] if command.dalo_priority is None else command.dalo_priority,
    })
    earlier = await unit.conn.fetchval(
        "SELECT rehousing_id FROM rehousings WHERE household_id = $1 AND rehousing_id <> $2",
        command.household_id, command.rehousing_id)
    if earlier is not None:
        raise Conflict(f"Household {command.household_id} was already rehoused (rehousing {earlier}).",
                       field="household_id")
    row, created = await insert_once(unit.conn, "rehousings", "rehousing_id", command.model_dump(), command)
    if created:
        await unit.emit(RehousingConfirmed(**command.model_dump()))
    return Outcome(view(row), created=created)


async def erase(conn: asyncpg.Connection, household_id: UUID) -> None:
    """Clear what casework holds of an erased household beyond ids and dates."""
    await conn.execute(
        "UPDATE interviews SET worker_id = NULL, mode = NULL, topics = NULL, duration_minutes = NULL,"
        " cancellation_reason = NULL, request_hash = NULL WHERE household_id = $1", household_id)
    await conn.execute(
        "UPDATE rehousings SET landlord = NULL, youth = NULL, dalo_priority = NULL, request_hash = NULL"
        " WHERE household_id = $1", household_id)


HANDLERS = {
    "record_interview": record_interview,
    "cancel_interview": cancel_interview,
    "record_workshop": record_workshop,
    "confirm_rehousing": confirm_rehousing,
}
