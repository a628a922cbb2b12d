"""A Kafka consumer whose position lives in PostgreSQL, beside the effect it feeds.

Each poll returns records per partition; each partition's batch is applied and its next
offset stored in one transaction. On (re)assignment the consumer seeks to the stored
position, so a redelivered record is never applied twice and a crash at any instant
resumes exactly where the last commit left off. Offsets are also committed to Kafka
afterwards, in the background and best effort, only so that lag shows in Kafka's own
tools.

Throughput: the consumer keeps one connection for its transactions while it runs (no
pool reset between polls), and the next poll is prepared while the previous one's
transaction is in flight (see `prepare`).

aiokafka directly, not a FastStream subscriber: FastStream commits positions to Kafka,
and exactly-once in effect needs them in the database transaction.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from .kafka import ensure_topics
from .metrics import BATCH_DURATION, CONSUMED, CONSUMER_LAG

log = structlog.get_logger("alfi.consumer")

Batches = dict[TopicPartition, list[ConsumerRecord]]
BatchHandler = Callable[[asyncpg.Connection, Batches], Awaitable[None]]


async def stored_positions(conn: asyncpg.Connection, name: str) -> dict[TopicPartition, int]:
    rows = await conn.fetch(
        "SELECT topic, partition, next_offset FROM consumer_positions WHERE consumer = $1", name
    )
    return {TopicPartition(r["topic"], r["partition"]): r["next_offset"] for r in rows}


async def store_positions(conn: asyncpg.Connection, name: str, positions: dict[TopicPartition, int]) -> None:
    await conn.execute(
        "INSERT INTO consumer_positions (consumer, topic, partition, next_offset)"
        " SELECT $1, * FROM unnest($2::text[], $3::int[], $4::bigint[])"
        " ON CONFLICT (consumer, topic, partition)"
        " DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()",
        name, [tp.topic for tp in positions], [tp.partition for tp in positions], list(positions.values()),
    )


class Restart(Exception):
    """Raised by a handler to make the consumer reconnect and seek to stored positions
    (stats raises it when a rebuild switched the projection generation)."""


class _SeekToStored(ConsumerRebalanceListener):
    def __init__(self, owner: TransactionalConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked) -> None:  # noqa: ANN001
        pass

    async def on_partitions_assigned(self, assigned) -> None:  # noqa: ANN001
        async with self.owner.pool.acquire() as conn, conn.transaction():
            await self.owner.enter_schema(conn)
            positions = await stored_positions(conn, self.owner.name)
        consumer = self.owner.consumer
        assert consumer is not None
        for tp in assigned:
            if tp in positions:
                consumer.seek(tp, positions[tp])
                self.owner.positions[tp] = positions[tp]
            else:
                await consumer.seek_to_beginning(tp)


class TransactionalConsumer:
    def __init__(
        self, pool: asyncpg.Pool, name: str, topics: Sequence[str], bootstrap_servers: str,
        handle_batch: BatchHandler, max_records: int = 500, search_path: Callable[[], str] | None = None,
        group_id: str | None = None, prepare: Callable[[Batches], Any] | None = None,
    ) -> None:
        self.pool = pool
        self.name = name
        self.topics = list(topics)
        self.bootstrap_servers = bootstrap_servers
        self.handle_batch = handle_batch
        self.max_records = max_records
        # Where positions and effects live, when not the pool's search_path (stats writes
        # into a generation schema that a rebuild may switch). Code-controlled, never input.
        self.search_path = search_path
        # The Kafka group; positions are stored under `name`, so a rebuild (its own group)
        # leaves positions the live consumer picks up after the switch.
        self.group_id = group_id or name
        # Optional CPU-only step (decoding, folding) run outside the transaction, so the
        # next poll is prepared while the previous one's transaction commits; it may be a
        # coroutine that yields now and then, letting that transaction's statements go
        # out meanwhile. Without it, `handle_batch` receives the records themselves.
        self.prepare = prepare
        self.positions: dict[TopicPartition, int] = {}
        self.consumer: AIOKafkaConsumer | None = None
        self.conn: asyncpg.Connection | None = None  # held while consuming
        self.conn_search_path: str | None = None
        self.committing: asyncio.Task | None = None  # the background Kafka commit
        self.connected = False
        self.applied = 0
        self.stopping = False
        # Set once every assigned partition has been read to its end since start.
        self.caught_up = asyncio.Event()

    async def run(self) -> None:
        backoff = 0.5
        while not self.stopping:
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Restart:
                log.info("consumer_restarting", consumer=self.name)
                continue
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
            bootstrap_servers=self.bootstrap_servers, group_id=self.group_id,
            client_id=self.name, enable_auto_commit=False, auto_offset_reset="earliest",
            metadata_max_age_ms=30_000,  # notice new partitions/topics within 30 s, not 5 min
        )
        await self.consumer.start()
        try:
            self.consumer.subscribe(self.topics, listener=_SeekToStored(self))
            self.connected = True
            writing: asyncio.Task | None = None
            try:
                while not self.stopping:
                    if writing is not None and writing.done():
                        await writing  # surfaces its failure (or Restart) now, not at the next poll
                        writing = None
                    batches = await self.consumer.getmany(timeout_ms=500, max_records=self.max_records)
                    if not batches:
                        if writing is None and not self.caught_up.is_set():
                            await self._check_caught_up()
                        continue
                    prepared = await self._prepare(batches)
                    if writing is not None:
                        await writing  # one transaction at a time, in poll order
                    writing = asyncio.create_task(self.apply(batches, prepared))
                if writing is not None:
                    await writing  # stopping: the poll in hand commits before we leave
                    writing = None
            finally:
                for task in (writing, self.committing):
                    if task is not None and not task.done():
                        task.cancel()
                        await asyncio.gather(task, return_exceptions=True)
        finally:
            self.connected = False
            await self._release()
            await self.consumer.stop()

    async def _prepare(self, batches: Batches) -> Any:
        if self.prepare is None:
            return batches
        prepared = self.prepare(batches)
        return await prepared if asyncio.iscoroutine(prepared) else prepared

    async def enter_schema(self, conn: asyncpg.Connection) -> None:
        if self.search_path is not None:
            await conn.execute(f"SET LOCAL search_path TO {self.search_path()}")

    async def _connection(self) -> asyncpg.Connection:
        """The consumer's own connection, its search_path set for the session when it
        changes (the pool resets it on release)."""
        if self.conn is None or self.conn.is_closed():
            await self._release()
            self.conn = await self.pool.acquire()
        if self.search_path is not None and self.search_path() != self.conn_search_path:
            self.conn_search_path = None
            await self.conn.execute(f"SET search_path TO {self.search_path()}")
            self.conn_search_path = self.search_path()
        return self.conn

    async def _release(self) -> None:
        conn, self.conn, self.conn_search_path = self.conn, None, None
        if conn is not None:
            await self.pool.release(conn)

    async def _check_caught_up(self) -> None:
        assert self.consumer is not None
        assigned = list(self.consumer.assignment())
        if assigned:
            ends = await self.consumer.end_offsets(assigned)
            # Nothing is in flight here, so where the consumer reads next is what it has
            # applied (or skipped: an empty partition, records gone with retention).
            if all([await self.consumer.position(tp) >= end for tp, end in ends.items()]):
                self.caught_up.set()

    async def stop(self, task: asyncio.Task, timeout: float = 10.0) -> None:
        """Finish the poll in hand (it commits or rolls back whole), then stop."""
        self.stopping = True
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except (TimeoutError, asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping regardless
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def observe_lag(self) -> None:
        """Set the lag gauge of every assigned partition (end offset minus position)."""
        if self.consumer is None or not self.connected:
            return
        assigned = list(self.consumer.assignment())
        if not assigned:
            return
        ends = await self.consumer.end_offsets(assigned)
        for tp, end in ends.items():
            CONSUMER_LAG.labels(self.name, tp.topic, str(tp.partition)).set(max(end - self.positions.get(tp, 0), 0))

    async def apply(self, batches: Batches, prepared: Any) -> None:
        """One transaction for the whole poll: every partition's records and positions."""
        started = time.perf_counter()
        conn = await self._connection()
        try:
            async with conn.transaction():
                stored = await conn.fetch(
                    "SELECT topic, partition, next_offset FROM consumer_positions"
                    " WHERE consumer = $1 AND topic = ANY($2::text[]) FOR UPDATE",
                    self.name, list({tp.topic for tp in batches}),
                )
                floor = {TopicPartition(r["topic"], r["partition"]): r["next_offset"] for r in stored}
                fresh = {
                    tp: kept for tp, records in batches.items()
                    if (kept := records if records[0].offset >= floor.get(tp, 0)  # the usual case: all new
                        else [r for r in records if r.offset >= floor.get(tp, 0)])
                }
                if not fresh:
                    return
                if fresh != batches:  # some were applied before a restart: prepare only the rest
                    prepared = await self._prepare(fresh)
                await self.handle_batch(conn, prepared)
                positions = {tp: records[-1].offset + 1 for tp, records in fresh.items()}
                await store_positions(conn, self.name, positions)
        except (OSError, asyncpg.InterfaceError):
            await self._release()  # a broken connection goes back to the pool, which drops it
            raise
        self.positions.update(positions)
        self.applied += sum(len(records) for records in fresh.values())
        BATCH_DURATION.labels(self.name).observe(time.perf_counter() - started)
        for tp, records in fresh.items():
            CONSUMED.labels(self.name, tp.topic).inc(len(records))
        if self.committing is None or self.committing.done():
            self.committing = asyncio.create_task(self._commit_to_kafka())

    async def _commit_to_kafka(self) -> None:
        """Informational only (lag in Kafka's tools); the database position is the truth."""
        assert self.consumer is not None
        assigned = self.consumer.assignment()
        positions = {tp: offset for tp, offset in self.positions.items() if tp in assigned}
        if positions:
            try:
                await self.consumer.commit(positions)
            except KafkaError:
                pass
