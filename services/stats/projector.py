"""Apply a poll of events to the projections: set-based, idempotent, order-free.

Each poll (all partitions) is decoded and folded in memory into one row per entity
(a household's enrolment, referent change and closure in the same poll make one row),
then written with one statement: an `INSERT ... SELECT ... ON CONFLICT DO UPDATE` per table,
all in data-modifying CTEs, from arrays of parameters or, for a large poll, from staging
tables it was copied into (`Writer`), in the consumer's transaction with the positions.
(Two CTEs of one statement must not touch the same row, hence the merge per entity.)

Why replays and reordering change nothing: every statement merges facts into the
entity's row, each fact being set by exactly one kind of event (a cancellation sets
`cancelled` whether or not the interview is known yet; an enrolment fills the household's
attributes whether or not its closure came first), and setting a fact twice to the same
value is a no-op; a fact absent from the poll (NULL) keeps the stored one. The referent
is the one fact with history: the candidate with the latest (date, event time) wins,
compared in SQL against the stored one.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import asyncpg

from alfi_contracts import ContractError
from alfi_contracts.envelope import read
from alfi_contracts import events as ev
from services.common.consumer import Batches
from services.common.deadletters import dead_letter
from services.common.keyring import KeyCache
from services.common.metrics import ERASURES_ANONYMISED, ERASURES_PENDING, PROJECTION_LAST_EVENT
from services.common.outbox import enqueue

from . import generations

# A newer referent candidate (date, then event time) replaces the stored one.
_NEWER_REFERENT = (
    "EXCLUDED.referent_since IS NOT NULL AND (households.referent_since IS NULL"
    " OR (EXCLUDED.referent_since, EXCLUDED.referent_at) > (households.referent_since, households.referent_at))"
)


def _keep(table: str, *columns: str) -> str:
    """Facts a poll may not carry: NULL keeps the stored value."""
    return ", ".join(f"{c} = coalesce(EXCLUDED.{c}, {table}.{c})" for c in columns)


# table -> (columns, primary key, SET clause). Column types come from the table.
UPSERTS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "households": (
        ("household_id", "programme", "territory", "enrolled_on", "youth", "dalo_priority",
         "referent_worker_id", "referent_since", "referent_at", "closed_on", "erased_on"),
        "household_id",
        _keep("households", "programme", "territory", "enrolled_on", "youth", "dalo_priority", "closed_on",
              "erased_on") + ", "
        + ", ".join(f"{c} = CASE WHEN {_NEWER_REFERENT} THEN EXCLUDED.{c} ELSE households.{c} END"
                    for c in ("referent_worker_id", "referent_since", "referent_at")),
    ),
    "interviews": (  # with the bilan's facts (mode, topics, duration): one row per interview
        ("interview_id", "household_id", "worker_id", "held_on", "cancelled", "mode", "topics", "duration_minutes"),
        "interview_id",
        _keep("interviews", "household_id", "worker_id", "held_on", "mode", "topics", "duration_minutes")
        + ", cancelled = interviews.cancelled OR EXCLUDED.cancelled",
    ),
    "workshops": (
        ("workshop_id", "residence", "territory", "theme", "held_on", "participants"), "workshop_id",
        "residence = EXCLUDED.residence, territory = EXCLUDED.territory, theme = EXCLUDED.theme,"
        " held_on = EXCLUDED.held_on, participants = EXCLUDED.participants",
    ),
    "rehousings": (
        ("rehousing_id", "household_id", "landlord", "confirmed_on", "youth", "dalo_priority"), "rehousing_id",
        "household_id = EXCLUDED.household_id, confirmed_on = EXCLUDED.confirmed_on, "
        # personal facts: a copy read once the key was gone (None) keeps what is known
        + _keep("rehousings", "landlord", "youth", "dalo_priority"),
    ),
    "situations": (
        ("situation_id", "household_id", "escalated_on", "resolved_on"), "situation_id",
        _keep("situations", "household_id", "escalated_on", "resolved_on"),
    ),
    "situation_details": (
        ("situation_id", "household_id", "severity", "reasons", "outcome"), "situation_id",
        _keep("situation_details", "household_id", "severity", "reasons", "outcome"),
    ),
    "closures": (("household_id", "outcome"), "household_id", _keep("closures", "outcome")),
    "meetings": (("meeting_id", "held_on", "territory"), "meeting_id",
                 "held_on = EXCLUDED.held_on, territory = EXCLUDED.territory"),
    "reviews": (("meeting_id", "situation_id", "decision"), "meeting_id, situation_id",
                "decision = EXCLUDED.decision"),
    "actions": (
        ("action_id", "household_id", "situation_id", "meeting_id", "decided_on", "due_on", "completed_on",
         "cancelled_on"), "action_id",
        _keep("actions", "household_id", "situation_id", "meeting_id", "decided_on", "due_on", "completed_on",
              "cancelled_on"),
    ),
    "re_reviews": (("situation_id", "meeting_id", "household_id", "scheduled_on", "review_on"),
                   "situation_id, meeting_id", _keep("re_reviews", "household_id", "scheduled_on", "review_on")),
    "erasures": (("household_id", "erased_at"), "household_id",
                 "erased_at = least(erasures.erased_at, EXCLUDED.erased_at)"),
    "freshness": (("topic", "last_event_time"), "topic",
                  "last_event_time = greatest(freshness.last_event_time, EXCLUDED.last_event_time), applied_at = now()"),
}


def _row(rows: dict[str, dict[Any, list]], table: str, key: Any) -> list:  # noqa: ANN401
    """The poll's row for one entity, created with every fact unknown (NULL)."""
    row = rows[table].get(key)
    if row is None:
        row = rows[table][key] = [key] + [None] * (len(UPSERTS[table][0]) - 1)
    return row


