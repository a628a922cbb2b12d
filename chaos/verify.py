"""After the load: wait until the stack has settled, then check it against what the
accepted commands imply.

Settled: every service ready, every outbox drained, every command topic consumed to its
end, stats caught up on every partition, twice in a row. Then:

- figures: every figure of `/v1/reports/activity?year=Y` for each year of the load
  equals tests/reference.py's fold over the events the accepted commands imply, and
  every row of every breakdown equals the same attribution done here in Python
  (`Reference`: the report definitions of services/stats/reports.py, folded in memory);
- events: the three event topics read from the beginning; each accepted fact (an entity,
  an event type, and for a referent change its date and worker) must be there under
  exactly one CloudEvent id: none is lost, two ids are doubled (the same id twice is a
  harmless republish); a fact nobody's accepted command implies is unexpected;
- projection rows: stats' current generation holds exactly the expected rows;
- dead letters: none of the commands sent, nor any event, is on a dead-letter topic.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import aiohttp
import asyncpg
from aiokafka import AIOKafkaConsumer

from alfi_contracts import ContractError, decode
from alfi_contracts import events as ev
from alfi_contracts.topics import DLQ_ERROR_KIND, SERVICES, commands_topic, dead_letter_topic, events_topic
from services.common.kafka import partitions_of, read_to_end
from services.common.keyring import KeyCache
from services.stats.reports import DIMENSIONS, FIGURES
from tests.reference import bilan

from .load import Command
from .stack import SERVICES as ALL_SERVICES, Stack

EVENT_TOPICS = tuple(events_topic(s) for s in SERVICES)
DEAD_LETTER_TOPICS = tuple(dead_letter_topic(t) for s in SERVICES for t in (commands_topic(s), events_topic(s)))
EVENT_OF: dict[str, type[ev.EventData]] = {
    "enrol_household": ev.HouseholdEnrolled, "change_referent": ev.HouseholdReferentChanged,
    "close_accompaniment": ev.HouseholdAccompanimentClosed, "erase_personal_data": ev.HouseholdPersonalDataErased,
    "record_interview": ev.InterviewHeld, "cancel_interview": ev.InterviewCancelled,
    "record_workshop": ev.WorkshopHeld, "confirm_rehousing": ev.RehousingConfirmed,
    "escalate_situation": ev.SituationEscalated, "resolve_situation": ev.SituationResolved,
    "record_meeting": ev.VeilleMeetingHeld, "complete_action": ev.ActionCompleted, "cancel_action": ev.ActionCancelled,
}
ENTITY = {"household": "household", "interview": "interview", "workshop": "workshop", "rehousing": "rehousing",
          "situation": "situation", "veille": "meeting"}


# ---------------------------------------------------------------------------- settling


async def settle(stack: Stack, timeout: float) -> tuple[bool, float, str]:
    """Wait until the stack has settled (see the module's docstring). Returns whether it
    did, how long it took, and what was still pending if not."""
    started = time.monotonic()
    steady, pending = 0, ""
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {stack.token}"},
                                     timeout=aiohttp.ClientTimeout(total=10)) as http:
        while time.monotonic() - started < timeout:
            try:
                pending = await _pending(stack, http)
            except (OSError, aiohttp.ClientError, asyncio.TimeoutError, asyncpg.PostgresError) as error:
                pending = f"cannot tell yet ({type(error).__name__})"
            steady = steady + 1 if not pending else 0
            if steady >= 2:
                return True, time.monotonic() - started, ""
            await asyncio.sleep(2)
    return False, time.monotonic() - started, pending


async def _pending(stack: Stack, http: aiohttp.ClientSession) -> str:
    for service in ALL_SERVICES:
        async with http.get(f"{stack.url(service)}/health/ready") as response:
            if response.status != 200:
                return f"{service} not ready ({await response.text()})"
    conn = await asyncpg.connect(stack.database_url)
    try:
        for schema in ALL_SERVICES:
            backlog = await conn.fetchval(  # pending: neither published nor set aside as refused
                f'SELECT count(*) FROM "{schema}".outbox WHERE published_at IS NULL AND refused_at IS NULL')
            if backlog:
                return f"{schema} outbox holds {backlog} unpublished"
        # Erasures complete after their grace period: keys deleted, stats anonymised.
        erased = await conn.fetchval("SELECT count(*) FROM intake.households WHERE erased_on IS NOT NULL")
        anonymised = await conn.fetchval("SELECT count(*) FROM stats.anonymised_households")
        if anonymised < erased:
            return f"stats anonymised {anonymised} of {erased} erased households (grace period)"
        keys = await conn.fetchval("SELECT count(*) FROM keyring.household_keys WHERE destroy_after IS NOT NULL")
        if keys:
            return f"{keys} erased households' keys are in their grace period"
        consumed = {}
        for service in SERVICES:
            for row in await conn.fetch(
                    f'SELECT partition, max(next_offset) AS next FROM "{service}".consumer_positions'
                    " WHERE topic = $1 GROUP BY partition", commands_topic(service)):
                consumed[(commands_topic(service), row["partition"])] = row["next"]
    finally:
        await conn.close()
    for (topic, partition), end in (await end_offsets(stack.bootstrap, [commands_topic(s) for s in SERVICES])).items():
        if consumed.get((topic, partition), 0) < end:
            return f"{topic}[{partition}] consumed to {consumed.get((topic, partition), 0)} of {end}"
    async with http.get(f"{stack.url('stats')}/v1/projections/status") as response:
        status = await response.json()
    behind = [p for p in status["partitions"] if p["lag"] != 0]
    if len(status["partitions"]) < 18 or behind:
        return f"stats behind on {len(behind)} partitions"
    return ""


async def end_offsets(bootstrap: str, topics: list[str]) -> dict[tuple[str, int], int]:
    tps = await partitions_of(bootstrap, topics)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(tps) if tps else {}
    finally:
        await consumer.stop()
    return {(tp.topic, tp.partition): offset for tp, offset in ends.items()}


# ---------------------------------------------------------------------------- expected


def expected_events(commands: list[Command]) -> list[tuple[Command, ev.EventData]]:
    """The event each accepted command implies, in the order they were planned."""
    enrolments = {c.household: c.data for c in commands if c.name == "enrol_household"}
    situations = {c.data["situation_id"]: c.household for c in commands if c.name == "escalate_situation"}
    implied = []
    for command in commands:
        if not command.accepted:
            continue
        data: dict[str, Any] = dict(command.data)
        if command.name in ("cancel_interview", "resolve_situation", "complete_action", "cancel_action"):
            data["household_id"] = command.household
        elif command.name == "record_meeting":  # the meeting, then what its reviews decided
            data["reviewed"] = [{"situation_id": r["situation_id"], "decision": r["decision"]} for r in data["reviewed"]]
            implied.append((command, ev.VeilleMeetingHeld.model_validate(data)))
            for review in command.data["reviewed"]:
                about = {"situation_id": review["situation_id"], "household_id": situations[review["situation_id"]],
                         "meeting_id": data["meeting_id"]}
                implied += [(command, ev.ActionDecided.model_validate({**about, **action, "decided_on": data["held_on"]}))
                            for action in review.get("actions", [])]
                if review.get("re_review_on"):
                    implied.append((command, ev.ReReviewScheduled.model_validate(
                        {**about, "scheduled_on": data["held_on"], "review_on": review["re_review_on"]})))
            continue
        elif command.name == "confirm_rehousing":  # youth / DALO default to the enrolment's
            enrolment = enrolments[command.household]
            data = {"youth": enrolment["youth"], "dalo_priority": enrolment["dalo_priority"], **data}
        elif command.name == "erase_personal_data":
            data["erased_on"] = date.today()
        implied.append((command, EVENT_OF[command.name].model_validate(data)))
    return implied


def fact(data: ev.EventData, erased: frozenset[str] = frozenset()) -> tuple:
    """What one event records: (entity, id, type), and for a referent change, which (its
    worker only while the household's key exists: erased, it no longer reads)."""
    if isinstance(data, (ev.ActionDecided, ev.ActionCompleted, ev.ActionCancelled)):
        return ("action", str(data.action_id), data.type)
    if isinstance(data, ev.ReReviewScheduled):  # one per meeting that asks for it
        return ("situation", str(data.situation_id), data.type, str(data.meeting_id))
    entity = ENTITY[data.type.split(".")[0]]
    key: tuple = (entity, str(getattr(data, f"{entity}_id")), data.type)
    if isinstance(data, ev.HouseholdReferentChanged):
        key += (data.changed_on.isoformat(),
                None if str(data.household_id) in erased else data.referent_worker_id)
    return key


@dataclass
class Fact:
    """One qualifying fact of a figure, as services/stats/reports.py defines them."""

    key: str
    on: date
    programme: str | None
    territory: str | None
    worker: str | None
    landlord: str | None
    theme: str | None
    weight: int = 1

    def order(self) -> tuple:
        # PostgreSQL's ascending order: NULLs last; the C collation compares like Python.
        values = (self.on, self.programme, self.territory, self.worker, self.landlord, self.theme)
        return (self.key, *((v is None, "" if v is None else v) for v in values))

    def value(self, by: str) -> str | None:
        if by == "month":
            return self.on.strftime("%Y-%m")
        return {"programme": self.programme, "territory": self.territory, "worker": self.worker,
                "workshop_theme": self.theme, "landlord": self.landlord}[by]


class Reference:
    """The projections folded in memory from the implied events, and each figure's facts."""

    def __init__(self, events: list[ev.EventData]) -> None:
        self.households: dict[str, dict] = {}
        self.interviews: dict[str, dict] = {}
        self.workshops: dict[str, ev.WorkshopHeld] = {}
        self.rehousings: dict[str, ev.RehousingConfirmed] = {}
        self.situations: dict[str, dict] = {}
        self.meetings: dict[str, ev.VeilleMeetingHeld] = {}
        for n, data in enumerate(events):
            match data:
                case ev.HouseholdEnrolled():
                    row = self._household(data.household_id)
                    row.update(programme=data.programme.value, territory=data.territory, enrolled_on=data.enrolled_on)
                    self._referent(row, data.referent_worker_id, data.enrolled_on, n)
                case ev.HouseholdReferentChanged():
                    self._referent(self._household(data.household_id), data.referent_worker_id, data.changed_on, n)
                case ev.HouseholdAccompanimentClosed():
                    self._household(data.household_id)["closed_on"] = data.closed_on
                case ev.HouseholdPersonalDataErased():
                    self._household(data.household_id)["erased"] = True
                case ev.InterviewHeld():
                    row = self.interviews.setdefault(str(data.interview_id), {"cancelled": False})
                    row.update(household_id=str(data.household_id), worker_id=data.worker_id, held_on=data.held_on)
                case ev.InterviewCancelled():
                    self.interviews.setdefault(str(data.interview_id), {})["cancelled"] = True
                case ev.WorkshopHeld():
                    self.workshops[str(data.workshop_id)] = data
                case ev.RehousingConfirmed():
                    self.rehousings[str(data.rehousing_id)] = data
                case ev.SituationEscalated():
                    self.situations.setdefault(str(data.situation_id), {"resolved_on": None}).update(
                        household_id=str(data.household_id), escalated_on=data.escalated_on)
                case ev.SituationResolved():
                    self.situations.setdefault(str(data.situation_id), {})["resolved_on"] = data.resolved_on
                case ev.VeilleMeetingHeld():
                    self.meetings[str(data.meeting_id)] = data

    def _household(self, household_id: Any) -> dict:  # noqa: ANN401
        return self.households.setdefault(str(household_id), {"closed_on": None, "erased": False, "since": None})

    @staticmethod
    def _referent(row: dict, worker: str, since: date, n: int) -> None:
        if row["since"] is None or (since, n) > row["since"]:
            row["referent"], row["since"] = worker, (since, n)

    def _of(self, household_id: str | None) -> tuple[str | None, str | None, str | None]:
        household = self.households.get(household_id or "", {})
        return household.get("programme"), household.get("territory"), household.get("referent")

    def facts(self, year: int) -> dict[str, list[Fact]]:
        start, end = date(year, 1, 1), date(year, 12, 31)
        facts: dict[str, list[Fact]] = {figure: [] for figure in FIGURES}
        for household_id, h in self.households.items():
            if h.get("enrolled_on") and h["enrolled_on"] <= end and (h["closed_on"] is None or h["closed_on"] >= start):
                facts["households_followed"].append(Fact(household_id, max(h["enrolled_on"], start),
                                                         h["programme"], h["territory"], h.get("referent"), None, None))
        for interview_id, i in self.interviews.items():
            if i.get("held_on") and start <= i["held_on"] <= end and not i["cancelled"]:
                programme, territory, _ = self._of(i["household_id"])
                facts["interviews_held"].append(
                    Fact(interview_id, i["held_on"], programme, territory, i["worker_id"], None, None))
                facts["social_workers_active"].append(
                    Fact(i["worker_id"], i["held_on"], programme, territory, i["worker_id"], None, None))
        for meeting_id, m in self.meetings.items():
            if start <= m.held_on <= end:
                facts["veille_meetings"].append(Fact(meeting_id, m.held_on, None, m.territory, None, None, None))
                for review in m.reviewed:
                    situation = self.situations.get(str(review.situation_id), {})
                    programme, territory, referent = self._of(situation.get("household_id"))
                    facts["situations_reviewed"].append(
                        Fact(str(review.situation_id), m.held_on, programme, territory, referent, None, None))
        for situation_id, s in self.situations.items():
            if s.get("escalated_on") and start <= s["escalated_on"] <= end:
                programme, territory, referent = self._of(s["household_id"])
                facts["situations_escalated"].append(
                    Fact(situation_id, s["escalated_on"], programme, territory, referent, None, None))
        for workshop_id, w in self.workshops.items():
            if start <= w.held_on <= end:
                theme = w.theme.value
                facts["workshops_held"].append(Fact(workshop_id, w.held_on, None, w.territory, None, None, theme))
                facts["workshop_participants"].append(
                    Fact(workshop_id, w.held_on, None, w.territory, None, None, theme, w.participants))
        for rehousing_id, r in self.rehousings.items():
            if start <= r.confirmed_on <= end:
                programme, territory, referent = self._of(str(r.household_id))
                fact_ = Fact(rehousing_id, r.confirmed_on, programme, territory, referent, r.landlord, None)
                facts["rehousings"].append(fact_)
                if r.dalo_priority:
                    facts["rehousings_dalo"].append(fact_)
                if r.youth:
                    facts["rehousings_youth"].append(fact_)
        return facts

    def breakdown(self, year: int, by: str) -> dict[str | None, dict[str, int]]:
        """Each distinct key in the row of its first qualifying fact (reports.py)."""
        rows: dict[str | None, dict[str, int]] = defaultdict(lambda: dict.fromkeys(FIGURES, 0))
        for figure, facts in self.facts(year).items():
            first: dict[str, Fact] = {}
            for f in sorted(facts, key=Fact.order):
                first.setdefault(f.key, f)
            for f in first.values():
                rows[f.value(by)][figure] += f.weight
        return dict(rows)

    def projection_rows(self) -> dict[str, dict]:
        """The rows stats' generation tables must hold, in `PROJECTION_QUERIES`' shape:
        none of an erased household's (they are in the anon_* tables, `anonymised_rows`)."""
        rows = self.all_rows()
        erased = self.erased()
        for table, of in self._households_of().items():
            rows[table] = {k: v for k, v in rows[table].items() if of(k, v) not in erased}
        return rows

    def erased(self) -> set[str]:
        return {k for k, h in self.households.items() if h["erased"]}

    def _households_of(self) -> dict[str, Any]:
        """For each table with household rows: its row -> the household it is about."""
        situation = {k: s.get("household_id") for k, s in self.situations.items()}
        return {"households": lambda k, v: k, "interviews": lambda k, v: v[0], "rehousings": lambda k, v: v[0],
                "situations": lambda k, v: v[0], "reviews": lambda k, v: situation.get(k[1])}

    def anonymised_rows(self) -> dict[str, Counter]:
        """What the anon_* tables must hold: the erased households' rows, ids left out
        (they are new random ones), as multisets."""
        rows, erased = self.all_rows(), self.erased()
        out = {}
        for table, of in self._households_of().items():
            width = {"households": 0, "reviews": 0}.get(table, 1)  # household id columns after the key
            out[table] = Counter(v[width:] if table != "reviews" else (*v, self.meetings[k[0]].held_on)
                                 for k, v in rows[table].items() if of(k, v) in erased)
        return out

    def all_rows(self) -> dict[str, dict]:
        return {
            "households": {k: (h.get("programme"), h.get("territory"), h.get("enrolled_on"), h.get("referent"),
                               h["closed_on"], h["erased"]) for k, h in self.households.items()},
            "interviews": {k: (i.get("household_id"), i.get("worker_id"), i.get("held_on"), i["cancelled"])
                           for k, i in self.interviews.items()},
            "workshops": {k: (w.residence, w.territory, w.theme.value, w.held_on, w.participants)
                          for k, w in self.workshops.items()},
            "rehousings": {k: (str(r.household_id), r.landlord, r.confirmed_on, r.youth, r.dalo_priority)
                           for k, r in self.rehousings.items()},
            "situations": {k: (s.get("household_id"), s.get("escalated_on"), s["resolved_on"])
                           for k, s in self.situations.items()},
            "meetings": {k: (m.held_on, m.territory) for k, m in self.meetings.items()},
            "reviews": {(k, str(r.situation_id)): (r.decision.value,) for k, m in self.meetings.items()
                        for r in m.reviewed},
        }


PROJECTION_QUERIES = {
    "households": "SELECT household_id::text, programme, territory, enrolled_on, referent_worker_id, closed_on,"
                  " erased_on IS NOT NULL FROM households",
    "interviews": "SELECT interview_id::text, household_id::text, worker_id, held_on, cancelled FROM interviews",
    "workshops": "SELECT workshop_id::text, residence, territory, theme, held_on, participants FROM workshops",
    "rehousings": "SELECT rehousing_id::text, household_id::text, landlord, confirmed_on, youth, dalo_priority"
                  " FROM rehousings",
    "situations": "SELECT situation_id::text, household_id::text, escalated_on, resolved_on FROM situations",
    "meetings": "SELECT meeting_id::text, held_on, territory FROM meetings",
    "reviews": "SELECT meeting_id::text, situation_id::text, decision FROM reviews",
}


# The anon_* tables, in `Reference.anonymised_rows`' shape (their ids are random).
ANONYMISED_QUERIES = {
    **{table: PROJECTION_QUERIES[table].replace(f"FROM {table}", f"FROM stats.anon_{table}")
       for table in ("households", "interviews", "rehousings", "situations")},
    "reviews": "SELECT decision, held_on FROM stats.anon_reviews",  # no meeting id: the meeting's date
}
ANONYMISED_ROW = {
    "households": lambda r: tuple(r[1:]),
    "interviews": lambda r: tuple(r[2:]),
    "rehousings": lambda r: tuple(r[2:]),
    "situations": lambda r: tuple(r[2:]),
    "reviews": tuple,
}


# ---------------------------------------------------------------------------- checks


@dataclass
class Findings:
    figures_exact: int = 0
    figures_total: int = 0
    figure_mismatches: list[str] = field(default_factory=list)
    facts_expected: int = 0
    lost: list[tuple] = field(default_factory=list)
    doubled: list[tuple] = field(default_factory=list)
    unexpected: list[tuple] = field(default_factory=list)
    republished: int = 0  # records carrying an id already seen: harmless
    unreadable: int = 0
    excused: list[str] = field(default_factory=list)  # doubles or letters a client re-send explains
    by_type: dict[str, Counter] = field(default_factory=dict)  # event type -> expected/seen/lost/doubled
    rows_exact: int = 0
    rows_total: int = 0
    row_mismatches: list[str] = field(default_factory=list)
    dead_letters: Counter = field(default_factory=Counter)  # (topic, kind) -> records

    @property
    def ok(self) -> bool:
        return (self.figures_exact == self.figures_total and not self.lost and not self.doubled
                and not self.unexpected and not self.unreadable and self.rows_exact == self.rows_total
                and not sum(self.dead_letters.values()))


async def check(stack: Stack, commands: list[Command], years: list[int]) -> Findings:
    findings = Findings()
    implied = expected_events(commands)
    events = [data for _, data in implied]
    reference = Reference(events)
    await _check_figures(stack, reference, events, years, findings)
    await _check_events(stack, implied, findings)
    await _check_rows(stack, reference, findings)
    await _check_dead_letters(stack, commands, findings)
    return findings


async def _check_figures(stack: Stack, reference: Reference, events: list[ev.EventData], years: list[int],
                         findings: Findings) -> None:
    def compare(where: str, expected: dict[str, int], got: dict[str, Any]) -> None:
        for figure in FIGURES:
            findings.figures_total += 1
            if got.get(figure) == expected.get(figure, 0):
                findings.figures_exact += 1
            else:
                findings.figure_mismatches.append(f"{where} {figure}: {got.get(figure)} (expected {expected[figure]})")

    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {stack.token}"},
                                     timeout=aiohttp.ClientTimeout(total=60)) as http:
        for year in years:
            expected = bilan(events, year)
            async with http.get(f"{stack.url('stats')}/v1/reports/activity", params={"year": year}) as response:
                compare(f"{year}", expected, await response.json())
            for by in DIMENSIONS:
                rows = reference.breakdown(year, by)
                totals = {f: sum(r[f] for r in rows.values()) for f in FIGURES}
                if totals != {f: expected[f] for f in FIGURES}:  # two readings of DESIGN.md disagree
                    raise AssertionError(f"chaos.verify's breakdown by {by} of {year} does not add up to "
                                         f"tests/reference.py: {totals} != {expected}")
                async with http.get(f"{stack.url('stats')}/v1/reports/activity/breakdown",
                                    params={"year": year, "by": by}) as response:
                    answer = await response.json()
                got = {row[by]: row for row in answer["rows"]}
                for value in sorted(set(rows) | set(got), key=lambda v: (v is None, v or "")):
                    compare(f"{year} by {by}={value}", rows.get(value, dict.fromkeys(FIGURES, 0)), got.get(value, {}))


async def _check_events(stack: Stack, implied: list[tuple[Command, ev.EventData]], findings: Findings) -> None:
    published = []
    records = await read_to_end(stack.bootstrap, EVENT_TOPICS)
    keys = KeyCache()  # personal fields open with the household's key while it exists
    conn = await asyncpg.connect(stack.database_url)
    try:
        await keys.load(conn, {r.key.decode(errors="replace") for r in records if r.key})
    finally:
        await conn.close()
    for record in records:
        try:
            envelope, data = decode(record.value or b"", keys.unsealer)
        except ContractError:
            findings.unreadable += 1
            continue
        published.append((envelope.id, data))
    compare_facts(implied, published, findings)


def erased_households(events: list[ev.EventData]) -> frozenset[str]:
    return frozenset(str(d.household_id) for d in events if isinstance(d, ev.HouseholdPersonalDataErased))


def compare_facts(implied: list[tuple[Command, ev.EventData]], published: list[tuple[Any, ev.EventData]],
                  findings: Findings) -> None:
    """Each implied fact against the CloudEvent ids published for it (module docstring)."""
    erased = erased_households([data for _, data in implied])
    expected: dict[tuple, Command] = {fact(data, erased): command for command, data in implied}
    seen: dict[tuple, set] = defaultdict(set)
    for event_id, data in published:
        key = fact(data, erased)
        if event_id in seen[key]:
            findings.republished += 1
        seen[key].add(event_id)
    findings.facts_expected = len(expected)
    for key in expected.keys() | seen.keys():
        counts = findings.by_type.setdefault(key[2], Counter())
        ids = len(seen.get(key, ()))
        counts["expected"] += key in expected
        counts["seen"] += ids > 0
        if key in expected and not ids:
            findings.lost.append(key)
            counts["lost"] += 1
        elif ids > 1 and key in expected and expected[key].resent:
            findings.excused.append(f"{key}: {ids} ids after a re-sent produce")
        elif ids > 1:
            findings.doubled.append(key)
            counts["doubled"] += 1
        if key not in expected and ids:
            findings.unexpected.append(key)


async def _check_rows(stack: Stack, reference: Reference, findings: Findings) -> None:
    conn = await asyncpg.connect(stack.database_url)
    try:
        generation = await conn.fetchval("SELECT current FROM stats.generation")
        await conn.execute(f'SET search_path TO "stats_g{int(generation)}"')
        for table, expected in reference.projection_rows().items():
            width = 2 if table == "reviews" else 1
            got = {(tuple(r[:width]) if width > 1 else r[0]): tuple(r[width:])
                   for r in await conn.fetch(PROJECTION_QUERIES[table])}
            for key in expected.keys() | got.keys():
                findings.rows_total += 1
                if expected.get(key) == got.get(key):
                    findings.rows_exact += 1
                elif len(findings.row_mismatches) < 200:
                    findings.row_mismatches.append(f"{table} {key}: {got.get(key)} (expected {expected.get(key)})")
        # What is left of erased households: the same rows under new ids.
        for table, expected_rows in reference.anonymised_rows().items():
            got_rows = Counter(ANONYMISED_ROW[table](r) for r in await conn.fetch(ANONYMISED_QUERIES[table]))
            findings.rows_total += 1
            if got_rows == expected_rows:
                findings.rows_exact += 1
            else:
                findings.row_mismatches.append(f"anon_{table}: {sorted(got_rows.items())[:5]}..."
                                               f" (expected {sorted(expected_rows.items())[:5]}...)")
    finally:
        await conn.close()


async def _check_dead_letters(stack: Stack, commands: list[Command], findings: Findings) -> None:
    resent = {(c.name, c.key) for c in commands if c.resent}
    for record in await read_to_end(stack.bootstrap, DEAD_LETTER_TOPICS):
        headers = {k: v.decode(errors="replace") for k, v in record.headers or ()}
        kind = headers.get(DLQ_ERROR_KIND, "?")
        name = _command_name(record.value)
        if kind == "conflict" and (name, (record.key or b"").decode()) in resent:
            findings.excused.append(f"{record.topic}: {name} re-sent after a failed produce, refused again")
            continue
        findings.dead_letters[(record.topic, f"{name or '?'} {kind}")] += 1


def _command_name(value: bytes | None) -> str | None:
    try:
        return json.loads(value or b"").get("command")
    except (ValueError, AttributeError):
        return None
