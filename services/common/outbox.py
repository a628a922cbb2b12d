"""Transactional outbox and its relay.

`enqueue` writes events (and dead letters) in the caller's transaction, beside the state
change they record. `OutboxRelay` publishes pending rows in id order with an idempotent
producer (acks=all) and marks them published. If the relay dies between publishing and
marking, the rows are published again on restart: duplicates carry the same CloudEvent
id, which consumers deduplicate. One relay per schema at a time (advisory lock), so
order per key is the order of commit.

The relay publishes through a FastStream KafkaBroker (acks=all, idempotent; its
Prometheus middleware counts and times every publish) without waiting per message
(`no_confirm`), then waits for the whole batch's acknowledgements before marking it. It
starts the broker in its own retry loop, so a Kafka that is down at start only delays
publication: commands are still accepted.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any
from dataclasses import dataclass
from uuid import UUID

import asyncpg
import structlog
from aiokafka.errors import KafkaError

from alfi_contracts import CONTENT_TYPE, CloudEvent, EventData, encode, make_event

from faststream.kafka import KafkaBroker

from .kafka import ensure_topics, make_broker
from .metrics import OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE, PUBLISHED

log = structlog.get_logger("alfi.outbox")


@dataclass(frozen=True)
class OutboxMessage:
    event_id: UUID
    topic: str
    key: bytes
    payload: bytes
    headers: dict[str, str]


def event_message(topic: str, event: CloudEvent, data: EventData) -> OutboxMessage:
    return OutboxMessage(event.id, topic, data.key, encode(event), {"content-type": CONTENT_TYPE})


def channel(schema: str) -> str:
    return f"outbox_{schema}"


async def enqueue(conn: asyncpg.Connection, schema: str, messages: Iterable[OutboxMessage]) -> None:
    rows = [(m.event_id, m.topic, m.key, m.payload, json.dumps(m.headers)) for m in messages]
    if not rows:
        return
    await conn.executemany(
        "INSERT INTO outbox (event_id, topic, key, payload, headers) VALUES ($1, $2, $3, $4, $5::jsonb)"
        " ON CONFLICT (event_id) DO NOTHING",  # a dead letter written again by a rebuild
        rows,
    )
    await conn.execute("SELECT pg_notify($1, '')", channel(schema))


async def emit(
    conn: asyncpg.Connection, schema: str, topic: str, data: EventData,
    correlation_id: str | None, causation_id: str | None,
) -> CloudEvent:
    """Record one domain event in the outbox, in the caller's transaction."""
    event = make_event(data, correlation_id=correlation_id, causation_id=causation_id)
    await enqueue(conn, schema, [event_message(topic, event, data)])
    return event


class OutboxRelay:
    def __init__(
        self, pool: asyncpg.Pool, schema: str, bootstrap_servers: str, client_id: str,
        topics: Iterable[str] = (), batch_size: int = 1000, poll_interval: float = 0.5,
        middlewares: Sequence[Any] = (),
    ) -> None:
        self.pool = pool
        self.schema = schema
        self.bootstrap_servers = bootstrap_servers
        self.client_id = client_id
        self.topics = list(topics)
        self.middlewares = middlewares
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.connected = False
        self._wake = asyncio.Event()

    async def run(self) -> None:
        """Publish forever; reconnect with backoff when Kafka or PostgreSQL is away."""
        backoff = 0.5
        while True:
            try:
                async with self.pool.acquire() as lock_conn:
                    if not await lock_conn.fetchval(
                        "SELECT pg_try_advisory_lock(hashtext($1))", f"relay:{self.schema}"
                    ):
                        await asyncio.sleep(self.poll_interval * 4)  # another instance relays
                        continue
                    await lock_conn.add_listener(channel(self.schema), self._notified)
                    try:
                        await self._relay()
                    finally:
                        await lock_conn.remove_listener(channel(self.schema), self._notified)
                        await lock_conn.execute("SELECT pg_advisory_unlock_all()")
            except asyncio.CancelledError:
                raise
            except (KafkaError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                self.connected = False
                log.warning("relay_unavailable", schema=self.schema, error=type(error).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def _notified(self, *_args: object) -> None:
        self._wake.set()

    async def _relay(self) -> None:
        if self.topics:
            await ensure_topics(self.bootstrap_servers, self.topics)
        broker = make_broker(self.bootstrap_servers, self.client_id, middlewares=self.middlewares,
                             linger_ms=5, request_timeout_ms=15000)
        await broker.start()
        self.connected = True
        try:
            while True:
                if await self.publish_batch(broker) < self.batch_size:
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(), self.poll_interval)
                    except TimeoutError:
                        pass
        finally:
            self.connected = False
            await broker.stop()

    async def publish_batch(self, broker: KafkaBroker) -> int:
        rows = await self.pool.fetch(
            "SELECT id, topic, key, payload, headers FROM outbox"
            " WHERE published_at IS NULL ORDER BY id LIMIT $1",
            self.batch_size,
        )
        if not rows:
            return 0
        deliveries = [
            await broker.publish(row["payload"], row["topic"], key=row["key"],
                                 headers=json.loads(row["headers"]), no_confirm=True)
            for row in rows
        ]
        await asyncio.gather(*deliveries)  # all acknowledged, or none marked
        await self.pool.execute(
            "UPDATE outbox SET published_at = clock_timestamp() WHERE id = ANY($1::bigint[])",
            [row["id"] for row in rows],
        )
        for topic, count in Counter(row["topic"] for row in rows).items():
            PUBLISHED.labels(self.schema, topic).inc(count)
        return len(rows)

    async def observe_backlog(self) -> None:
        """Set the backlog gauges from the table (whether or not Kafka answers)."""
        row = await self.pool.fetchrow(
            "SELECT count(*) AS pending, coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0)"
            " AS oldest FROM outbox WHERE published_at IS NULL")
        OUTBOX_BACKLOG.labels(self.schema).set(row["pending"])
        OUTBOX_OLDEST_AGE.labels(self.schema).set(float(row["oldest"]))
