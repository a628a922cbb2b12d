"""Faults told truthfully, on the real stack: a Kafka command waits for its household's
replication instead of failing at once; a race answers 409; readiness and gauges say
what is down (the broker, a consumer) while commands keep being accepted; topics keep
their history."""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid4

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from services.common.kafka import KEEP_FOREVER, ensure_topics, topic_configs
from services.common.metrics import BROKER_UP, CONSUMER_LAG
from services.common.deadletters import read_all
from tests.integration.test_delivery import interview_command, send
from tests.integration.test_intake import enrolment
from tests.support import wait_until


async def test_a_kafka_command_before_its_household_is_replicated_is_retried_not_dead_lettered(platform):
    body = enrolment()
    household = body["household_id"]
    command = interview_command(household)
    await send(platform.bootstrap, "alfi.casework.commands", [command])
    await asyncio.sleep(1.5)  # the command has been tried and deferred at least once
    assert (await platform.intake.post("/v1/households", json=body, headers=platform.auth())).status_code == 201

    async def recorded() -> bool:
        return await platform.runtimes["casework"].pool.fetchval(
            "SELECT count(*) FROM interviews WHERE household_id = $1", UUID(household)) == 1

    await wait_until(recorded, timeout=60)
    letters = await read_all(platform.bootstrap, ["alfi.casework.commands.dlq"])
    assert command not in [d.value for d in letters]


async def test_a_rehousing_posted_twice_at_once_answers_409_never_500(platform):
    for _ in range(5):
        body = enrolment(youth=True)
        assert (await platform.intake.post("/v1/households", json=body, headers=platform.auth())).status_code == 201

        async def replicated() -> bool:
            return await platform.runtimes["casework"].pool.fetchval(
                "SELECT count(*) FROM households WHERE household_id = $1", UUID(body["household_id"])) == 1

        await wait_until(replicated)
        rehousing = {"household_id": body["household_id"], "landlord": "antin-residences",
                     "confirmed_on": "2023-06-01"}
        answers = await asyncio.gather(*(
            platform.casework.post("/v1/rehousings", json=rehousing | {"rehousing_id": str(uuid4())},
                                   headers=platform.auth()) for _ in range(2)))
        assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
        refused = next(a for a in answers if a.status_code == 409)
        assert refused.headers["content-type"] == "application/problem+json"


async def test_event_topics_keep_every_record_and_existing_topics_are_aligned(platform):
    admin = AIOKafkaAdminClient(bootstrap_servers=platform.bootstrap)
    await admin.start()
    try:
        configs = await topic_configs(admin, ["alfi.intake.events", "alfi.intake.events.dlq",
                                              "alfi.intake.commands.dlq", "alfi.casework.commands"])
        assert configs["alfi.intake.events"]["retention.ms"] == KEEP_FOREVER
        assert configs["alfi.intake.events.dlq"]["retention.ms"] == KEEP_FOREVER
        # Commands and their dead letters hold input in clear: kept for the command retention.
        assert configs["alfi.intake.commands.dlq"]["retention.ms"] == str(14 * 24 * 3600 * 1000)
        assert configs["alfi.casework.commands"]["retention.ms"] == str(14 * 24 * 3600 * 1000)
        # A topic made elsewhere with the broker's 7 days is given the platform's retention.
        old = f"alfi.test{uuid4().hex[:6]}.events"
        await admin.create_topics([NewTopic(old, 1, 1, topic_configs={"retention.ms": "604800000"})])

        async def described() -> bool:  # a topic just created may not be described yet
            return old in await topic_configs(admin, [old])
        await wait_until(described, timeout=15)
        assert (await topic_configs(admin, [old]))[old]["retention.ms"] == "604800000"
        assert await ensure_topics(platform.bootstrap, [old]) == []
        assert (await topic_configs(admin, [old]))[old]["retention.ms"] == KEEP_FOREVER
    finally:
        await admin.close()


async def test_lag_is_reported_while_a_consumer_is_stopped(platform):
    casework = platform.runtimes["casework"]
    index, replica = next((i, c) for i, c in enumerate(casework.consumers) if c.name.endswith("-households"))
    task = casework.consumer_tasks[index]
    await replica.stop(task)
    try:
        for _ in range(3):
            body = enrolment()
            assert (await platform.intake.post("/v1/households", json=body,
                                               headers=platform.auth())).status_code == 201

        def lag() -> float:
            return sum(CONSUMER_LAG.labels(replica.name, "alfi.intake.events", str(p))._value.get()
                       for p in range(6))

        await wait_until(lambda: lag() >= 3, timeout=30)
    finally:
        replica.stopping = False
        restarted = asyncio.create_task(replica.run(), name=replica.name)
        casework.consumer_tasks[index] = restarted
        casework.tasks = [restarted if t is task else t for t in casework.tasks]
    await wait_until(lambda: lag() == 0, timeout=60)


async def test_while_kafka_is_down_commands_are_accepted_and_readiness_says_so(platform, stoppable_kafka):
    intake = platform.runtimes["intake"]
    await wait_until(lambda: intake.broker_up, timeout=30)
    stoppable_kafka.stop(kill=True)
    try:
        await wait_until(lambda: not intake.broker_up, timeout=30)
        assert BROKER_UP.labels("intake")._value.get() == 0
        ready = await platform.intake.get("/health/ready")
        assert ready.status_code == 200  # the outbox keeps accepting: still ready
        assert ready.json()["checks"]["broker"] is False and ready.json()["checks"]["database"] is True
        body = enrolment()
        assert (await platform.intake.post("/v1/households", json=body, headers=platform.auth())).status_code == 201
    finally:
        stoppable_kafka.start()
    await wait_until(lambda: intake.broker_up, timeout=60)
    assert BROKER_UP.labels("intake")._value.get() == 1
    ready = (await platform.intake.get("/health/ready")).json()
    assert ready["checks"]["broker"] is True and all(ready["checks"].values())


async def test_a_list_of_brokers_is_read_as_a_list(kafka_bootstrap):
    # One address of the list is dead: the client bootstraps from another, as on a cluster
    # with a broker down (FastStream would read the whole string as one host name).
    from services.common.kafka import make_broker
    from tests.integration.test_database_faults import unused_port

    broker = make_broker(f"127.0.0.1:{unused_port()},{kafka_bootstrap}", "test-list")
    await broker.start()
    try:
        await broker.publish(b"x", "test.brokers.list", key=b"k")
    finally:
        await broker.stop()
