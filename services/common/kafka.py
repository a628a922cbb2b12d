"""The Kafka side every service shares: the FastStream broker factory and topic setup.

aiokafka's defaults are acks=1 and no idempotence (NOTES.md); every producer of the
platform publishes with acks=all and the idempotent producer, set here once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

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
    """Create the topics that do not exist yet; return those created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="alfi-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in dict.fromkeys(topics) if t not in existing]
        if not missing:
            return []
        try:
            await admin.create_topics(
                [NewTopic(t, num_partitions=partitions, replication_factor=replication_factor) for t in missing]
            )
        except TopicAlreadyExistsError:
            pass  # another instance created it between list and create
        return missing
    finally:
        await admin.close()
