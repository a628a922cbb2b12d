"""Poison records on the real broker (issue 11): no record stops a consumer.

Every consumer (intake's, casework's and veille's command consumers, the household
replicas of casework and veille, stats' projector) must dead-letter what it cannot read,
with the error in an `alfi-error-kind` header and the payload as sent, and go on: the
next valid record of the same partition is applied, and every runtime stays ready.

- `test_issue_11_reproductions`: the records the issue reports, on `alfi.intake.events`
  and on the three command topics, then valid records behind them.
- `test_fuzzed_records_never_stop_a_consumer`: hypothesis generates random bytes,
  mutations of valid events and commands, and now and then a valid one, each with a
  random key and random headers; all the examples of a run are produced in one batch,
  then one valid record per topic, and everything is checked once at the end.
- `test_a_malformed_correlationid_header_does_not_refuse_a_command`: a bug the fuzzing
  found (a Kafka command with a correlationid header that is not a token was refused,
  where HTTP replaces a malformed X-Correlation-ID); fixed, kept as a regression test.

All the records of a topic in a test go to one partition, the one the last valid record
lands on, so that this record being applied proves the consumer went past every poison
(a sanity check asserts where intake's relay put it). Years 1981, 1976 and 1971 are this
module's: its households are enrolled in one and closed the next, so no other test's year
sees them (a household left open would be followed in every later year), and figures are
compared with those read when the test starts.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import HealthCheck, Phase, given, settings, strategies as st
from pydantic import TypeAdapter, ValidationError

from alfi_contracts import ContractError, decode, encode, make_event
from alfi_contracts.commands import command_message_union
from alfi_contracts.envelope import read
from alfi_contracts.topics import (
    DLQ_ERROR_KIND, DLQ_SOURCE_OFFSET, DLQ_SOURCE_PARTITION, DLQ_SOURCE_TOPIC, PARTITIONS, dead_letter_topic,
)
from services.common.kafka import read_to_end
from tests.integration import events as e
from tests.support import wait_until

EVENTS = "alfi.intake.events"
COMMANDS = {"intake": "alfi.intake.commands", "casework": "alfi.casework.commands",
            "veille": "alfi.veille.commands"}
TOPICS = (EVENTS, *COMMANDS.values())
# How many dead letters one poison gives: every consumer of a topic writes its own.
READERS = {EVENTS: 3, **{topic: 1 for topic in COMMANDS.values()}}  # stats + two replicas; one bus
CONSUMERS = {
    "intake": {"alfi-intake-commands", "alfi-intake-contacts"},  # contacts: the retention clock
    "casework": {"alfi-casework-commands", "alfi-casework-households"},
    "veille": {"alfi-veille-commands", "alfi-veille-households"},
    "stats": {"projector"},
}
WAIT = 90.0  # seconds for anything asynchronous to show (usually well under 5)


# ---------------------------------------------------------------------------- records


@dataclass
class Record:
    """One record to produce, and what must become of it."""

    topic: str
    partition: int
    value: bytes | None
    label: str
    key: bytes | None = b"poison"
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)
    poison: bool = True  # dead-lettered by every reader; else applied, never dead-lettered
    offset: int | None = None  # once produced

    def __repr__(self) -> str:  # short: a failure lists many of them
        value = self.value if self.value is None or len(self.value) <= 60 else self.value[:60] + b"..."
        return (f"<{self.label} {self.topic}:{self.partition}:{self.offset} value={value!r}"
                f" headers={self.headers!r}>")


def partition_of(key: bytes) -> int:
    """Where the platform's producers (aiokafka's default partitioner) put this key."""
    partitions = list(range(PARTITIONS))
    return DefaultPartitioner()(key, partitions, partitions)


async def produce(bootstrap: str, records: list[Record]) -> None:
    """Produce in order (one idempotent producer), noting each record's offset."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(r.topic, r.value, key=r.key, partition=r.partition, headers=r.headers)
                   for r in records]
        for record, metadata in zip(records, await asyncio.gather(*futures), strict=True):
            assert (metadata.topic, metadata.partition) == (record.topic, record.partition)
            record.offset = metadata.offset
    finally:
        await producer.stop()