def _at(table: str, first: str, last: str | None = None) -> Any:  # noqa: ANN401
    """Where columns sit in a table's rows (UPSERTS' order): one index, or first..last."""
    columns = UPSERTS[table][0]
    return columns.index(first) if last is None else slice(columns.index(first), columns.index(last) + 1)


_ATTRIBUTES = _at("households", "programme", "dalo_priority")
_REFERENT = _at("households", "referent_worker_id", "referent_at")
_SINCE, _SINCE_AT = _at("households", "referent_since"), _at("households", "referent_at")
_CLOSED, _ERASED = _at("households", "closed_on"), _at("households", "erased_on")
_HELD = _at("interviews", "household_id", "held_on")
_DETAILS = _at("interviews", "mode", "duration_minutes")
_INTERVIEW_HOUSEHOLD, _CANCELLED = _at("interviews", "household_id"), _at("interviews", "cancelled")
_ESCALATION = _at("situations", "household_id", "escalated_on")
_RESOLVED = _at("situations", "resolved_on")
_DETAILS_ESCALATION = _at("situation_details", "household_id", "reasons")
_OUTCOME = _at("situation_details", "outcome")
_DECISION = _at("actions", "household_id", "due_on")
_ACTION_HOUSEHOLD = _at("actions", "household_id")


# Vocabulary values are StrEnum members: strings already, stored as they are (their
# slug); a personal one read after its key was deleted is None.


def _slugs(values: list | None) -> str | None:
    """A multi-valued vocabulary field as stored: its slugs, sorted, comma-separated."""
    return None if values is None else ",".join(sorted(values))


def _referent(row: list, worker: str, since: Any, at: datetime) -> None:  # noqa: ANN401
    if row[_SINCE] is None or (since, at) > (row[_SINCE], row[_SINCE_AT]):
        row[_REFERENT] = worker, since, at


Data = dict[str, Any]  # an event's fields, as `read` gives them


def _enrolled(rows: dict, data: Data, time: datetime) -> None:
    row = _row(rows, "households", data["household_id"])
    row[_ATTRIBUTES] = (data["programme"], data["territory"], data["enrolled_on"], data["youth"],
                data["dalo_priority"])
    _referent(row, data["referent_worker_id"], data["enrolled_on"], time)


def _referent_changed(rows: dict, data: Data, time: datetime) -> None:
    _referent(_row(rows, "households", data["household_id"]), data["referent_worker_id"], data["changed_on"], time)


