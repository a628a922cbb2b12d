"""A rebuild never switches to a generation built from a truncated history."""

from __future__ import annotations

import asyncpg
import pytest

from services.common.settings import ServiceSettings
from services.stats import generations
from services.stats.rebuild import TruncatedHistory, rebuild
from tests.conftest import fresh_database
from tests.integration import events as e


async def test_a_rebuild_refuses_a_topic_whose_first_records_were_deleted(kafka_bootstrap, server_database_url):
    topic = await e.topic_without_its_first_record(kafka_bootstrap, 1961)
    async with fresh_database(server_database_url) as url:
        settings = ServiceSettings(service="stats", database_url=url, kafka_bootstrap_servers=kafka_bootstrap)
        with pytest.raises(TruncatedHistory, match=r"starts at 1"):
            await rebuild(settings, topics=(topic,))
        conn = await asyncpg.connect(url)
        try:
            assert await generations.current(conn) == 1  # the live generation stays
        finally:
            await conn.close()