def command(name: str, **data: Any) -> bytes:
    return json.dumps({"command": name, "data": data}).encode()


def enrol_command(household: str, year: int) -> bytes:
    return command("enrol_household", household_id=household, programme="fnavdl", territory="bretagne",
                   referent_worker_id="sw-011", enrolled_on=f"{year}-04-01", youth=False, dalo_priority=False,
                   adults=1, children=1)


def interview_command(household: str, interview: str, year: int) -> bytes:
    return command("record_interview", interview_id=interview, household_id=household, worker_id="sw-012",
                   held_on=f"{year}-05-02", mode="phone", topics=["rights"], duration_minutes=20)


def escalate_command(household: str, situation: str, year: int) -> bytes:
    return command("escalate_situation", situation_id=situation, household_id=household,
                   escalated_on=f"{year}-06-03", severity="serious", reasons=["isolation"])


def workshop_command(workshop: str, year: int, participants: int) -> bytes:
    return command("record_workshop", workshop_id=workshop, residence="rja-rennes", territory="bretagne",
                   theme="budget", held_on=f"{year}-07-04", participants=participants)


def huge_version_event() -> bytes:
    """A valid-looking CloudEvent whose dataschema version has 5,000 digits."""
    body = json.loads(encode(make_event(e.household(date(1981, 2, 3)))))
    body["dataschema"] = "urn:alfi:schema:household.enrolled:v" + "1" * 5000
    return json.dumps(body).encode()


# The byte poisons of the issue, for every topic: label -> value.
BYTE_POISONS: dict[str, bytes | None] = {
    "deep-brackets": b"[" * 5000,
    "huge-dataschema-version": huge_version_event(),
    "no-value": None,
    "not-utf8": b"\xff\xfe\xfd\x80\xc3\x28 not utf-8 \xa0\xa1",
}


# ---------------------------------------------------------------------------- the platform


async def report(platform, year: int) -> dict:
    response = await platform.stats.get("/v1/reports/activity", params={"year": year},
                                        headers=platform.auth("reports:read"))
    assert response.status_code == 200, response.text
    return response.json()


async def settle(platform, year: int, expected: dict[str, int]) -> None:
    """Wait until stats' figures for `year` are exactly `expected` (those named)."""
    async def matches() -> bool:
        got = await report(platform, year)
        return all(got[k] == v for k, v in expected.items())

    try:
        await wait_until(matches, timeout=WAIT, interval=0.25)
    except AssertionError:
        raise AssertionError(f"stats never showed {expected} for {year}: {await report(platform, year)}") from None


async def replicated(platform, household: str) -> bool:
    counts = [await platform.runtimes[name].pool.fetchval(
        "SELECT count(*) FROM households WHERE household_id = $1", uuid.UUID(household))
        for name in ("casework", "veille")]
    return counts == [1, 1]


async def enrol_over_http(platform, household: str, year: int) -> None:
    body = {"household_id": household, "programme": "mous", "territory": "bretagne",
            "referent_worker_id": "sw-010", "enrolled_on": f"{year}-01-02", "youth": False,
            "dalo_priority": False, "adults": 2, "children": 0}
    response = await platform.intake.post("/v1/households", json=body, headers=platform.auth())
    assert response.status_code == 201, response.text


async def close_over_http(platform, households: Iterable[str], year: int) -> None:
    """Best effort (cleanup): close them in `year` so that no later year follows them."""
    for household in households:
        await platform.intake.post(f"/v1/households/{household}/closure",
                                   json={"closed_on": f"{year}-01-05", "outcome": "ended"}, headers=platform.auth())