def _closed(rows: dict, data: Data, time: datetime) -> None:
    _row(rows, "households", data["household_id"])[_CLOSED] = data["closed_on"]
    rows["closures"][data["household_id"]] = [data["household_id"], data["outcome"]]


def _erased(rows: dict, data: Data, time: datetime) -> None:
    _row(rows, "households", data["household_id"])[_ERASED] = data["erased_on"]
    rows["erasures"][data["household_id"]] = [data["household_id"], time]


def _interview_held(rows: dict, data: Data, time: datetime) -> None:
    row = _row(rows, "interviews", data["interview_id"])
    row[_HELD] = data["household_id"], data["worker_id"], data["held_on"]
    if row[_CANCELLED] is None:
        row[_CANCELLED] = False  # NOT NULL; `cancelled` merges with OR
    row[_DETAILS] = data["mode"], _slugs(data["topics"]), data["duration_minutes"]


def _interview_cancelled(rows: dict, data: Data, time: datetime) -> None:
    row = _row(rows, "interviews", data["interview_id"])
    row[_CANCELLED] = True
    if row[_INTERVIEW_HOUSEHOLD] is None:
        row[_INTERVIEW_HOUSEHOLD] = data["household_id"]


def _workshop(rows: dict, data: Data, time: datetime) -> None:
    rows["workshops"][data["workshop_id"]] = [
        data["workshop_id"], data["residence"], data["territory"], data["theme"], data["held_on"],
        data["participants"]]


def _rehousing(rows: dict, data: Data, time: datetime) -> None:
    rows["rehousings"][data["rehousing_id"]] = [
        data["rehousing_id"], data["household_id"], data["landlord"], data["confirmed_on"], data["youth"],
        data["dalo_priority"]]


def _escalated(rows: dict, data: Data, time: datetime) -> None:
    _row(rows, "situations", data["situation_id"])[_ESCALATION] = data["household_id"], data["escalated_on"]
    details = _row(rows, "situation_details", data["situation_id"])
    details[_DETAILS_ESCALATION] = data["household_id"], data["severity"], _slugs(data["reasons"])


def _resolved(rows: dict, data: Data, time: datetime) -> None:
    for table in ("situations", "situation_details"):
        row = _row(rows, table, data["situation_id"])
        if row[1] is None:  # household_id, second in both
            row[1] = data["household_id"]
    rows["situations"][data["situation_id"]][_RESOLVED] = data["resolved_on"]
    rows["situation_details"][data["situation_id"]][_OUTCOME] = data["outcome"]


def _meeting(rows: dict, data: Data, time: datetime) -> None:
    meeting = data["meeting_id"]
    rows["meetings"][meeting] = [meeting, data["held_on"], data["territory"]]
    for review in data["reviewed"]:
        rows["reviews"][(meeting, review.situation_id)] = [meeting, review.situation_id, review.decision]


def _action_decided(rows: dict, data: Data, time: datetime) -> None:
    _row(rows, "actions", data["action_id"])[_DECISION] = (
        data["household_id"], data["situation_id"], data["meeting_id"], data["decided_on"], data["due_on"])


def _action_ended(rows: dict, data: Data, column: str) -> None:
    """A completion or a cancellation: its date, and the household if the decision is not
    known yet."""
    row = _row(rows, "actions", data["action_id"])
    row[_at("actions", column)] = data[column]
    if row[_ACTION_HOUSEHOLD] is None:
        row[_ACTION_HOUSEHOLD] = data["household_id"]


def _action_completed(rows: dict, data: Data, time: datetime) -> None:
    _action_ended(rows, data, "completed_on")


def _action_cancelled(rows: dict, data: Data, time: datetime) -> None:
    _action_ended(rows, data, "cancelled_on")


def _re_review(rows: dict, data: Data, time: datetime) -> None:
    situation, meeting = data["situation_id"], data["meeting_id"]
    rows["re_reviews"][(situation, meeting)] = [situation, meeting, data["household_id"], data["scheduled_on"],
                                                data["review_on"]]


