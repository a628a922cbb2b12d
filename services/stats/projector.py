"""Apply a poll of events to the projections: set-based, idempotent, order-free.

Each poll (all partitions) is decoded, folded in memory into one row per entity and
statement, and written with one multi-row `INSERT ... SELECT FROM unnest(...) ON
CONFLICT DO UPDATE` per table: a handful of statements per poll, whatever its size, in
the consumer's transaction with the positions.

Why replays and reordering change nothing: every statement merges a fact into its
entity's row (a cancellation sets `cancelled` whether or not the interview is known yet;
an enrolment fills the household's attributes whether or not its closure came first),
and setting a fact twice to the same value is a no-op. The referent is the one exception
with history: the change with the latest (date, event time) wins, compared in SQL.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import asyncpg

from alfi_contracts import ContractError
from alfi_contracts.envelope import read
from alfi_contracts import events as ev
from services.common.commands import dead_letter
from services.common.consumer import Batches
from services.common.metrics import PROJECTION_LAST_EVENT
from services.common.outbox import enqueue

# table -> (columns, conflict target, SET clause). Column types come from the table.
UPSERTS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "enrolments": (
        ("household_id", "programme", "territory", "enrolled_on", "youth", "dalo_priority",
         "referent_worker_id", "referent_since", "referent_at"),
        "households (household_id)",
        "programme = EXCLUDED.programme, territory = EXCLUDED.territory, enrolled_on = EXCLUDED.enrolled_on,"
        " youth = EXCLUDED.youth, dalo_priority = EXCLUDED.dalo_priority,"
        " referent_worker_id = CASE WHEN households.referent_since IS NULL"
        "   OR (EXCLUDED.referent_since, EXCLUDED.referent_at) > (households.referent_since, households.referent_at)"
        "   THEN EXCLUDED.referent_worker_id ELSE households.referent_worker_id END,"
        " referent_at = CASE WHEN households.referent_since IS NULL"
        "   OR (EXCLUDED.referent_since, EXCLUDED.referent_at) > (households.referent_since, households.referent_at)"
        "   THEN EXCLUDED.referent_at ELSE households.referent_at END,"
        " referent_since = greatest(households.referent_since, EXCLUDED.referent_since)",
    ),
    "referents": (
        ("household_id", "referent_worker_id", "referent_since", "referent_at"),
        "households (household_id)",
        "referent_worker_id = EXCLUDED.referent_worker_id, referent_since = EXCLUDED.referent_since,"
        " referent_at = EXCLUDED.referent_at"
        " WHERE households.referent_since IS NULL"
        " OR (EXCLUDED.referent_since, EXCLUDED.referent_at) > (households.referent_since, households.referent_at)",
    ),
    "closures": (("household_id", "closed_on"), "households (household_id)", "closed_on = EXCLUDED.closed_on"),
    "erasures": (("household_id", "erased_on"), "households (household_id)", "erased_on = EXCLUDED.erased_on"),
    "interviews": (
        ("interview_id", "household_id", "worker_id", "held_on"), "interviews (interview_id)",
        "household_id = EXCLUDED.household_id, worker_id = EXCLUDED.worker_id, held_on = EXCLUDED.held_on",
    ),
    "cancellations": (
        ("interview_id", "household_id", "cancelled"), "interviews (interview_id)",
        "cancelled = true, household_id = coalesce(interviews.household_id, EXCLUDED.household_id)",
    ),
    "workshops": (
        ("workshop_id", "residence", "territory", "theme", "held_on", "participants"), "workshops (workshop_id)",
        "residence = EXCLUDED.residence, territory = EXCLUDED.territory, theme = EXCLUDED.theme,"
        " held_on = EXCLUDED.held_on, participants = EXCLUDED.participants",
    ),
    "rehousings": (
        ("rehousing_id", "household_id", "landlord", "confirmed_on", "youth", "dalo_priority"),
        "rehousings (rehousing_id)",
        "household_id = EXCLUDED.household_id, landlord = EXCLUDED.landlord,"
        " confirmed_on = EXCLUDED.confirmed_on, youth = EXCLUDED.youth, dalo_priority = EXCLUDED.dalo_priority",
    ),
    "escalations": (
        ("situation_id", "household_id", "escalated_on"), "situations (situation_id)",
        "household_id = EXCLUDED.household_id, escalated_on = EXCLUDED.escalated_on",
    ),
    "resolutions": (
        ("situation_id", "household_id", "resolved_on"), "situations (situation_id)",
        "household_id = coalesce(situations.household_id, EXCLUDED.household_id), resolved_on = EXCLUDED.resolved_on",
    ),
    "meetings": (("meeting_id", "held_on", "territory"), "meetings (meeting_id)",
                 "held_on = EXCLUDED.held_on, territory = EXCLUDED.territory"),
    "reviews": (("meeting_id", "situation_id", "decision"), "reviews (meeting_id, situation_id)",
                "decision = EXCLUDED.decision"),
    "freshness": (("topic", "last_event_time"), "freshness (topic)",
                  "last_event_time = greatest(freshness.last_event_time, EXCLUDED.last_event_time), applied_at = now()"),
}
TARGET_TABLE = {name: conflict.split(" ")[0] for name, (_, conflict, _) in UPSERTS.items()}


def fold(rows: dict[str, dict[Any, tuple]], data: ev.EventData, time: datetime) -> None:
    """Put one event's facts into `rows` (statement -> entity key -> row)."""
    match data:
        case ev.HouseholdEnrolled():
            rows["enrolments"][data.household_id] = (
                data.household_id, data.programme.value, data.territory, data.enrolled_on, data.youth,
                data.dalo_priority, data.referent_worker_id, data.enrolled_on, time)
        case ev.HouseholdReferentChanged():
            current = rows["referents"].get(data.household_id)
            candidate = (data.household_id, data.referent_worker_id, data.changed_on, time)
            if current is None or candidate[2:] > current[2:]:
                rows["referents"][data.household_id] = candidate
        case ev.HouseholdAccompanimentClosed():
            rows["closures"][data.household_id] = (data.household_id, data.closed_on)
        case ev.HouseholdPersonalDataErased():
            rows["erasures"][data.household_id] = (data.household_id, data.erased_on)
        case ev.InterviewHeld():
            rows["interviews"][data.interview_id] = (data.interview_id, data.household_id, data.worker_id, data.held_on)
        case ev.InterviewCancelled():
            rows["cancellations"][data.interview_id] = (data.interview_id, data.household_id, True)
        case ev.WorkshopHeld():
            rows["workshops"][data.workshop_id] = (
                data.workshop_id, data.residence, data.territory, data.theme.value, data.held_on, data.participants)
        case ev.RehousingConfirmed():
            rows["rehousings"][data.rehousing_id] = (
                data.rehousing_id, data.household_id, data.landlord, data.confirmed_on, data.youth, data.dalo_priority)
        case ev.SituationEscalated():
            rows["escalations"][data.situation_id] = (data.situation_id, data.household_id, data.escalated_on)
        case ev.SituationResolved():
            rows["resolutions"][data.situation_id] = (data.situation_id, data.household_id, data.resolved_on)
        case ev.VeilleMeetingHeld():
            rows["meetings"][data.meeting_id] = (data.meeting_id, data.held_on, data.territory)
            for review in data.reviewed:
                rows["reviews"][(data.meeting_id, review.situation_id)] = (
                    data.meeting_id, review.situation_id, review.decision.value)


