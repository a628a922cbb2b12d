"""The relay against the real broker and database: a row Kafka refuses for good is set
aside with a dead letter and never blocks the rows behind it; an outage is said, and
waited out."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from services.common.deadletters import read_all
from services.common.outbox import OutboxMessage, OutboxRelay, enqueue
from tests.integration.platform import read_topic
from tests.integration.test_consumer_faults import schema_pool
from tests.support import wait_until

KEY = b"5d0c6a40-6f43-4c38-9b1e-2f7f5f0f2a11"  # one key: one partition, one order


@pytest.fixture
async def outbox_schema(database_url: str) -> AsyncIterator[tuple[str, asyncpg.Pool]]:
    """An outbox of its own: the platform's migrations in a fresh schema."""
    async with schema_pool(database_url) as (schema, pool):
        yield schema, pool


@contextlib.asynccontextmanager
async def running(relay: OutboxRelay) -> AsyncIterator[OutboxRelay]:
    task = asyncio.create_task(relay.run())
    try:
        yield relay
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def put(pool: asyncpg.Pool, schema: str, topic: str, payloads: list[bytes]) -> list[int]:
    """Enqueue the payloads in one transaction, as a handler does; return their row ids."""
    messages = [OutboxMessage(uuid.uuid4(), topic, KEY, payload, {"content-type": "application/octet-stream"})
                for payload in payloads]
    async with pool.acquire() as conn, conn.transaction():
        await enqueue(conn, schema, messages)
        return [await conn.fetchval("SELECT id FROM outbox WHERE event_id = $1", m.event_id) for m in messages]


async def outbox_rows(pool: asyncpg.Pool) -> dict[int, asyncpg.Record]:
    rows = await pool.fetch("SELECT id, published_at, refused_at, refusal_kind, refusal_detail FROM outbox")
    return {row["id"]: row for row in rows}


async def settled(pool: asyncpg.Pool) -> bool:
    return all(row["published_at"] or row["refused_at"] for row in (await outbox_rows(pool)).values())


def told_as_a_refusal(logs: list[dict], schema: str, refused_ids: list[int]) -> bool:
    """The refusal is logged at error level, by ids; and it is never told as an outage."""
    refusals = [e for e in logs if e["event"] == "outbox_event_refused"]
    outages = [e for e in logs if e["event"] in ("relay_unavailable", "relay_failed")]
    return (not outages and [e["outbox_id"] for e in refusals] == refused_ids
            and all(e["log_level"] == "error" and e["schema"] == schema for e in refusals))


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_row_too_large_is_set_aside_and_the_rows_behind_it_go_on(outbox_schema, kafka_bootstrap):
    schema, pool = outbox_schema
    topic = f"alfi.test-{schema}.events"
    first, second = b'{"n": 1}', b'{"n": 2}'
    big = b"x" * (2 * 1024 * 1024)  # over aiokafka's max_request_size (1 MiB)
    ids = await put(pool, schema, topic, [first, big, second])
    relay = OutboxRelay(pool, schema, kafka_bootstrap, f"test-{schema}", topics=[topic])

    with capture_logs() as logs:
        async with running(relay):
            await wait_until(lambda: settled(pool))

    assert told_as_a_refusal(logs, schema, [ids[1]])
    assert [r.value for r in await read_topic(kafka_bootstrap, topic)] == [first, second]  # in order
    rows = await outbox_rows(pool)
    assert rows[ids[0]]["published_at"] and rows[ids[2]]["published_at"]
    refused = rows[ids[1]]
    assert refused["published_at"] is None and refused["refused_at"] is not None
    assert refused["refusal_kind"] == "too_large"
    assert refused["refusal_detail"].startswith("MessageSizeTooLargeError: value of 2097152 bytes")

    [letter] = await read_all(kafka_bootstrap, [f"{topic}.dlq"])  # what `make dead-letters` lists
    assert not letter.value  # no payload: it stays in the outbox row
    assert letter.key == KEY
    assert letter.headers["alfi-error-kind"] == "refused_by_broker"
    assert "MessageSizeTooLargeError" in letter.headers["alfi-error-detail"]
    assert "2097152 bytes" in letter.headers["alfi-error-detail"]
    assert letter.headers["alfi-source-topic"] == topic
    assert letter.headers["alfi-outbox-id"] == str(ids[1])
    assert letter.headers["alfi-outbox-schema"] == schema
    assert "refused_by_broker" in letter.line() and "xxxx" not in letter.line()

    assert sample("alfi_outbox_refused_events_total", service=schema, kind="too_large") == 1
    await relay.observe_backlog()
    assert sample("alfi_outbox_backlog_events", service=schema) == 0
    assert sample("alfi_outbox_oldest_pending_age_seconds", service=schema) == 0
    assert sample("alfi_outbox_set_aside_events", service=schema) == 1