async def row_count(platform, service: str, table: str, column: str, value: str) -> int:
    # table and column come from this module, never from input
    return await platform.runtimes[service].pool.fetchval(
        f"SELECT count(*) FROM {table} WHERE {column} = $1", uuid.UUID(value))


async def check_replication_over_http(platform, household: str, year: int) -> None:
    """The household is known to casework and veille: an interview and an escalation for
    it are accepted (201), not refused as not yet known (409)."""
    await wait_until(lambda: replicated(platform, household), timeout=WAIT)
    interview = await platform.casework.post("/v1/interviews", headers=platform.auth(), json={
        "household_id": household, "worker_id": "sw-013", "held_on": f"{year}-03-02", "mode": "office",
        "topics": ["housing"], "duration_minutes": 30})
    assert interview.status_code == 201, interview.text
    situation = await platform.veille.post("/v1/situations", headers=platform.auth(), json={
        "household_id": household, "escalated_on": f"{year}-03-03", "severity": "serious",
        "reasons": ["rent_arrears"]})
    assert situation.status_code == 201, situation.text


class Vigil:
    """Watches every runtime while a test runs, once all are ready (a platform just
    started is not caught up yet): readiness sampled every 0.2 s (any lapse of a required
    check is kept) and each consumer's restart count (a consumer that died and restarted
    between two samples still shows)."""

    def __init__(self, platform) -> None:
        self.runtimes = platform.runtimes
        self.restarts: dict[str, int] = {}
        self.lapses: list[tuple[str, dict[str, bool]]] = []
        self.task: asyncio.Task | None = None

    def _restarts(self) -> dict[str, int]:
        return {c.name: c.failures for runtime in self.runtimes.values() for c in runtime.consumers}

    async def _sample(self) -> None:
        while True:
            for name, runtime in self.runtimes.items():
                ok, checks = await runtime.readiness()
                if not ok or not all(v for k, v in checks.items() if k.startswith("consumer:")):
                    self.lapses.append((name, {k: v for k, v in checks.items() if not v}))
            await asyncio.sleep(0.2)

    async def _all_ready(self) -> bool:
        return all([(await runtime.readiness())[0] for runtime in self.runtimes.values()])

    async def __aenter__(self) -> Vigil:
        await wait_until(self._all_ready, timeout=WAIT)
        self.restarts = self._restarts()
        self.task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *exc_info) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    async def check(self) -> None:
        assert self.task is not None and not self.task.done(), "the readiness sampler stopped"
        for name, runtime in self.runtimes.items():
            ok, checks = await runtime.readiness()
            consumers = {k.removeprefix("consumer:") for k in checks if k.startswith("consumer:")}
            assert consumers == CONSUMERS[name], (name, checks)
            assert ok and all(checks[f"consumer:{c}"] for c in consumers), (name, checks)
            assert not any(c.gaps for c in runtime.consumers), (name, [c.gaps for c in runtime.consumers])
        assert self._restarts() == self.restarts, f"consumers restarted: {self.restarts} -> {self._restarts()}"
        assert not self.lapses, f"readiness lapsed: {self.lapses[:10]}"


async def dead_letters(bootstrap: str) -> dict[tuple[str, int, int], list]:
    """Every dead letter on the four topics' `.dlq`, by its source (topic, partition, offset)."""
    by_source: dict[tuple[str, int, int], list] = {}
    for letter in await read_to_end(bootstrap, [dead_letter_topic(t) for t in TOPICS]):
        headers = dict(letter.headers)
        if not {DLQ_SOURCE_TOPIC, DLQ_SOURCE_PARTITION, DLQ_SOURCE_OFFSET} <= headers.keys():
            continue  # not a consumer's dead letter (the relay's own refusals, say)
        source = (headers[DLQ_SOURCE_TOPIC].decode(), int(headers[DLQ_SOURCE_PARTITION]),
                  int(headers[DLQ_SOURCE_OFFSET]))
        assert letter.topic == dead_letter_topic(source[0]), letter
        by_source.setdefault(source, []).append(letter)
    return by_source


