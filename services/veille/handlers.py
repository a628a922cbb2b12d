"""veille's handlers. Each runs in one transaction with its events (outbox); the rules
that decide are in rules.py.

- An escalation needs a household known here (else 409 with Retry-After), not erased,
  and open on the escalation date.
- A situation is resolved once, not before it was escalated; an unknown one is 404.
- Nothing is recorded for an erased household (409); `erase` clears its personal facts.
- A meeting reviews only known situations escalated on or before its date and not
  resolved before it. Each review may decide actions (one `veille.action_decided` each)
  and a re-review date (`situation.re_review_scheduled`), in the meeting's transaction.
- An action is completed or cancelled once, not before it was decided; unknown is 404.
- Creates are idempotent under a client-chosen id (same content 200, other content 409):
  a replayed meeting emits nothing and answers the action ids recorded the first time.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any
from uuid import UUID, uuid4

import asyncpg
from pydantic import BaseModel

from alfi_contracts.commands import (
    CancelAction, CompleteAction, EscalateSituation, RecordMeeting, ResolveSituation,
)
from alfi_contracts.events import (
    ActionCancelled, ActionCompleted, ActionDecided, ReReviewScheduled, SituationEscalated, SituationResolved,
    VeilleMeetingHeld,
)
from services.common.commands import Outcome, Unit, insert_once, locked, record_view as view
from services.common.errors import Conflict
from services.common.replica import not_erased, open_household

from .rules import check_closing, check_meeting

# What a review holds beyond the meeting event's situation and decision.
FOLLOW_UP = {"reviewed": {"__all__": {"actions", "re_review_on"}}}


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
    situations = {r["situation_id"]: r for r in await unit.conn.fetch(
        "SELECT s.situation_id, s.household_id, s.escalated_on, s.resolved_on, h.erased_on FROM situations s"
        " JOIN households h USING (household_id) WHERE s.situation_id = ANY($1::uuid[])",
        [r.situation_id for r in command.reviewed])}
    check_meeting(command, situations)
    held = VeilleMeetingHeld(**command.model_dump(exclude=FOLLOW_UP))
    row, created = await insert_once(
        unit.conn, "meetings", "meeting_id",
        {"meeting_id": command.meeting_id, "held_on": command.held_on, "territory": command.territory},
        _hashed(command, held))
    if created:
        await unit.conn.executemany(
            "INSERT INTO reviews (meeting_id, situation_id, decision, re_review_on) VALUES ($1, $2, $3, $4)",
            [(command.meeting_id, r.situation_id, r.decision, r.re_review_on) for r in command.reviewed])
        await unit.emit(held)
        await _decide_follow_up(unit, command, {s: r["household_id"] for s, r in situations.items()})
    return Outcome({**view(row), "reviewed": await _recorded_reviews(unit.conn, command)}, created=created)


def _hashed(command: RecordMeeting, held: VeilleMeetingHeld) -> BaseModel:
    """What a meeting's request hash covers: its follow-up only when it decides some, so a
    meeting recorded before follow-up existed is still answered 200 when replayed."""
    decides = any(r.actions or r.re_review_on for r in command.reviewed)
    return command if decides else held


async def _decide_follow_up(unit: Unit, meeting: RecordMeeting, households: dict[UUID, UUID]) -> None:
    """Record the new meeting's actions (under their ids, or new ones) and re-reviews, with
    their events: each action, then the re-review, review by review."""
    rows: list[tuple[Any, ...]] = []
    events: list[ActionDecided | ReReviewScheduled] = []
    chosen: dict[UUID, str] = {}
    for index, review in enumerate(meeting.reviewed):
        household = households[review.situation_id]
        for position, action in enumerate(review.actions):
            if action.action_id is not None:
                chosen[action.action_id] = f"/reviewed/{index}/actions/{position}/action_id"
            decided = ActionDecided(
                action_id=action.action_id or uuid4(), meeting_id=meeting.meeting_id,
                situation_id=review.situation_id, household_id=household, decided_on=meeting.held_on,
                kind=action.kind, owner_worker_id=action.owner_worker_id, due_on=action.due_on)
            rows.append((decided.action_id, decided.meeting_id, decided.situation_id, household, position,
                         decided.kind, decided.owner_worker_id, decided.decided_on, decided.due_on))
            events.append(decided)
        if review.re_review_on is not None:
            events.append(ReReviewScheduled(
                situation_id=review.situation_id, household_id=household, meeting_id=meeting.meeting_id,
                scheduled_on=meeting.held_on, review_on=review.re_review_on))
    taken = await unit.conn.fetchval("SELECT action_id FROM actions WHERE action_id = ANY($1::uuid[]) LIMIT 1",
                                     list(chosen))
    if taken is not None:
        raise Conflict(f"Action {taken} was already decided by another meeting.", field=chosen[taken])
    await unit.conn.executemany(
        "INSERT INTO actions (action_id, meeting_id, situation_id, household_id, position, kind, owner_worker_id,"
        " decided_on, due_on) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)", rows)
    for event in events:
        await unit.emit(event)


async def _recorded_reviews(conn: asyncpg.Connection, meeting: RecordMeeting) -> list[dict[str, Any]]:
    """The meeting's reviews as recorded (in the order sent), with their actions' ids: on a
    replay, those of the first time."""
    reviews = {r["situation_id"]: r for r in await conn.fetch(
        "SELECT situation_id, decision, re_review_on FROM reviews WHERE meeting_id = $1", meeting.meeting_id)}
    actions: dict[UUID, list[dict[str, Any]]] = defaultdict(list)
    for row in await conn.fetch(
            "SELECT situation_id, action_id, kind, owner_worker_id, due_on FROM actions WHERE meeting_id = $1"
            " ORDER BY position", meeting.meeting_id):
        actions[row["situation_id"]].append({k: row[k] for k in ("action_id", "kind", "owner_worker_id", "due_on")})
    return [{"situation_id": r.situation_id, "decision": reviews[r.situation_id]["decision"],
             "actions": actions[r.situation_id], "re_review_on": reviews[r.situation_id]["re_review_on"]}
            for r in meeting.reviewed]


async def complete_action(unit: Unit, command: CompleteAction) -> Outcome:
    row = await _closable(unit, command.action_id, command.completed_on, "completed_on")
    row = await unit.conn.fetchrow("UPDATE actions SET completed_on = $2 WHERE action_id = $1 RETURNING *",
                                   command.action_id, command.completed_on)
    await unit.emit(ActionCompleted(household_id=row["household_id"], **command.model_dump()))
    return Outcome(action_view(row), created=False)


async def cancel_action(unit: Unit, command: CancelAction) -> Outcome:
    row = await _closable(unit, command.action_id, command.cancelled_on, "cancelled_on")
    row = await unit.conn.fetchrow(
        "UPDATE actions SET cancelled_on = $2, cancel_reason = $3 WHERE action_id = $1 RETURNING *",
        command.action_id, command.cancelled_on, command.reason)
    await unit.emit(ActionCancelled(household_id=row["household_id"], **command.model_dump()))
    return Outcome(action_view(row), created=False)


async def _closable(unit: Unit, action_id: UUID, on: date, field: str) -> asyncpg.Record:
    """The action, locked, if it can be completed or cancelled on `on` (rules.check_closing)."""
    row = await locked(unit.conn, "actions", "action_id", action_id, "action")
    await not_erased(unit.conn, row["household_id"])
    check_closing(row, on, field)
    return row


def action_view(row: asyncpg.Record) -> dict[str, Any]:
    """An action row as an API answer (RecordedAction)."""
    return {k: v for k, v in view(row).items() if k != "position"}


async def erase(conn: asyncpg.Connection, household_id: UUID) -> None:
    """Clear what veille holds of an erased household beyond ids and dates: its situations'
    personal facts, its actions' kinds, owners and cancellation reasons, and the request
    hashes that would confirm a guess of them (the meetings that decided its actions)."""
    await conn.execute(
        "UPDATE situations SET severity = NULL, reasons = NULL, outcome = NULL, request_hash = NULL"
        " WHERE household_id = $1", household_id)
    await conn.execute(
        "UPDATE meetings SET request_hash = NULL"
        " WHERE meeting_id IN (SELECT meeting_id FROM actions WHERE household_id = $1)", household_id)
    await conn.execute(
        "UPDATE actions SET kind = NULL, owner_worker_id = NULL, cancel_reason = NULL WHERE household_id = $1",
        household_id)


HANDLERS = {
    "escalate_situation": escalate_situation,
    "resolve_situation": resolve_situation,
    "record_meeting": record_meeting,
    "complete_action": complete_action,
    "cancel_action": cancel_action,
}