async def test_a_row_the_broker_refuses_is_set_aside_and_the_rows_around_it_still_go(
        outbox_schema, kafka_bootstrap):
    """The topic takes records of 4 KiB at most. The client sends the 15 KB row; the broker
    refuses the whole request it was in (with the small row before it) and, its sequence
    numbers spent, the next request of that producer as out of order. The small rows are
    published all the same (the one refused with it sent again alone), each once; only the
    large one is set aside, and nothing is told as an outage."""
    schema, pool = outbox_schema
    topic = f"alfi.test-{schema}.small"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1, topic_configs={"max.message.bytes": "4096"})])
    finally:
        await admin.close()
    relay = OutboxRelay(pool, schema, kafka_bootstrap, f"test-{schema}")  # no topics: keep its config
    small = [b"a", b"c" * 2000, b"d"]  # "c" starts a request of its own: the 15 KB row filled one

    with capture_logs() as logs:
        async with running(relay):
            await put(pool, schema, topic, [b"z"])
            await wait_until(lambda: settled(pool))  # the producer's sequence has begun
            ids = await put(pool, schema, topic, [small[0], b"b" * 15_000, *small[1:]])
            await wait_until(lambda: settled(pool))

    assert told_as_a_refusal(logs, schema, [ids[1]])
    assert sorted(r.value for r in await read_topic(kafka_bootstrap, topic)) == sorted([b"z", *small])  # once each
    rows = await outbox_rows(pool)
    assert [rows[i]["refusal_kind"] for i in ids] == [None, "too_large", None, None]
    [letter] = await read_all(kafka_bootstrap, [f"{topic}.dlq"])
    assert letter.headers["alfi-outbox-id"] == str(ids[1]) and not letter.value
    assert sample("alfi_outbox_refused_events_total", service=schema, kind="too_large") == 1


async def test_kafka_away_the_relay_says_so_then_delivers_once_when_it_is_back(outbox_schema, stoppable_kafka):
    schema, pool = outbox_schema
    topic = f"alfi.test-{schema}.events"
    relay = OutboxRelay(pool, schema, stoppable_kafka.bootstrap, f"test-{schema}", topics=[topic], delivery_timeout=1.0)

    async def published(value: bytes) -> bool:
        return value in [r.value for r in await read_topic(stoppable_kafka.bootstrap, topic)]

    async with running(relay):
        await put(pool, schema, topic, [b"before"])
        await wait_until(lambda: published(b"before"))
        stoppable_kafka.stop()
        try:
            with capture_logs() as logs:
                await put(pool, schema, topic, [b"during"])
                await wait_until(lambda: not relay.connected, timeout=15)
            assert any(e["event"] == "relay_unavailable" and e["log_level"] == "warning"
                       and e["schema"] == schema for e in logs)
        finally:
            stoppable_kafka.start()
        await wait_until(lambda: published(b"during"), timeout=90)
        await wait_until(lambda: relay.connected)

        async def marked() -> bool:  # acknowledged, then marked: the relay is not stopped between
            return all(row["published_at"] for row in (await outbox_rows(pool)).values())
        await wait_until(marked, timeout=30)

    assert [r.value for r in await read_topic(stoppable_kafka.bootstrap, topic)] == [b"before", b"during"]  # once each