def letters_of(letters: dict, record: Record) -> list:
    return letters.get((record.topic, record.partition, record.offset), [])


async def await_dead_letters(bootstrap: str, records: list[Record]) -> dict:
    """Wait until each poison has one dead letter per reader of its topic; then check
    that none came for a valid record and that each keeps the payload as sent."""
    poisons = [r for r in records if r.poison]
    letters: dict = {}

    async def all_there() -> bool:
        nonlocal letters
        letters = await dead_letters(bootstrap)
        return all(len(letters_of(letters, r)) >= READERS[r.topic] for r in poisons)

    try:
        await wait_until(all_there, timeout=WAIT, interval=0.5)
    except AssertionError:
        missing = [(r, len(letters_of(letters, r))) for r in poisons if len(letters_of(letters, r)) < READERS[r.topic]]
        raise AssertionError(f"{len(missing)} poisons without all their dead letters: {missing[:10]}") from None
    await asyncio.sleep(1.0)  # a dead letter too many (or one for a valid record) would come now
    letters = await dead_letters(bootstrap)
    for record in records:
        got = letters_of(letters, record)
        if not record.poison:
            assert got == [], (record, [dict(d.headers) for d in got])
            continue
        assert len(got) == READERS[record.topic], (record, [dict(d.headers) for d in got])
        for letter in got:
            assert dict(letter.headers).get(DLQ_ERROR_KIND), (record, dict(letter.headers))
            # The payload as sent (a record without a value comes back empty).
            assert letter.value == record.value or (record.value is None and letter.value in (None, b"")), record
    return letters


def kinds(letters: dict, record: Record) -> set[str]:
    return {dict(d.headers)[DLQ_ERROR_KIND].decode() for d in letters_of(letters, record)}


# ---------------------------------------------------------------------------- 1. the issue


async def test_issue_11_reproductions(platform):
    year = 1981
    bootstrap = platform.bootstrap
    async with Vigil(platform) as vigil:
        before = await report(platform, year)
        known = str(uuid.uuid4())  # enrolled first: the valid casework and veille commands need it
        later = str(uuid.uuid4())  # enrolled over HTTP after every poison
        by_event = e.household(date(year, 2, 1))  # a valid event with a null-valued header
        by_command = str(uuid.uuid4())  # enrolled by a Kafka command with a null correlationid
        interview, situation = str(uuid.uuid4()), str(uuid.uuid4())
        try:
            await enrol_over_http(platform, known, year)
            await wait_until(lambda: replicated(platform, known), timeout=WAIT)

            target = partition_of(later.encode())  # where intake's relay will put `later`'s enrolment
            records = [Record(EVENTS, target, value, f"event/{label}") for label, value in BYTE_POISONS.items()]
            records.append(Record(EVENTS, target, encode(make_event(by_event)), "event/valid-null-header",
                                  key=by_event.key, headers=[("x", None)], poison=False))
            valid_commands = {"intake": enrol_command(by_command, year),
                              "casework": interview_command(known, interview, year),
                              "veille": escalate_command(known, situation, year)}
            for service, topic in COMMANDS.items():
                records += [Record(topic, target, value, f"{service}/{label}") for label, value in BYTE_POISONS.items()]
                records.append(Record(topic, target, command("adopt_household", household_id=known),
                                      f"{service}/unknown-command"))
                records.append(Record(topic, target, valid_commands[service], f"{service}/valid-null-correlationid",
                                      headers=[("correlationid", None)], poison=False))
            await produce(bootstrap, records)
            await enrol_over_http(platform, later, year)

            # The valid records behind the poisons were applied, each where it belongs.
            await check_replication_over_http(platform, later, year)
            await wait_until(lambda: replicated(platform, str(by_event.household_id)), timeout=WAIT)
            async def recorded_by_intake() -> bool:
                got = await platform.intake.get(f"/v1/households/{by_command}", headers=platform.auth())
                return got.status_code == 200

            await wait_until(recorded_by_intake, timeout=WAIT)
            await wait_until(lambda: _is(row_count(platform, "casework", "interviews", "interview_id", interview), 1),
                             timeout=WAIT)
            await wait_until(lambda: _is(row_count(platform, "veille", "situations", "situation_id", situation), 1),
                             timeout=WAIT)
            # stats counts the four households (known, later, by_event, by_command), the two
            # interviews and escalations (over Kafka for `known`, over HTTP for `later`).
            await settle(platform, year, {"households_followed": before["households_followed"] + 4,
                                          "interviews_held": before["interviews_held"] + 2,
                                          "situations_escalated": before["situations_escalated"] + 2})

            # `later`'s enrolment came after the event poisons, on their partition.
            [enrolment] = [r for r in await read_to_end(bootstrap, [EVENTS]) if r.key == later.encode()]
            assert enrolment.partition == target
            assert enrolment.offset > max(r.offset for r in records if r.topic == EVENTS)

            letters = await await_dead_letters(bootstrap, records)
            await vigil.check()
        finally:
            await close_over_http(platform, [known, later, by_command], year + 1)
            await e.publish(bootstrap, [e.closed(by_event.household_id, date(year + 1, 1, 5))])

    # Each poison was read by the contracts and refused for what it is, not isolated as a
    # crash of its consumer ("unprocessable").
    expected = {"deep-brackets": "undecodable", "huge-dataschema-version": "invalid_envelope",
                "no-value": "undecodable", "not-utf8": "undecodable"}
    for record in records:
        if record.poison:
            service, label = record.label.split("/")
            want = {expected[label]} if service == "event" else {"invalid"}
            assert kinds(letters, record) == want, (record, kinds(letters, record))