# Each event type's fold merges its facts into `rows` (table -> entity key -> row).
# A new event type must say here which facts it carries.
FOLDS: dict[str, Callable[[dict, Data, datetime], None]] = {
    ev.HouseholdEnrolled.type: _enrolled,
    ev.HouseholdReferentChanged.type: _referent_changed,
    ev.HouseholdAccompanimentClosed.type: _closed,
    ev.HouseholdPersonalDataErased.type: _erased,
    ev.InterviewHeld.type: _interview_held,
    ev.InterviewCancelled.type: _interview_cancelled,
    ev.WorkshopHeld.type: _workshop,
    ev.RehousingConfirmed.type: _rehousing,
    ev.SituationEscalated.type: _escalated,
    ev.SituationResolved.type: _resolved,
    ev.VeilleMeetingHeld.type: _meeting,
    ev.ActionDecided.type: _action_decided,
    ev.ActionCompleted.type: _action_completed,
    ev.ActionCancelled.type: _action_cancelled,
    ev.ReReviewScheduled.type: _re_review,
}


async def column_types(conn: asyncpg.Connection) -> dict[str, dict[str, str]]:
    """The SQL type of each target column, to cast the unnest arrays."""
    types: dict[str, dict[str, str]] = {}
    for row in await conn.fetch(
        "SELECT table_name, column_name, format_type(a.atttypid, a.atttypmod) AS type"
        " FROM information_schema.columns c JOIN pg_attribute a"
        "   ON a.attrelid = (quote_ident(c.table_schema) || '.' || quote_ident(c.table_name))::regclass"
        "  AND a.attname = c.column_name"
        " WHERE c.table_schema = current_schema()"
    ):
        types.setdefault(row["table_name"], {})[row["column_name"]] = row["type"]
    return types


# From how many rows a poll is copied (binary COPY into staging tables, then merged)
# rather than sent as arrays of parameters: asyncpg checks each array element's type in
# Python (~15% of a rebuild's CPU), while staging costs a few round trips and a TRUNCATE
# per table (~1 ms each: nothing for 5,000 rows, most of the time of a live poll of ten).
COPY_FROM_ROWS = 1000


class Writer:
    """How a poll's rows are written into the tables on the search_path: one statement
    upserting every table's rows (`INSERT ... SELECT ... ON CONFLICT DO UPDATE` per table,
    as data-modifying CTEs), from arrays of parameters or, for a large poll, from this
    session's staging tables (`pg_temp.staged_<table>`, emptied again in the transaction)."""

    def __init__(self, types: dict[str, dict[str, str]]) -> None:
        self.types = types  # each column's SQL type
        self.staging = "\n".join(
            f"CREATE TEMP TABLE IF NOT EXISTS staged_{table}"
            f" ({', '.join(f'{c} {types[table][c]}' for c in columns)});"
            for table, (columns, _, _) in UPSERTS.items())
        self._merges: dict[tuple[tuple[str, ...], bool], str] = {}

    def merge(self, tables: tuple[str, ...], staged: bool) -> str:
        """The statement for `tables`' rows: parameters in UPSERTS' column order, table
        after table, or none (`staged`)."""
        sql = self._merges.get((tables, staged))
        if sql is None:
            parts, n = [], 0
            for table in tables:
                columns, key, assignments = UPSERTS[table]
                names = ", ".join(columns)
                if staged:
                    source = f"pg_temp.staged_{table}"
                else:
                    arrays = [f"${n + k}::{self.types[table][c]}[]" for k, c in enumerate(columns, 1)]
                    n += len(columns)
                    source = f"unnest({', '.join(arrays)}) AS v({names})"
                parts.append(f"{table}_ AS (INSERT INTO {table} ({names}) SELECT {names} FROM {source}"
                             f" ON CONFLICT ({key}) DO UPDATE SET {assignments})")
            sql = self._merges[(tables, staged)] = "WITH " + ",\n ".join(parts) + "\nSELECT 1"
        return sql

    async def write(self, conn: asyncpg.Connection, rows: dict[str, dict[Any, list]]) -> None:
        tables = tuple(table for table in UPSERTS if rows.get(table))
        if not tables:
            return
        if sum(len(rows[table]) for table in tables) < COPY_FROM_ROWS:
            await conn.execute(self.merge(tables, staged=False),
                               *(list(column) for table in tables for column in zip(*rows[table].values(), strict=True)))
            return
        await conn.execute(self.staging)
        for table in tables:
            await conn.copy_records_to_table(f"staged_{table}", schema_name="pg_temp", columns=UPSERTS[table][0],
                                             records=rows[table].values())
        await conn.execute(self.merge(tables, staged=True))
        # Only the tables used (one left with ON COMMIT DELETE ROWS would truncate all of
        # them at every commit: 18 ms a live poll, measured).
        await conn.execute("TRUNCATE " + ", ".join(f"pg_temp.staged_{table}" for table in tables))


