"""The Kafka side every service shares: the FastStream broker factory and topic setup.

aiokafka's defaults are acks=1 and no idempotence (NOTES.md); every producer of the
platform publishes with acks=all and the idempotent producer, set here once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream.kafka import KafkaBroker

from alfi_contracts.topics import PARTITIONS


def make_broker(
    bootstrap_servers: str, client_id: str, *, middlewares: Sequence[Any] = (), **options: Any
) -> KafkaBroker:
    return KafkaBroker(
        bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        middlewares=middlewares,
        **options,
    )


async def ensure_topics(
    bootstrap_servers: str,
    topics: Iterable[str],
    partitions: int = PARTITIONS,
    replication_factor: int = 1,
) -> list[str]:
    """Create the topics that do not exist yet and wait until all have partition leaders
    (a consumer that subscribes before a topic is visible would not see it until its next
    metadata refresh). Return those this call created."""
    wanted = list(dict.fromkeys(topics))
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="alfi-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        for topic in missing:  # one by one: a topic another service created meanwhile is fine
            try:
                await admin.create_topics(
                    [NewTopic(topic, num_partitions=partitions, replication_factor=replication_factor)]
                )
            except TopicAlreadyExistsError:
                pass
        for _ in range(100):
            described = await admin.describe_topics(wanted)
            if all(d["error_code"] == 0 and d["partitions"] and all(p["leader"] >= 0 for p in d["partitions"])
                   for d in described):
                break
            await asyncio.sleep(0.1)
        return missing
    finally:
        await admin.close()


async def partitions_of(bootstrap_servers: str, topics: Iterable[str]) -> list[TopicPartition]:
    """Every partition of the existing `topics` (for consumers that assign themselves)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="alfi-admin")
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    return [TopicPartition(d["topic"], p["partition"]) for d in described if d["error_code"] == 0
            for p in d["partitions"]]


async def read_to_end(bootstrap_servers: str, topics: Iterable[str]) -> list[ConsumerRecord]:
    """Every record now on `topics`, from the beginning to the end offsets read at start,
    without a consumer group (tools and tests; never for a consumer that must commit)."""
    tps = await partitions_of(bootstrap_servers, topics)
    if not tps:
        return []
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[ConsumerRecord] = []
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()