async def column_types(conn: asyncpg.Connection, cache: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """The SQL type of each target column, read once per projector, to cast the unnest arrays."""
    if not cache:
        for row in await conn.fetch(
            "SELECT table_name, column_name, format_type(a.atttypid, a.atttypmod) AS type"
            " FROM information_schema.columns c JOIN pg_attribute a"
            "   ON a.attrelid = (quote_ident(c.table_schema) || '.' || quote_ident(c.table_name))::regclass"
            "  AND a.attname = c.column_name"
            " WHERE c.table_schema = current_schema()"
        ):
            cache.setdefault(row["table_name"], {})[row["column_name"]] = row["type"]
    return cache


async def write(conn: asyncpg.Connection, rows: dict[str, dict[Any, tuple]], types: dict[str, dict[str, str]]) -> None:
    for name, entities in rows.items():
        if not entities:
            continue
        columns, conflict, assignments = UPSERTS[name]
        table = TARGET_TABLE[name]
        arrays = [f"${i}::{types[table][c]}[]" for i, c in enumerate(columns, 1)]
        values = list(zip(*entities.values(), strict=True))
        await conn.execute(
            f"INSERT INTO {conflict.split(' ')[0]} ({', '.join(columns)})"
            f" SELECT * FROM unnest({', '.join(arrays)})"
            f" ON CONFLICT {conflict.split(' ', 1)[1]} DO UPDATE SET {assignments}",
            *[list(v) for v in values],
        )


YIELD_EVERY = 250


@dataclass
class Prepared:
    """A poll decoded and folded: one row per entity and statement, and its dead letters."""

    rows: dict[str, dict[Any, tuple]]
    letters: list


class Projector:
    """`prepare` (CPU: decode, validate, fold) runs outside the transaction, overlapping
    the previous poll's; `apply` writes inside it. See TransactionalConsumer."""

    def __init__(self, dead_letter_schema: str,
                 before: Callable[[asyncpg.Connection], Awaitable[None]] | None = None,
                 on_dead_letter: Callable[[str, str], None] | None = None) -> None:
        self.dead_letter_schema = dead_letter_schema
        self.before = before
        self.on_dead_letter = on_dead_letter
        self.types: dict[str, dict[str, str]] = {}

    async def prepare(self, batches: Batches) -> Prepared:
        rows: dict[str, dict[Any, tuple]] = defaultdict(dict)
        letters = []
        for tp, records in batches.items():
            newest = None
            for index, record in enumerate(records):
                if index % YIELD_EVERY == YIELD_EVERY - 1:
                    await asyncio.sleep(0)  # let the previous poll's statements go out
                try:
                    envelope, data = read(record.value or b"")
                except ContractError as error:
                    letters.append(dead_letter(tp, record, error.kind, error.detail))
                    if self.on_dead_letter:
                        self.on_dead_letter(tp.topic, error.kind)
                    continue
                fold(rows, data, envelope.time)
                newest = envelope.time if newest is None or envelope.time > newest else newest
            if newest is not None:
                current = rows["freshness"].get(tp.topic)
                if current is None or newest > current[1]:
                    rows["freshness"][tp.topic] = (tp.topic, newest)
        return Prepared(rows, letters)

    async def apply(self, conn: asyncpg.Connection, prepared: Prepared) -> None:
        if self.before:
            await self.before(conn)
        await write(conn, prepared.rows, await column_types(conn, self.types))
        for topic, newest in prepared.rows.get("freshness", {}).values():
            PROJECTION_LAST_EVENT.labels(topic).set(newest.timestamp())
        if prepared.letters:
            # The generation's search_path ends with the base schema, whose outbox this is.
            await enqueue(conn, self.dead_letter_schema, prepared.letters)