async def _is(value, expected) -> bool:
    return await value == expected


# ---------------------------------------------------------------------------- 2. fuzz

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)


def _containers(inner: st.SearchStrategy) -> st.SearchStrategy:
    return st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)


JSON_VALUES = st.recursive(JSON_SCALARS, _containers, max_leaves=6)
# JSON text that json.dumps would not write: huge numbers, deep nesting, lone surrogates, NUL.
RAW_FRAGMENTS = st.sampled_from([
    "1" * 5000, "-" + "9" * 4400, "1e999999", "NaN", "-Infinity", "[" * 3000 + "]" * 3000,
    '"\\ud800"', '"\\u0000"', '{"\\u0000": 1}', '"' + "x" * 70_000 + '"', "{}", "[]", '""',
])
HEADER_KEYS = st.sampled_from(["correlationid", "causationid", "content-type", "x", "", "ce_id",
                               "alfi-error-kind"]) | st.text(max_size=12)
HEADER_VALUES = (st.none() | st.binary(max_size=24) | st.text(max_size=24).map(str.encode)
                 | st.sampled_from([b"\xff\xfe", b"\x00", b"\xc3\x28", "é".encode("latin-1")]))
HEADERS = st.lists(st.tuples(HEADER_KEYS, HEADER_VALUES), max_size=4)
KEYS = st.none() | st.binary(max_size=16)


@st.composite
def mutation(draw, value: bytes) -> bytes:
    """A valid encoded event or command, altered one to three times."""
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "replace-field"]))
        at = draw(st.integers(0, max(len(value) - 1, 0)))
        if how == "flip" and value:
            value = value[:at] + bytes([value[at] ^ draw(st.integers(1, 255))]) + value[at + 1:]
        elif how == "insert":
            value = value[:at] + draw(st.binary(min_size=1, max_size=8)) + value[at:]
        elif how == "delete":
            value = value[:at] + value[at + draw(st.integers(1, 8)):]
        elif how == "truncate":
            value = value[:at]
        else:
            value = replace_field(draw, value)
    return value


