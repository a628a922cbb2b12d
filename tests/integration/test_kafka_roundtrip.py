"""A contract event published through the real broker with FastStream comes back intact."""

from __future__ import annotations

import asyncio
from uuid import uuid4

from aiokafka.admin import AIOKafkaAdminClient
from faststream.kafka import KafkaMessage

from alfi_contracts import decode, encode, make_event
from alfi_contracts.events import HouseholdEnrolled
from services.common.kafka import ensure_topics, make_broker


def enrolment(household_id) -> HouseholdEnrolled:
    return HouseholdEnrolled(
        household_id=household_id, programme="pension_de_famille", territory="bretagne",
        referent_worker_id="sw-017", enrolled_on="2023-01-09", youth=False,
        dalo_priority=False, adults=1, children=2,
    )


async def test_ensure_topics_creates_six_partitions_once(kafka_bootstrap):
    topic = f"test.topics.{uuid4().hex[:8]}"
    assert await ensure_topics(kafka_bootstrap, [topic]) == [topic]
    assert await ensure_topics(kafka_bootstrap, [topic]) == []
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        [description] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    assert len(description["partitions"]) == 6


async def test_event_round_trip_through_real_broker(kafka_bootstrap):
    topic = f"test.roundtrip.{uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, [topic])
    broker = make_broker(kafka_bootstrap, "test-roundtrip")
    received: asyncio.Queue = asyncio.Queue()

    @broker.subscriber(topic, group_id=f"g-{uuid4().hex[:6]}", auto_offset_reset="earliest")
    async def collect(body: bytes, message: KafkaMessage) -> None:
        await received.put((message.raw_message.key, message.headers.get("content-type"), body))

    household = uuid4()
    events = [make_event(enrolment(household), correlation_id=f"req-{i}") for i in range(3)]
    async with broker:
        await broker.start()
        for event in events:
            await broker.publish(
                encode(event), topic, key=enrolment(household).key,
                headers={"content-type": "application/cloudevents+json"},
            )
        got = [await asyncio.wait_for(received.get(), timeout=30) for _ in events]

    assert [decode(body)[0] for _, _, body in got] == events  # same ids, same order
    assert {key for key, _, _ in got} == {str(household).encode()}
    assert {content_type for _, content_type, _ in got} == {"application/cloudevents+json"}
