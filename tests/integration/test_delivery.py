"""Commands from Kafka with dead letters, and the outbox's guarantees under faults."""

from __future__ import annotations

import json
from collections import Counter
from uuid import UUID, uuid4

import pytest

from alfi_contracts import decode
from services.common.kafka import make_broker
from services.common.outbox import OutboxRelay
from tests.support import wait_until
from tests.integration.test_intake import enrolment
from tests.integration.platform import produce, read_topic


async def send(bootstrap: str, topic: str, values: list[bytes]) -> None:
    await produce(bootstrap, topic, values, key=b"k")  # one partition: order matters


def interview_command(household: str) -> bytes:
    """A record_interview Kafka command for that household, as an upstream sends it."""
    return json.dumps({"command": "record_interview", "data": {
        "interview_id": str(uuid4()), "household_id": household, "worker_id": "sw-017", "held_on": "2023-02-02",
        "mode": "phone", "topics": ["rights"], "duration_minutes": 20}}).encode()


async def test_commands_topic_runs_the_same_rules_and_dead_letters_the_rest(platform):
    good = enrolment()
    conflicting = enrolment(household_id=good["household_id"], children=5)
    values = [
        b"{not json",
        json.dumps({"command": "enrol_household", "data": enrolment(programme="hotel")}).encode(),
        json.dumps({"command": "adopt_household", "data": {}}).encode(),
        json.dumps({"command": "enrol_household", "data": good}).encode(),
        json.dumps({"command": "enrol_household", "data": good}).encode(),  # replay: no-op
        json.dumps({"command": "enrol_household", "data": conflicting}).encode(),
    ]
    await send(platform.bootstrap, "alfi.intake.commands", values)

    async def recorded() -> bool:
        got = await platform.intake.get(f"/v1/households/{good['household_id']}", headers=platform.auth())
        return got.status_code == 200

    await wait_until(recorded)

    async def dead_letters():
        return [r for r in await read_topic(platform.bootstrap, "alfi.intake.commands.dlq")
                if r.value in values]

    await wait_until(lambda: _at_least(dead_letters, 4))
    letters = {r.value: {k: v.decode() for k, v in r.headers} for r in await dead_letters()}
    assert letters[values[0]]["alfi-error-kind"] == "invalid"
    assert "programme" in letters[values[1]]["alfi-error-detail"]
    assert letters[values[2]]["alfi-error-kind"] == "invalid"
    assert letters[values[5]]["alfi-error-kind"] == "conflict"
    assert values[3] not in letters and values[4] not in letters
    assert all(h["alfi-source-topic"] == "alfi.intake.commands" for h in letters.values())
    events = [r for r in await read_topic(platform.bootstrap, "alfi.intake.events")
              if r.key == good["household_id"].encode()]
    assert len(events) == 1  # the replayed command emitted nothing


async def _at_least(fetch, n: int) -> bool:
    return len(await fetch()) >= n


async def test_kafka_down_commands_accepted_and_events_arrive_once_in_order(platform, stoppable_kafka):
    households = [enrolment() for _ in range(5)]
    stoppable_kafka.stop()
    try:
        for body in households:
            response = await platform.intake.post("/v1/households", json=body, headers=platform.auth())
            assert response.status_code == 201
            closure = await platform.intake.post(f"/v1/households/{body['household_id']}/closure",
                                                 json={"closed_on": "2023-12-31", "outcome": "rehoused"},
                                                 headers=platform.auth())
            assert closure.status_code == 200
        pending = await platform.runtimes["intake"].pool.fetchval(
            "SELECT count(*) FROM outbox WHERE published_at IS NULL")
        assert pending >= 10
    finally:
        stoppable_kafka.start()
    keys = {b["household_id"].encode() for b in households}

    async def mine():
        return [r for r in await read_topic(platform.bootstrap, "alfi.intake.events") if r.key in keys]

    await wait_until(lambda: _at_least(mine, 10), timeout=90)
    records = await mine()
    events = [decode(r.value)[0] for r in records]
    assert len(events) == len({e.id for e in events}) == 10  # exactly once
    by_household = {}
    for event in events:
        by_household.setdefault(event.subject, []).append(event.type)
    assert all(types == ["household.enrolled", "household.accompaniment_closed"]
               for types in by_household.values())