def replace_field(draw, value: bytes) -> bytes:
    """One field (top level, or one level down) replaced by random JSON or a raw fragment."""
    try:
        document = json.loads(value)
    except (ValueError, RecursionError):
        return value  # an earlier mutation broke it already
    if not isinstance(document, dict) or not document:
        return value
    holder = document
    name = draw(st.sampled_from(sorted(holder)))
    if isinstance(holder[name], dict) and holder[name] and draw(st.booleans()):
        holder = holder[name]
        name = draw(st.sampled_from(sorted(holder)))
    marker = "\x00fuzz\x00"
    holder[name] = marker
    fragment = draw(RAW_FRAGMENTS) if draw(st.booleans()) else json.dumps(draw(JSON_VALUES))
    return json.dumps(document).replace(json.dumps(marker), fragment, 1).encode()


COMMAND_MESSAGES = {topic: TypeAdapter(command_message_union(service)) for service, topic in COMMANDS.items()}


def readable(topic: str, value: bytes | None) -> bool:
    """Whether a consumer of `topic` would take this value as a valid record (then it is
    not junk, and is not produced: a valid mutant could change another test's figures)."""
    if topic == EVENTS:
        outcomes = []
        for reader in (decode, read):  # the replicas use decode, stats read: they must agree
            try:
                reader(value or b"")
                outcomes.append(True)
            except ContractError:
                outcomes.append(False)
        assert outcomes[0] == outcomes[1], f"decode and read disagree on {value!r}"
        return outcomes[0]
    try:
        COMMAND_MESSAGES[topic].validate_json(value or b"")
        return True
    except ValidationError:
        return False


def bases(year: int, known: str) -> dict[str, list[bytes]]:
    """Valid values to mutate, per topic."""
    h = e.household(date(year, 2, 1))
    s = e.escalated(h.household_id, date(year, 3, 1))
    events = [e.household(date(year, 1, 3)), e.closed(h.household_id, date(year, 9, 9)),
              e.interview(h.household_id, date(year, 4, 4)), e.meeting(date(year, 5, 5), [s.situation_id])]
    return {
        EVENTS: [encode(make_event(d, correlation_id="fuzz-1", causation_id="fuzz:0:1")) for d in events],
        COMMANDS["intake"]: [enrol_command(str(uuid.uuid4()), year),
                             command("close_accompaniment", household_id=known, closed_on=f"{year}-08-08",
                                     outcome="ended")],
        COMMANDS["casework"]: [interview_command(known, str(uuid.uuid4()), year),
                               workshop_command(str(uuid.uuid4()), year, 6)],
        COMMANDS["veille"]: [escalate_command(known, str(uuid.uuid4()), year)],
    }


# A correlationid header that is UTF-8 but not a token: a valid command carrying one is
# dead-lettered (the bug `test_a_malformed_correlationid_header_does_not_refuse_a_command`
# shows); the valid records of the fuzz test leave it out, the junk keeps it.
_TOKEN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def refused_correlation(headers: list[tuple[str, bytes | None]]) -> bool:
    for key, value in headers:
        if key == "correlationid" and value:
            try:
                return not _TOKEN.match(value.decode())
            except UnicodeDecodeError:
                return False
    return False


@dataclass
class Valid:
    """A valid record among the junk, and the fact it must leave."""

    record: Record
    service: str
    table: str
    column: str
    id: str


def valid_value(topic: str, year: int, known: str, participants: int) -> tuple[bytes, str, str, str, str]:
    """A fresh valid value for `topic`: (value, service, table, id column, id)."""
    new = str(uuid.uuid4())
    if topic == EVENTS:  # a household enrolled by an event (closed when the test ends)
        data = e.household(date(year, 2, 2), household_id=uuid.UUID(new))
        return encode(make_event(data)), "casework", "households", "household_id", new
    if topic == COMMANDS["intake"]:
        return enrol_command(new, year), "intake", "households", "household_id", new
    if topic == COMMANDS["casework"]:
        return workshop_command(new, year, participants), "casework", "workshops", "workshop_id", new
    return escalate_command(known, new, year), "veille", "situations", "situation_id", new


