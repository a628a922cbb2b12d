"""Group commit (services/common/group_commit.py) and the Kafka poll's single pass
(CommandBus.handle_kafka_batch): commands sharing a transaction are answered as if each
had come alone. A refused command fails alone (audited as refused); every accepted one
has its event in the outbox and its audit row."""

from __future__ import annotations

import asyncio
import json
from uuid import UUID, uuid4

from aiokafka import AIOKafkaProducer

from alfi_contracts.commands import EnrolHousehold
from services.common.commands import Context
from services.common.errors import Conflict
from services.common.group_commit import GroupCommit
from tests.support import wait_until


def enrolment(household: UUID, children: int = 2) -> EnrolHousehold:
    return EnrolHousehold(household_id=household, programme="fnavdl", territory="bretagne",
                          referent_worker_id="sw-017", enrolled_on="2023-01-09", youth=False,
                          dalo_priority=False, adults=1, children=children)


async def recorded(pool, household: UUID) -> tuple[int, list[str]]:
    """The household's outbox rows and its audit outcomes."""
    events = await pool.fetchval("SELECT count(*) FROM intake.outbox WHERE key = $1", str(household).encode())
    outcomes = [r["outcome"] for r in await pool.fetch(
        "SELECT outcome FROM audit.events WHERE household_id = $1 AND action = 'enrol_household' ORDER BY id",
        household)]
    return events, outcomes


async def test_a_refused_command_in_a_group_fails_alone(platform):
    runtime = platform.runtimes["intake"]
    taken = uuid4()
    await runtime.bus.execute(runtime.pool, "enrol_household", enrolment(taken), Context.caused_by("t", None))
    group = GroupCommit(runtime.bus, runtime.pool, parallel=1)
    fresh = [uuid4() for _ in range(5)]
    commands = [enrolment(h) for h in fresh[:2]] + [enrolment(taken, children=5)] + [enrolment(h) for h in fresh[2:]]
    answers = await asyncio.gather(
        *(group.execute("enrol_household", c, Context.caused_by(f"t{i}", None)) for i, c in enumerate(commands)),
        return_exceptions=True)

    assert isinstance(answers[2], Conflict)
    assert [a.created for i, a in enumerate(answers) if i != 2] == [True] * 5
    for household in fresh:
        assert await recorded(runtime.pool, household) == (1, ["accepted"])
    assert await recorded(runtime.pool, taken) == (1, ["accepted", "rejected:conflict"])


async def test_a_group_records_every_command_with_its_event_and_audit_row(platform):
    runtime = platform.runtimes["intake"]
    group = GroupCommit(runtime.bus, runtime.pool, parallel=2, max_group=8)
    households = [uuid4() for _ in range(40)]
    # One of them twice with the same content: a replay within the group answers 200.
    commands = [enrolment(h) for h in households] + [enrolment(households[0])]
    answers = await asyncio.gather(
        *(group.execute("enrol_household", c, Context.caused_by(f"g{i}", None)) for i, c in enumerate(commands)))

    assert sorted(a.created for a in answers) == [False] + [True] * 40
    for household in households[1:]:
        assert await recorded(runtime.pool, household) == (1, ["accepted"])
    assert await recorded(runtime.pool, households[0]) == (1, ["accepted", "accepted"])
    assert not group.drainers  # nothing left running once the queue is empty


async def test_a_kafka_poll_with_a_refused_command_applies_the_others(platform):
    runtime = platform.runtimes["intake"]
    taken, fresh = uuid4(), [uuid4() for _ in range(4)]
    await runtime.bus.execute(runtime.pool, "enrol_household", enrolment(taken), Context.caused_by("t", None))
    messages = [{"command": "enrol_household", "data": enrolment(h).model_dump(mode="json")} for h in fresh[:2]]
    messages.append({"command": "enrol_household", "data": enrolment(taken, children=5).model_dump(mode="json")})
    messages += [{"command": "enrol_household", "data": enrolment(h).model_dump(mode="json")} for h in fresh[2:]]
    # One key, one partition, sent together: one poll (most likely), in this order.
    producer = AIOKafkaProducer(bootstrap_servers=platform.bootstrap, acks="all", enable_idempotence=True,
                                linger_ms=50)
    await producer.start()
    try:
        for message in messages:
            await producer.send("alfi.intake.commands", json.dumps(message).encode(), key=str(taken).encode())
        await producer.flush()
    finally:
        await producer.stop()

    async def applied() -> bool:
        return all([(await recorded(runtime.pool, h))[0] == 1 for h in fresh])

    await wait_until(applied)
    for household in fresh:
        assert await recorded(runtime.pool, household) == (1, ["accepted"])
    await wait_until(lambda: _refused(runtime.pool, taken))


async def _refused(pool, household: UUID) -> bool:
    return (await recorded(pool, household))[1] == ["accepted", "rejected:conflict"]