# How many records `prepare` decodes between two turns of the event loop: small, so that
# each round trip of the previous poll's transaction is answered within a fraction of a
# millisecond instead of waiting behind a long stretch of decoding (measured: 250 -> 20
# took the 1M-event rebuild from 18 s to 15 s; 5-20 are alike).
YIELD_EVERY = 20


@dataclass
class Prepared:
    """A poll decoded and folded: one row per entity and statement, its dead letters, and
    the households and reviewed situations it names (for the erasure clean-up)."""

    rows: dict[str, dict[Any, list]]
    letters: list
    households: set = field(default_factory=set)
    situations: set = field(default_factory=set)


# An erased household's rows, copied into the base schema's anon_* tables under new
# random ids (hmap, smap; a meeting's id, which would lead back through the meeting's
# event, is not kept: NULL, or a random one where it is part of a key), from the generation the reports read, once the erasure's grace
# period is over (`finalise`). `claimed` makes it happen once, whichever instance comes first.
ANONYMISE = """
WITH claimed AS (
    INSERT INTO stats.anonymised_households (household_id) SELECT unnest($1::uuid[])
    ON CONFLICT (household_id) DO NOTHING RETURNING household_id),
hmap AS MATERIALIZED (SELECT household_id AS old, gen_random_uuid() AS new FROM claimed),
smap AS MATERIALIZED (
    SELECT s.situation_id AS old, gen_random_uuid() AS new, m.new AS household
    FROM situations s JOIN hmap m ON s.household_id = m.old),
h AS (INSERT INTO stats.anon_households (household_id, programme, territory, enrolled_on, youth,
        dalo_priority, referent_worker_id, referent_since, referent_at, closed_on, erased_on)
      SELECT m.new, h.programme, h.territory, h.enrolled_on, h.youth, h.dalo_priority,
             h.referent_worker_id, h.referent_since, h.referent_at, h.closed_on, h.erased_on
      FROM households h JOIN hmap m ON h.household_id = m.old),
imap AS MATERIALIZED (
    SELECT i.interview_id AS old, gen_random_uuid() AS new, m.new AS household
    FROM interviews i JOIN hmap m ON i.household_id = m.old),
i AS (INSERT INTO stats.anon_interviews (interview_id, household_id, worker_id, held_on, cancelled)
      SELECT im.new, im.household, i.worker_id, i.held_on, i.cancelled
      FROM interviews i JOIN imap im ON i.interview_id = im.old),
id AS (INSERT INTO stats.anon_interview_details (interview_id, household_id, mode, topics, duration_minutes)
      SELECT im.new, im.household, d.mode, d.topics, d.duration_minutes
      FROM interview_details d JOIN imap im ON d.interview_id = im.old),
c AS (INSERT INTO stats.anon_closures (household_id, outcome)
      SELECT m.new, c.outcome FROM closures c JOIN hmap m ON c.household_id = m.old),
r AS (INSERT INTO stats.anon_rehousings (rehousing_id, household_id, landlord, confirmed_on, youth, dalo_priority)
      SELECT gen_random_uuid(), m.new, r.landlord, r.confirmed_on, r.youth, r.dalo_priority
      FROM rehousings r JOIN hmap m ON r.household_id = m.old),
s AS (INSERT INTO stats.anon_situations (situation_id, household_id, escalated_on, resolved_on)
      SELECT sm.new, sm.household, s.escalated_on, s.resolved_on
      FROM situations s JOIN smap sm ON s.situation_id = sm.old),
sd AS (INSERT INTO stats.anon_situation_details (situation_id, household_id, severity, reasons, outcome)
      SELECT sm.new, sm.household, d.severity, d.reasons, d.outcome
      FROM situation_details d JOIN smap sm ON d.situation_id = sm.old),
v AS (INSERT INTO stats.anon_reviews (situation_id, decision, held_on)
      SELECT sm.new, v.decision, mt.held_on FROM reviews v JOIN smap sm ON v.situation_id = sm.old
      JOIN meetings mt ON mt.meeting_id = v.meeting_id),
a AS (INSERT INTO stats.anon_actions (action_id, household_id, situation_id, meeting_id, decided_on, due_on,
        completed_on, cancelled_on)
      SELECT gen_random_uuid(), m.new, sm.new, NULL, a.decided_on, a.due_on, a.completed_on, a.cancelled_on
      FROM actions a JOIN hmap m ON a.household_id = m.old LEFT JOIN smap sm ON sm.old = a.situation_id),
rr AS (INSERT INTO stats.anon_re_reviews (situation_id, meeting_id, household_id, scheduled_on, review_on)
      SELECT coalesce(sm.new, gen_random_uuid()), gen_random_uuid(), m.new, r.scheduled_on, r.review_on
      FROM re_reviews r JOIN hmap m ON r.household_id = m.old LEFT JOIN smap sm ON sm.old = r.situation_id)
SELECT count(*) FROM claimed
"""

