"""A Kafka consumer whose position lives in PostgreSQL, beside the effect it feeds.

Each poll returns records per partition; each partition's batch is applied and its next
offset stored in one transaction. On (re)assignment the consumer seeks to the stored
position, so a redelivered record is never applied twice and a crash at any instant
resumes exactly where the last commit left off. Offsets are also committed to Kafka
afterwards, best effort, only so that lag shows in Kafka's own tools.

aiokafka directly, not a FastStream subscriber: FastStream commits positions to Kafka,
and exactly-once in effect needs them in the database transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from .kafka import ensure_topics

log = structlog.get_logger("alfi.consumer")

BatchHandler = Callable[[asyncpg.Connection, TopicPartition, Sequence[ConsumerRecord]], Awaitable[None]]


async def stored_positions(conn: asyncpg.Connection, name: str) -> dict[TopicPartition, int]:
    rows = await conn.fetch(
        "SELECT topic, partition, next_offset FROM consumer_positions WHERE consumer = $1", name
    )
    return {TopicPartition(r["topic"], r["partition"]): r["next_offset"] for r in rows}


async def store_position(conn: asyncpg.Connection, name: str, tp: TopicPartition, next_offset: int) -> None:
    await conn.execute(
        "INSERT INTO consumer_positions (consumer, topic, partition, next_offset) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (consumer, topic, partition)"
        " DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()",
        name, tp.topic, tp.partition, next_offset,
    )


class _SeekToStored(ConsumerRebalanceListener):
    def __init__(self, owner: TransactionalConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked) -> None:  # noqa: ANN001
        pass

    async def on_partitions_assigned(self, assigned) -> None:  # noqa: ANN001
        async with self.owner.pool.acquire() as conn:
            positions = await stored_positions(conn, self.owner.name)
        consumer = self.owner.consumer
        assert consumer is not None
        for tp in assigned:
            if tp in positions:
                consumer.seek(tp, positions[tp])
            else:
                await consumer.seek_to_beginning(tp)


class TransactionalConsumer:
    def __init__(
        self, pool: asyncpg.Pool, name: str, topics: Sequence[str], bootstrap_servers: str,
        handle_batch: BatchHandler, max_records: int = 500,
    ) -> None:
        self.pool = pool
        self.name = name
        self.topics = list(topics)
        self.bootstrap_servers = bootstrap_servers
        self.handle_batch = handle_batch
        self.max_records = max_records
        self.consumer: AIOKafkaConsumer | None = None
        self.connected = False
        self.applied = 0

    async def run(self) -> None:
        backoff = 0.5
        while True:
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except (KafkaError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                self.connected = False
                log.warning("consumer_unavailable", consumer=self.name, error=type(error).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _consume(self) -> None:
        # Subscribing to a topic that does not exist yet would only notice it at the next
        # metadata refresh (5 min by default): create it first, with the platform's layout.
        await ensure_topics(self.bootstrap_servers, self.topics)
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers, group_id=self.name,
            client_id=self.name, enable_auto_commit=False, auto_offset_reset="earliest",
        )
        await self.consumer.start()
        try:
            self.consumer.subscribe(self.topics, listener=_SeekToStored(self))
            self.connected = True
            while True:
                batches = await self.consumer.getmany(timeout_ms=500, max_records=self.max_records)
                for tp, records in batches.items():
                    await self.apply(tp, records)
        finally:
            self.connected = False
            await self.consumer.stop()

    async def apply(self, tp: TopicPartition, records: Sequence[ConsumerRecord]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            stored = await conn.fetchval(
                "SELECT next_offset FROM consumer_positions"
                " WHERE consumer = $1 AND topic = $2 AND partition = $3 FOR UPDATE",
                self.name, tp.topic, tp.partition,
            )
            fresh = [r for r in records if stored is None or r.offset >= stored]
            if fresh:
                await self.handle_batch(conn, tp, fresh)
                await store_position(conn, self.name, tp, fresh[-1].offset + 1)
        if fresh:
            self.applied += len(fresh)
            assert self.consumer is not None
            try:
                await self.consumer.commit({tp: fresh[-1].offset + 1})
            except KafkaError:
                pass  # informational only; the database position is the truth
