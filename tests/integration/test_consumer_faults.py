"""The consumer's one failure path on the real broker and database: a record that makes
its handler fail is dead-lettered and the stream goes on; a task that dies is restarted;
a gap stops its partition until an operator decides; a deferred partition is read again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from services.common.consumer import Deferral, TransactionalConsumer, backoff, gap_of
from services.common.deadletters import dead_letter_writer
from services.common.kafka import ensure_topics
from services.common.metrics import CONSUMER_GAP, CONSUMER_RESTARTS
from services.common.migrations import migrate, sql_files
from services.common.positions import set_position
from services.common.kafka import KafkaConnection
from tests.support import wait_until
from tests.integration.platform import produce as send_records

SQL = Path(__file__).parents[2] / "services" / "common" / "sql"


@contextlib.asynccontextmanager
async def schema_pool(database_url: str) -> AsyncIterator[tuple[str, asyncpg.Pool]]:
    """A schema of its own with the platform's tables (outbox, positions) and `applied`."""
    schema = f"t_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn, schema, sql_files(SQL, "platform_*.sql"))
        await conn.execute(f"CREATE TABLE {schema}.applied (topic text, part int, offs bigint, value bytea,"
                           " PRIMARY KEY (topic, part, offs))")
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4,
                                     server_settings={"search_path": f"{schema},public"})
    try:
        yield schema, pool
    finally:
        await pool.close()


async def record_all(conn: asyncpg.Connection, batches) -> None:
    for tp, records in batches.items():
        for r in records:
            if r.value == b"boom":
                raise KeyError("a handler bug this record triggers")
            await conn.execute("INSERT INTO applied VALUES ($1, $2, $3, $4)", tp.topic, tp.partition, r.offset,
                               r.value)


async def produce(bootstrap: str, topic: str, values: list[bytes], partition: int = 0) -> None:
    await send_records(bootstrap, topic, values, partition=partition)


@contextlib.asynccontextmanager
async def consuming(consumer: TransactionalConsumer) -> AsyncIterator[asyncio.Task]:
    task = asyncio.create_task(consumer.run())
    try:
        yield task
    finally:
        await consumer.stop(task)


async def applied(pool: asyncpg.Pool) -> list[bytes]:
    return [r["value"] for r in await pool.fetch("SELECT value FROM applied ORDER BY part, offs")]