# Generation runs in a thread while the platform's tasks use `random` (backoff jitter) on
# the loop: hypothesis sees the global random state move during a draw and warns. Its own
# draws do not use that state, so the runs stay repeatable.
@pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")
async def test_fuzzed_records_never_stop_a_consumer(platform):
    year = 1976
    bootstrap = platform.bootstrap
    known = str(uuid.uuid4())  # for the valid casework and veille commands
    later = str(uuid.uuid4())  # enrolled over HTTP after all the junk
    target = partition_of(later.encode())  # every record of the run goes to this partition
    bases_by_topic = bases(year, known)
    batch: list[Record] = []
    among: list[Valid] = []  # the valid records with random headers among the junk
    skipped = Counter()

    @settings(max_examples=25, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate, Phase.shrink],
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.data_too_large])
    @given(data=st.data())
    def example(data) -> None:
        """One record per topic (so the topics alternate): random bytes, a mutant of a
        valid value, or now and then a valid value; random key and headers."""
        for topic in TOPICS:
            kind = data.draw(st.sampled_from(["bytes", "mutant", "mutant", "valid"]), label="kind")
            headers = data.draw(HEADERS, label="headers")
            key = data.draw(KEYS, label="key")
            if kind == "valid":
                if refused_correlation(headers):
                    headers = [(k, v) for k, v in headers if k != "correlationid"]
                participants = data.draw(st.integers(0, 30), label="participants")
                value, service, table, column, new = valid_value(topic, year, known, participants)
                record = Record(topic, target, value, "valid-random-headers", key=key, headers=headers,
                                poison=False)
                among.append(Valid(record, service, table, column, new))
                batch.append(record)
                continue
            if kind == "bytes":
                value = data.draw(st.none() | st.binary(max_size=200), label="value")
            else:
                value = data.draw(mutation(data.draw(st.sampled_from(bases_by_topic[topic]), label="base")),
                                  label="mutant")
            if readable(topic, value):  # a valid mutant: not junk, and not produced
                skipped[topic] += 1
                continue
            if key is None and value is None:
                key = b""  # Kafka takes a record without a value, not one without key and value
            batch.append(Record(topic, target, value, "fuzz", key=key, headers=headers))

    # Generates the batch (and fails here, shrunk, if decode and read disagree); in a
    # thread, so that the platform's consumers keep polling and heartbeating meanwhile.
    started = time.monotonic()
    await asyncio.to_thread(example)
    junk = [r for r in batch if r.poison]
    summary = (f"{len(junk)} junk and {len(among)} valid records generated in {time.monotonic() - started:.1f} s;"
               f" junk by topic {dict(Counter(r.topic for r in junk))}; valid mutants skipped {dict(skipped)}")
    print(summary)
    assert {r.topic for r in junk} == set(TOPICS) and len(junk) >= 40, summary

    async with Vigil(platform) as vigil:
        before = await report(platform, year)
        letters_before = sum(len(v) for v in (await dead_letters(bootstrap)).values())
        by_command = str(uuid.uuid4())
        interview, situation, workshop = (str(uuid.uuid4()) for _ in range(3))
        try:
            await enrol_over_http(platform, known, year)
            await wait_until(lambda: replicated(platform, known), timeout=WAIT)
            # After the batch, one valid record per command topic (and intake's enrolment
            # event for `later`), on the batch's partition.
            last = [
                Valid(Record(COMMANDS["intake"], target, enrol_command(by_command, year), "last", poison=False),
                      "intake", "households", "household_id", by_command),
                Valid(Record(COMMANDS["casework"], target, interview_command(known, interview, year), "last",
                             poison=False), "casework", "interviews", "interview_id", interview),
                Valid(Record(COMMANDS["casework"], target, workshop_command(workshop, year, 7), "last",
                             poison=False), "casework", "workshops", "workshop_id", workshop),
                Valid(Record(COMMANDS["veille"], target, escalate_command(known, situation, year), "last",
                             poison=False), "veille", "situations", "situation_id", situation),
            ]
            await produce(bootstrap, batch + [v.record for v in last])
            await enrol_over_http(platform, later, year)

            await check_replication_over_http(platform, later, year)

            async def applied() -> list[Valid]:
                missing = [v for v in among + last
                           if await row_count(platform, v.service, v.table, v.column, v.id) != 1]
                missing += [v for v in among if v.record.topic == EVENTS and not await replicated(platform, v.id)]
                return missing

            try:
                await wait_until(lambda: _is(applied(), []), timeout=WAIT)
            except AssertionError:
                raise AssertionError(f"valid records never applied: {[v.record for v in await applied()]}") from None
            count = Counter(v.record.topic for v in among)
            households = 3 + count[EVENTS] + count[COMMANDS["intake"]]  # known, later, by_command and those
            participants = sum(json.loads(v.record.value)["data"]["participants"]
                               for v in among if v.record.topic == COMMANDS["casework"])
            await settle(platform, year, {
                "households_followed": before["households_followed"] + households,
                "interviews_held": before["interviews_held"] + 2,
                "situations_escalated": before["situations_escalated"] + 2 + count[COMMANDS["veille"]],
                "workshops_held": before["workshops_held"] + 1 + count[COMMANDS["casework"]],
                "workshop_participants": before["workshop_participants"] + 7 + participants})
            [enrolment] = [r for r in await read_to_end(bootstrap, [EVENTS]) if r.key == later.encode()]
            assert enrolment.partition == target
            assert enrolment.offset > max(r.offset for r in batch if r.topic == EVENTS)

            letters = await await_dead_letters(bootstrap, batch + [v.record for v in last])
            grown = sum(len(v) for v in letters.values()) - letters_before
            assert grown >= sum(READERS[r.topic] for r in junk), (grown, summary)
            await vigil.check()
        finally:
            await close_over_http(platform, [known, later, by_command] + [
                v.id for v in among if v.record.topic == COMMANDS["intake"]], year + 1)
            await e.publish(bootstrap, [e.closed(uuid.UUID(v.id), date(year + 1, 1, 5))
                                        for v in among if v.record.topic == EVENTS])


