"""veille's rules. Each handler runs in one transaction with its events (outbox).

- An escalation needs a household known here (else 409 with Retry-After), not erased,
  and open on the escalation date.
- A situation is resolved once, not before it was escalated; an unknown one is 404.
- Nothing is recorded for an erased household (409); `erase` clears its personal facts.
- A meeting reviews only known situations escalated on or before its date and not
  resolved before it.
- Creates are idempotent under a client-chosen id (same content 200, other content 409).
"""

from __future__ import annotations

from uuid import UUID, uuid4

import asyncpg

from alfi_contracts.commands import EscalateSituation, RecordMeeting, ResolveSituation
from alfi_contracts.events import SituationEscalated, SituationResolved, VeilleMeetingHeld
from services.common.commands import Outcome, Unit, insert_once, locked, record_view as view
from services.common.errors import Conflict, Invalid
from services.common.replica import not_erased, open_household


async def escalate_situation(unit: Unit, command: EscalateSituation) -> Outcome:
    command = command.model_copy(update={"situation_id": command.situation_id or uuid4()})
    await open_household(unit.conn, command.household_id, command.escalated_on, "An escalation")
    row, created = await insert_once(unit.conn, "situations", "situation_id", command.model_dump(), command)
    if created:
        await unit.emit(SituationEscalated(**command.model_dump()))
    return Outcome(view(row), created=created)


async def resolve_situation(unit: Unit, command: ResolveSituation) -> Outcome:
    row = await locked(unit.conn, "situations", "situation_id", command.situation_id, "situation")
    await not_erased(unit.conn, row["household_id"])
    if row["resolved_on"] is not None:
        raise Conflict(f"Situation {command.situation_id} was already resolved on {row['resolved_on']}.")
    if command.resolved_on < row["escalated_on"]:
        raise Conflict(f"resolved_on {command.resolved_on} is before the escalation on {row['escalated_on']}.",
                       field="resolved_on")
    row = await unit.conn.fetchrow(
        "UPDATE situations SET resolved_on = $2, outcome = $3 WHERE situation_id = $1 RETURNING *",
        command.situation_id, command.resolved_on, command.outcome,
    )
    await unit.emit(SituationResolved(household_id=row["household_id"], **command.model_dump()))
    return Outcome(view(row), created=False)


async def record_meeting(unit: Unit, command: RecordMeeting) -> Outcome:
    command = command.model_copy(update={"meeting_id": command.meeting_id or uuid4()})
    ids = [r.situation_id for r in command.reviewed]
    known = {r["situation_id"]: r for r in await unit.conn.fetch(
        "SELECT s.situation_id, s.escalated_on, s.resolved_on, h.erased_on FROM situations s"
        " JOIN households h USING (household_id) WHERE s.situation_id = ANY($1::uuid[])", ids)}
    for index, review in enumerate(command.reviewed):
        field = f"/reviewed/{index}/situation_id"
        situation = known.get(review.situation_id)
        if situation is None:
            raise Invalid(f"No situation {review.situation_id} has been escalated.", field=field)
        if situation["erased_on"] is not None:
            raise Conflict(f"Situation {review.situation_id}'s household was erased: it cannot be reviewed.",
                           field=field)
        if situation["escalated_on"] > command.held_on:
            raise Conflict(f"Situation {review.situation_id} was escalated on {situation['escalated_on']},"
                           f" after the meeting on {command.held_on}.", field=field)
        if situation["resolved_on"] is not None and situation["resolved_on"] < command.held_on:
            raise Conflict(f"Situation {review.situation_id} was resolved on {situation['resolved_on']},"
                           f" before the meeting on {command.held_on}.", field=field)
    row, created = await insert_once(
        unit.conn, "meetings", "meeting_id",
        {"meeting_id": command.meeting_id, "held_on": command.held_on, "territory": command.territory}, command)
    if created:
        await unit.conn.executemany(
            "INSERT INTO reviews (meeting_id, situation_id, decision) VALUES ($1, $2, $3)",
            [(command.meeting_id, r.situation_id, r.decision) for r in command.reviewed])
        await unit.emit(VeilleMeetingHeld(**command.model_dump()))
    return Outcome({**view(row), "reviewed": [r.model_dump(mode="json") for r in command.reviewed]},
                   created=created)


async def erase(conn: asyncpg.Connection, household_id: UUID) -> None:
    """Clear what veille holds of an erased household's situations beyond ids and dates."""
    await conn.execute(
        "UPDATE situations SET severity = NULL, reasons = NULL, outcome = NULL, request_hash = NULL"
        " WHERE household_id = $1", household_id)


HANDLERS = {
    "escalate_situation": escalate_situation,
    "resolve_situation": resolve_situation,
    "record_meeting": record_meeting,
}
