"""A rebuild never switches to a generation built from a truncated history."""

from __future__ import annotations

from datetime import date
from uuid import uuid4

import asyncpg
import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from services.common.kafka import ensure_topics
from services.common.settings import ServiceSettings
from services.stats import generations
from services.stats.rebuild import TruncatedHistory, rebuild
from tests.conftest import fresh_database
from tests.integration import events as e


async def test_a_rebuild_refuses_a_topic_whose_first_records_were_deleted(kafka_bootstrap, server_database_url):
    topic = f"alfi.test{uuid4().hex[:6]}.events"
    await ensure_topics(kafka_bootstrap, [topic], partitions=1)
    await e.publish(kafka_bootstrap, [e.household(date(1961, 1, 1)) for _ in range(3)], topic=topic)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.delete_records({TopicPartition(topic, 0): RecordsToDelete(before_offset=1)})
    finally:
        await admin.close()
    async with fresh_database(server_database_url) as url:
        settings = ServiceSettings(service="stats", database_url=url, kafka_bootstrap_servers=kafka_bootstrap)
        with pytest.raises(TruncatedHistory, match=r"starts at 1"):
            await rebuild(settings, topics=(topic,))
        conn = await asyncpg.connect(url)
        try:
            assert await generations.current(conn) == 1  # the live generation stays
        finally:
            await conn.close()