async def dead_letters(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT topic, headers FROM outbox ORDER BY id")


async def test_a_record_that_breaks_its_handler_is_dead_lettered_and_the_stream_goes_on(kafka_bootstrap,
                                                                                         database_url):
    topic = f"test.faults.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, [topic])
    await produce(kafka_bootstrap, topic, [b"one", b"boom", b"two", b"three"])
    async with schema_pool(database_url) as (schema, pool):
        consumer = TransactionalConsumer(pool, "faulty", [topic], kafka_bootstrap, record_all,
                                         dead_letter=dead_letter_writer(schema))
        async with consuming(consumer):
            await wait_until(lambda: _count(applied(pool), 3), timeout=60)
            assert await applied(pool) == [b"one", b"two", b"three"]
            letters = await dead_letters(pool)
            assert [r["topic"] for r in letters] == [f"{topic}.dlq"]
            headers = json.loads(letters[0]["headers"])
            assert headers["alfi-error-kind"] == "unprocessable"
            assert headers["alfi-error-detail"].startswith("KeyError in ")
            assert "a handler bug" not in headers["alfi-error-detail"]  # never the message: it may quote input
            assert headers["alfi-source-offset"] == "1"
            assert consumer.running
            stored = await pool.fetchval("SELECT next_offset FROM consumer_positions WHERE consumer = 'faulty'")
            assert stored == 4


async def _count(rows, n: int) -> bool:
    return len(await rows) >= n


async def test_a_consumer_task_that_dies_is_restarted_and_counted(kafka_bootstrap, database_url):
    topic = f"test.faults.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, [topic])
    await produce(kafka_bootstrap, topic, [b"boom", b"after"])
    async with schema_pool(database_url) as (schema, pool):
        write = dead_letter_writer(schema)
        calls = 0

        async def flaky_dead_letter(conn, tp, record, kind, detail) -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("the dead-letter path itself failed once")
            await write(conn, tp, record, kind, detail)

        consumer = TransactionalConsumer(pool, "dies-once", [topic], kafka_bootstrap, record_all,
                                         dead_letter=flaky_dead_letter)
        restarts = CONSUMER_RESTARTS.labels("dies-once", "RuntimeError")
        before = restarts._value.get()
        async with consuming(consumer):
            await wait_until(lambda: consumer.failures == 1, timeout=30)
            await wait_until(lambda: _count(applied(pool), 1), timeout=60)
            assert await applied(pool) == [b"after"]
            assert len(await dead_letters(pool)) == 1  # the failed attempt rolled back whole
            await wait_until(lambda: consumer.running, timeout=30)
        assert restarts._value.get() == before + 1


async def test_a_position_above_the_end_stops_that_partition_until_an_operator_moves_it(kafka_bootstrap,
                                                                                           database_url):
    # What a recreated topic looks like: the stored position belongs to the old one.
    topic = f"test.faults.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, [topic])
    await produce(kafka_bootstrap, topic, [b"new-0", b"new-1"], partition=0)
    await produce(kafka_bootstrap, topic, [b"other"], partition=1)
    tp = TopicPartition(topic, 0)
    async with schema_pool(database_url) as (schema, pool):
        await pool.execute("INSERT INTO consumer_positions (consumer, topic, partition, next_offset)"
                           " VALUES ('gapped', $1, 0, 50)", topic)
        consumer = TransactionalConsumer(pool, "gapped", [topic], kafka_bootstrap, record_all,
                                         dead_letter=dead_letter_writer(schema))
        consumer.gap_recheck_seconds = 1.0
        async with consuming(consumer):
            await wait_until(lambda: tp in consumer.gaps, timeout=60)
            await wait_until(lambda: _count(applied(pool), 1), timeout=30)
            assert await applied(pool) == [b"other"]  # the other partitions go on
            assert consumer.gaps[tp].missing == 48
            assert CONSUMER_GAP.labels("gapped", topic, "0")._value.get() == 48
            await asyncio.sleep(2)
            assert await applied(pool) == [b"other"]  # nothing skipped silently
            await set_position(database_url, KafkaConnection(kafka_bootstrap), schema, "gapped", tp, 0)
            await wait_until(lambda: _count(applied(pool), 3), timeout=30)
            assert await applied(pool) == [b"new-0", b"new-1", b"other"]
            assert tp not in consumer.gaps
            assert CONSUMER_GAP.labels("gapped", topic, "0")._value.get() == 0


async def test_a_partition_whose_history_was_deleted_is_not_read_from_where_it_now_starts(kafka_bootstrap,
                                                                                           database_url):
    topic = f"test.faults.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, [topic])
    await produce(kafka_bootstrap, topic, [b"a", b"b", b"c", b"d"], partition=0)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.delete_records({TopicPartition(topic, 0): RecordsToDelete(before_offset=2)})
    finally:
        await admin.close()
    tp = TopicPartition(topic, 0)
    async with schema_pool(database_url) as (schema, pool):
        replica = TransactionalConsumer(pool, "new-replica", [topic], kafka_bootstrap, record_all,
                                        dead_letter=dead_letter_writer(schema))
        async with consuming(replica):
            await wait_until(lambda: tp in replica.gaps, timeout=60)
            assert replica.gaps[tp].missing == 2
            await asyncio.sleep(1)
            assert await applied(pool) == []
        # A command consumer (its topic expires by design) starts at the log start instead.
        commands = TransactionalConsumer(pool, "commands-like", [topic], kafka_bootstrap, record_all,
                                         dead_letter=dead_letter_writer(schema), full_history=False)
        async with consuming(commands):
            await wait_until(lambda: _count(applied(pool), 2), timeout=60)
            assert await applied(pool) == [b"c", b"d"] and not commands.gaps


async def test_a_deferred_partition_is_read_again_from_the_deferred_record(kafka_bootstrap, database_url):
    topic = f"test.faults.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, [topic])
    await produce(kafka_bootstrap, topic, [b"first", b"wait", b"last"])
    tries = 0

    async def defers_once(conn, batches):
        nonlocal tries
        for tp, records in batches.items():
            for r in records:
                if r.value == b"wait" and tries == 0:
                    tries += 1
                    return {tp: Deferral(r.offset, 0.5, "test")}
                await conn.execute("INSERT INTO applied VALUES ($1, $2, $3, $4)", tp.topic, tp.partition,
                                   r.offset, r.value)
        return None

    async with schema_pool(database_url) as (schema, pool):
        consumer = TransactionalConsumer(pool, "deferring", [topic], kafka_bootstrap, defers_once,
                                         dead_letter=dead_letter_writer(schema))
        async with consuming(consumer):
            await wait_until(lambda: _count(applied(pool), 3), timeout=60)
        assert await applied(pool) == [b"first", b"wait", b"last"]  # in order, each once
        assert tries == 1


@pytest.mark.parametrize("position, log_start, end, full_history, missing", [
    (None, 0, 10, True, None), (None, 3, 10, True, 3), (None, 3, 10, False, None),
    (5, 0, 10, True, None), (10, 0, 10, True, None), (2, 3, 10, True, 1), (15, 0, 10, True, 5),
    (15, 0, 10, False, 5),
])
def test_gap_rule(position, log_start, end, full_history, missing):
    gap = gap_of(position, log_start, end, full_history)
    assert (gap.missing if gap else None) == missing


def test_backoff_grows_with_jitter_and_a_cap():
    first = [backoff(1) for _ in range(200)]
    assert all(0.25 <= d <= 0.5 for d in first) and len(set(first)) > 1
    assert all(15 <= backoff(40) <= 30 for _ in range(50))