class CrashAfterPublish(Exception):
    pass


async def test_relay_killed_mid_batch_loses_nothing_and_duplicates_keep_their_id(platform):
    """The relay publishes a batch and dies before marking it: its successor publishes
    the batch again. Nothing is lost; every duplicate carries the same CloudEvent id."""
    intake = platform.runtimes["intake"]
    intake.relay_task = next(t for t in intake.tasks if t.get_name() == "intake-relay")
    intake.relay_task.cancel()  # stop the live relay so the batch stays pending
    try:
        households = [enrolment() for _ in range(20)]
        for body in households:
            assert (await platform.intake.post("/v1/households", json=body, headers=platform.auth())).status_code == 201
        crashing = OutboxRelay(intake.pool, "intake", platform.bootstrap, "test-crashing-relay", batch_size=8)
        real_execute = intake.pool.execute

        class CrashingPool:
            def __getattr__(self, name):
                return getattr(intake.pool, name)

            async def execute(self, query, *args):
                if query.startswith("UPDATE outbox"):
                    raise CrashAfterPublish
                return await real_execute(query, *args)

        crashing.pool = CrashingPool()
        broker = make_broker(platform.bootstrap, "test-crashing-relay")
        await broker.start()
        try:
            with pytest.raises(CrashAfterPublish):
                await crashing.publish_batch(broker)  # 8 events out, none marked
        finally:
            await broker.stop()
    finally:
        restarted = OutboxRelay(intake.pool, "intake", platform.bootstrap, "intake-relay")
        intake.relay = restarted
        import asyncio

        intake.tasks.append(asyncio.create_task(restarted.run(), name="intake-relay"))
    keys = {b["household_id"].encode() for b in households}

    async def mine():
        return [r for r in await read_topic(platform.bootstrap, "alfi.intake.events") if r.key in keys]

    await wait_until(lambda: _at_least(mine, 28))
    ids = Counter(decode(r.value)[0].id for r in await mine())
    assert len(ids) == 20  # every event arrived
    assert sorted(ids.values(), reverse=True)[:8] == [2] * 8 and set(ids.values()) <= {1, 2}


async def test_a_dead_letter_is_listed_and_redriven_once_its_cause_is_fixed(platform):
    from services.common.deadletters import read_all, redrive

    body = enrolment()
    household = body["household_id"]
    command = interview_command(household)
    await send(platform.bootstrap, "alfi.casework.commands", [command])  # household not known yet

    async def listed():
        return [d for d in await read_all(platform.bootstrap, ["alfi.casework.commands.dlq"]) if d.value == command]

    await wait_until(lambda: _at_least(listed, 1))
    [letter] = await listed()
    assert letter.headers["alfi-error-kind"] == "household_not_yet_known"
    assert "sw-017" not in letter.line() and "rights" not in letter.line()  # never the payload
    assert (await platform.intake.post("/v1/households", json=body, headers=platform.auth())).status_code == 201

    async def replicated() -> bool:
        return await platform.runtimes["casework"].pool.fetchval(
            "SELECT count(*) FROM households WHERE household_id = $1", UUID(household)) == 1

    await wait_until(replicated)
    await redrive(platform.bootstrap, "alfi.casework.commands.dlq", {(letter.partition, letter.offset)})

    async def recorded() -> bool:
        return await platform.runtimes["casework"].pool.fetchval(
            "SELECT count(*) FROM interviews WHERE household_id = $1", UUID(household)) == 1

    await wait_until(recorded)