# Every row of an anonymised household goes, whenever its events arrive, in every
# generation ($1: the households the poll names; $2: the situations its meetings reviewed).
FORGET = """
WITH gone AS (SELECT household_id FROM stats.anonymised_households WHERE household_id = ANY($1::uuid[])),
s AS (DELETE FROM situations WHERE household_id IN (SELECT household_id FROM gone) RETURNING situation_id),
es AS (INSERT INTO erased_situations (situation_id) SELECT situation_id FROM s ON CONFLICT DO NOTHING),
v AS (DELETE FROM reviews WHERE situation_id IN (  -- one set: with none, reviews is not read at all
        SELECT situation_id FROM s
        UNION ALL SELECT situation_id FROM erased_situations WHERE situation_id = ANY($2::uuid[]))),
sd AS (DELETE FROM situation_details WHERE household_id IN (SELECT household_id FROM gone)),
i AS (DELETE FROM interviews WHERE household_id IN (SELECT household_id FROM gone)),
c AS (DELETE FROM closures WHERE household_id IN (SELECT household_id FROM gone)),
r AS (DELETE FROM rehousings WHERE household_id IN (SELECT household_id FROM gone)),
a AS (DELETE FROM actions WHERE household_id IN (SELECT household_id FROM gone)),
rr AS (DELETE FROM re_reviews WHERE household_id IN (SELECT household_id FROM gone)),
h AS (DELETE FROM households WHERE household_id IN (SELECT household_id FROM gone))
SELECT 1
"""


async def anonymise(conn: asyncpg.Connection, households: list) -> int:  # noqa: ANN001
    """Copy the erased households' rows of the generation on the search_path into the
    anon_* tables (those not copied before); returns how many were."""
    return await conn.fetchval(ANONYMISE, households)


async def forget(conn: asyncpg.Connection, households: list, situations: list = ()) -> None:  # noqa: ANN001
    await conn.execute(FORGET, households, list(situations))


PENDING = "SELECT household_id FROM erasures EXCEPT SELECT household_id FROM stats.anonymised_households"
DUE = ("SELECT household_id FROM erasures WHERE erased_at <= now() - make_interval(secs => $1)"
       " EXCEPT SELECT household_id FROM stats.anonymised_households")