async def test_a_malformed_correlationid_header_does_not_refuse_a_command(platform):
    year = 1971
    refused, control, over_http = (str(uuid.uuid4()) for _ in range(3))
    try:
        # Over HTTP, a malformed correlation id is replaced, and the command recorded.
        body = json.loads(enrol_command(over_http, year))["data"]
        response = await platform.intake.post("/v1/households", json=body,
                                              headers={**platform.auth(), "X-Correlation-ID": "not a token"})
        assert response.status_code == 201, response.text
        records = [Record(COMMANDS["intake"], 0, enrol_command(refused, year), "malformed-correlationid",
                          headers=[("correlationid", b"not a token")], poison=False),
                   Record(COMMANDS["intake"], 0, enrol_command(control, year), "control", poison=False)]
        await produce(platform.bootstrap, records)
        await wait_until(lambda: _is(row_count(platform, "intake", "households", "household_id", control), 1),
                         timeout=WAIT)  # read past the first one
        letters = await dead_letters(platform.bootstrap)
        assert letters_of(letters, records[0]) == [], [dict(d.headers) for d in letters_of(letters, records[0])]
        got = await platform.intake.get(f"/v1/households/{refused}", headers=platform.auth())
        assert got.status_code == 200, got.text
    finally:
        await close_over_http(platform, [refused, control, over_http], year + 1)