async def finalise(pool: asyncpg.Pool, grace_seconds: float) -> int:
    """Anonymise the households whose erasure's grace period is over, in the generation
    the reports read (serialised with its projector and with a rebuild's switch by the
    lock on stats.generation), and set how many erased ones wait
    (`alfi_erasures_pending_households`); returns how many were anonymised."""
    async with pool.acquire() as conn, conn.transaction():
        generation = await conn.fetchval("SELECT current FROM stats.generation")
        await conn.execute(f'SET LOCAL search_path TO "stats_g{int(generation)}", stats, public')
        pending = await conn.fetchval(f"SELECT count(*) FROM ({PENDING}) AS pending")
        ERASURES_PENDING.set(pending)
        await conn.execute(generations.FORGET_REVIEWS)
        if not pending or not await conn.fetch(DUE, float(grace_seconds)):
            return 0
        if await conn.fetchval("SELECT current FROM stats.generation FOR UPDATE") != generation:
            return 0  # switched meanwhile: the next round works on the new one
        due = [r["household_id"] for r in await conn.fetch(DUE, float(grace_seconds))]
        done = await anonymise(conn, due)
        await forget(conn, due)
    ERASURES_ANONYMISED.inc(done)
    ERASURES_PENDING.set(pending - done)
    return done


class Projector:
    """`prepare` (CPU: decode, validate, fold) runs outside the transaction, overlapping
    the previous poll's; `apply` writes inside it. See TransactionalConsumer."""

    def __init__(self, dead_letter_schema: str, keys_from: asyncpg.Pool | None = None,
                 before: Callable[[asyncpg.Connection], Awaitable[None]] | None = None,
                 on_dead_letter: Callable[[str, str], None] | None = None) -> None:
        """`keys_from`: where the household keys are read (keyring); None reads sealed
        personal fields as None."""
        self.dead_letter_schema = dead_letter_schema
        self.keys_from = keys_from
        self.keys = KeyCache()
        self.before = before
        self.on_dead_letter = on_dead_letter
        self.writer: Writer | None = None  # made from the tables' column types on first use

    async def prepare(self, batches: Batches) -> Prepared:
        rows: dict[str, dict[Any, list]] = defaultdict(dict)
        letters = []
        households: set = set()
        situations: set = set()
        if self.keys_from is not None:
            keys = {r.key for records in batches.values() for r in records if r.key}  # bytes: hashed in C
            await self.keys.load(self.keys_from, {key.decode(errors="replace") for key in keys})
        unseal = self.keys.unsealer
        for tp, records in batches.items():
            last = None
            for start in range(0, len(records), YIELD_EVERY):
                if start:
                    await asyncio.sleep(0)  # let the previous poll's statements go out
                for record in records[start:start + YIELD_EVERY]:
                    try:
                        envelope, data = read(record.value or b"", unseal)
                    except ContractError as error:
                        letters.append(dead_letter(tp, record, error.kind, error.detail))
                        if self.on_dead_letter:
                            self.on_dead_letter(tp.topic, error.kind)
                        continue
                    last = envelope["time"]
                    FOLDS[envelope["type"]](rows, data, last)
                    if (household := data.get("household_id")) is not None:
                        households.add(household)
                    elif "reviewed" in data:
                        situations.update(review.situation_id for review in data["reviewed"])
            # Freshness: the time of the last event applied from each partition (the
            # newest of the topic's partitions wins, here and in SQL).
            if last is not None:
                current = rows["freshness"].get(tp.topic)
                if current is None or last > current[1]:
                    rows["freshness"][tp.topic] = [tp.topic, last]
        if "freshness" in rows:
            # The only rows that workers sharing the partitions (ALFI_WORKERS) both write:
            # always locked in topic order, so two transactions never deadlock on them.
            rows["freshness"] = dict(sorted(rows["freshness"].items()))
        return Prepared(rows, letters, households, situations)

    async def apply(self, conn: asyncpg.Connection, prepared: Prepared) -> None:
        if self.before:
            await self.before(conn)
        if self.writer is None:
            self.writer = Writer(await column_types(conn))
        await self.writer.write(conn, prepared.rows)
        if prepared.households or prepared.situations:
            await forget(conn, list(prepared.households), prepared.situations)
        for topic, newest in prepared.rows.get("freshness", {}).values():
            PROJECTION_LAST_EVENT.labels(topic).set(newest.timestamp())
        if prepared.letters:
            # The generation's search_path ends with the base schema, whose outbox this is.
            await enqueue(conn, self.dead_letter_schema, prepared.letters)
