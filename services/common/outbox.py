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

Failures are classified once (`refusal`): Kafka refusing a record itself (too large,
invalid topic, corrupt) is final, so that row is set aside (`refused_at`), a record
without payload naming it goes to the topic's dead-letter topic, and the rows behind it
go on; anything else is an outage: the rows stay pending and the relay retries. The rows
a batch did deliver are marked either way. Kafka away, the idempotent producer retries
without end: the relay says so every `delivery_timeout` (`relay_unavailable`) and the
same deliveries go through when Kafka is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any
from dataclasses import dataclass
from uuid import UUID

import asyncpg
import structlog
from aiokafka.errors import (
    CorruptRecordException, InvalidMessageError, InvalidTimestampError, InvalidTopicError, KafkaError,
    MessageSizeTooLargeError, OutOfOrderSequenceNumber, RecordListTooLargeError, RecordTooLargeError,
    UnsupportedForMessageFormatError,
)

from alfi_contracts import CONTENT_TYPE, CloudEvent, EventData, encode, make_event
from alfi_contracts.topics import DLQ_ERROR_DETAIL, DLQ_ERROR_KIND, DLQ_SOURCE_TOPIC, dead_letter_topic

from faststream.kafka import KafkaBroker

from . import audit
from .kafka import Kafka, ensure_topics, make_broker
from .keyring import sealer_for
from .metrics import OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE, OUTBOX_PURGED, OUTBOX_REFUSED, OUTBOX_SET_ASIDE, PUBLISHED

log = structlog.get_logger("alfi.outbox")

REQUEST_TIMEOUT_MS = 15_000
# How long a batch's deliveries may go unacknowledged before the relay says Kafka is
# unavailable: one request timing out and its retry.
DELIVERY_TIMEOUT = 2 * REQUEST_TIMEOUT_MS / 1000
# How long stopping the producer may take: aiokafka's stop() first flushes what is
# pending, which never ends while Kafka is away (a shutdown during an outage).
STOP_TIMEOUT = 5.0

# The errors by which Kafka refuses a record itself: sent again, it is refused again.
# aiokafka's `retriable` flag is not the test: it is False as well for KafkaTimeoutError
# (a batch not sent in time), BrokerNotAvailableError, ProducerClosed, authorization
# failures and OutOfOrderSequenceNumber, after which the same record goes through; setting
# rows aside on those would empty an outbox into dead letters during an outage. Whatever
# is not here is treated as an outage: the row stays pending and the relay retries.
REFUSALS: dict[type[KafkaError], str] = {
    MessageSizeTooLargeError: "too_large",  # over max_request_size (client) or max.message.bytes
    RecordTooLargeError: "too_large",
    RecordListTooLargeError: "too_large",
    InvalidTopicError: "invalid_topic",
    CorruptRecordException: "corrupt_record",
    InvalidMessageError: "corrupt_record",
    InvalidTimestampError: "invalid_timestamp",
    UnsupportedForMessageFormatError: "unsupported_format",
}
# A refused row's dead letter: kind `refused_by_broker`, no payload (it stays in the
# outbox row), and where to find the row.
REFUSED_BY_BROKER = "refused_by_broker"
OUTBOX_SCHEMA_HEADER = "alfi-outbox-schema"
OUTBOX_ID_HEADER = "alfi-outbox-id"
EVENT_ID_HEADER = "alfi-event-id"

PENDING = "published_at IS NULL AND refused_at IS NULL"


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


# One statement whatever the number of rows (one round trip), in the given order; with
# the commands' audit rows when there are some, and the relay's wake-up (at commit).
_ENQUEUE = (
    "WITH written AS (INSERT INTO outbox (event_id, topic, key, payload, headers)"
    " SELECT event_id, topic, key, payload, headers::jsonb"
    " FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::bytea[], $5::text[])"
    " WITH ORDINALITY AS m(event_id, topic, key, payload, headers, n) ORDER BY n"
    " ON CONFLICT (event_id) DO NOTHING)"  # a dead letter written again by a rebuild
    "{audited} SELECT pg_notify($6, '') WHERE cardinality($1::uuid[]) > 0"
)
_ENQUEUE_ONLY = _ENQUEUE.format(audited="")
_ENQUEUE_AUDITED = _ENQUEUE.format(audited=f", audited AS ({audit.insert_many_sql(7)})")


async def enqueue(conn: asyncpg.Connection, schema: str, messages: Iterable[OutboxMessage],
                  audited: Sequence[audit.Entry] = ()) -> None:
    """Write `messages` (and `audited`, the commands' audit rows) in the caller's
    transaction, in one statement."""
    messages = list(messages)
    if not messages and not audited:
        return
    columns = ([m.event_id for m in messages], [m.topic for m in messages], [m.key for m in messages],
               [m.payload for m in messages], [json.dumps(m.headers) for m in messages])
    if audited:
        await conn.execute(_ENQUEUE_AUDITED, *columns, channel(schema), *audit.columns_of(audited))
    else:
        await conn.execute(_ENQUEUE_ONLY, *columns, channel(schema))


async def sealed_event(
    conn: asyncpg.Connection, topic: str, data: EventData,
    correlation_id: str | None, causation_id: str | None, key: bytes | None = None,
) -> OutboxMessage:
    """One domain event as an outbox message, its personal fields sealed with the
    household's key (keyring; `key` when the caller holds it)."""
    event = make_event(data, correlation_id=correlation_id, causation_id=causation_id,
                       seal=await sealer_for(conn, data, key))
    return event_message(topic, event, data)


@dataclass(frozen=True)
class Refusal:
    """Why Kafka will never take a row: a closed `kind` (a metric label) and a `detail`
    naming the error class and the sizes, never the payload."""

    kind: str
    detail: str


def refusal(error: BaseException, row: asyncpg.Record) -> Refusal | None:
    """The one classification of a publish failure: a refusal of the record, or None for
    an outage (retry)."""
    kind = next((kind for cls, kind in REFUSALS.items() if isinstance(error, cls)), None)
    if kind is None:
        return None
    return Refusal(kind, f"{type(error).__name__}: value of {len(row['payload'])} bytes,"
                         f" key of {len(row['key'])} bytes, to {row['topic']}")


def delivery_error(future: asyncio.Future) -> BaseException | None:
    """A finished delivery's error, None when Kafka acknowledged it (a delivery cancelled
    with its producer is a failure, never the relay's own cancellation)."""
    if future.cancelled():
        return KafkaError("the delivery was cancelled with its producer")
    return future.exception()


def refusal_dead_letter_topic(topic: str) -> str:
    """Where a refused row's dead letter goes: `<topic>.dlq`, or the same topic when the
    row was itself a dead letter (no `.dlq.dlq`)."""
    return topic if topic.endswith(".dlq") else dead_letter_topic(topic)


class ProducerSpent(Exception):
    """Kafka refused a request of this producer: the sequence numbers it gave that request
    are spent, and the idempotent broker refuses its next records on those partitions as
    out of order (OutOfOrderSequenceNumber: those rows stay pending). The relay carries on
    with a new producer."""


class OutboxRelay:
    def __init__(
        self, pool: asyncpg.Pool, schema: str, bootstrap_servers: Kafka, client_id: str,
        topics: Iterable[str] = (), batch_size: int = 1000, poll_interval: float = 0.5,
        middlewares: Sequence[Any] = (), delivery_timeout: float = DELIVERY_TIMEOUT,
        retention_seconds: float = 7 * 24 * 3600,
    ) -> None:
        self.pool = pool
        self.schema = schema
        self.bootstrap_servers = bootstrap_servers
        self.client_id = client_id
        self.topics = list(topics)
        self.middlewares = middlewares
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.delivery_timeout = delivery_timeout
        self.retention_seconds = retention_seconds
        self.connected = False
        self._wake = asyncio.Event()
        self._dead_letter_topics: set[str] = set()  # created (or found) by this relay
        for kind in set(REFUSALS.values()):  # every series from 0: the first refusal is an increase
            OUTBOX_REFUSED.labels(schema, kind)

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
            except Exception as error:  # noqa: BLE001 - a relay that died would publish nothing, ever
                self.connected = False
                log.error("relay_failed", schema=self.schema, error=type(error).__name__)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def _notified(self, *_args: object) -> None:
        self._wake.set()

    async def _relay(self) -> None:
        if self.topics:
            await ensure_topics(self.bootstrap_servers, self.topics)
        try:
            while True:
                async with self._producer() as broker:
                    self.connected = True
                    with contextlib.suppress(ProducerSpent):
                        while True:
                            if await self.publish_batch(broker) < self.batch_size:
                                self._wake.clear()
                                with contextlib.suppress(TimeoutError):
                                    await asyncio.wait_for(self._wake.wait(), self.poll_interval)
        finally:
            self.connected = False

    @contextlib.asynccontextmanager
    async def _producer(self) -> AsyncIterator[KafkaBroker]:
        broker = make_broker(self.bootstrap_servers, self.client_id, middlewares=self.middlewares,
                             linger_ms=5, request_timeout_ms=REQUEST_TIMEOUT_MS)
        await broker.start()
        try:
            yield broker
        finally:
            try:
                await asyncio.wait_for(broker.stop(), STOP_TIMEOUT)
            except TimeoutError:
                # Its unacknowledged deliveries are left to it; their rows are still pending
                # and go out again (same CloudEvent ids) from the next producer.
                log.warning("relay_stop_timed_out", schema=self.schema)

    async def publish_batch(self, broker: KafkaBroker) -> int:
        """Publish the next pending rows in id order; mark those Kafka acknowledged and set
        aside those it refused for good; after marking, raise when Kafka failed otherwise
        (an outage: the rest stays pending), or ProducerSpent when the broker refused a
        request (the rows it then refused as out of order stay pending). Returns how many
        rows were read."""
        rows = await self.pool.fetch(
            f"SELECT id, event_id, topic, key, payload, headers FROM outbox WHERE {PENDING} ORDER BY id LIMIT $1",
            self.batch_size,
        )
        if not rows:
            return 0
        sent, refused, failure = await self._send(broker, rows)
        await self._acknowledged([future for _, future in sent])
        delivered, refused_in_a_request, out_of_order = [], [], None
        for row, future in sent:
            error = delivery_error(future)
            if error is None:
                delivered.append(row)
            elif refusal(error, row):
                refused_in_a_request.append(row)
            elif isinstance(error, OutOfOrderSequenceNumber):
                out_of_order = error  # stays pending for the next producer
            else:
                failure = failure or error
        await self._mark_published(delivered)
        if out_of_order and not refused_in_a_request:
            failure = failure or out_of_order  # not behind a refusal of ours: the broker lost track
        if failure is not None:
            raise failure
        if refused_in_a_request:
            refused += await self._resend_alone(refused_in_a_request)
        if refused:
            async with self._producer() as spare:  # never one whose sequence a refusal spent
                for row, found in sorted(refused, key=lambda pair: pair[0]["id"]):
                    await self._set_aside(spare, row, found)
        if refused_in_a_request:
            raise ProducerSpent
        return len(rows)

    async def _publish(self, broker: KafkaBroker, row: asyncpg.Record) -> asyncio.Future:
        return await broker.publish(row["payload"], row["topic"], key=row["key"],
                                    headers=json.loads(row["headers"]), no_confirm=True)

    async def _send(
        self, broker: KafkaBroker, rows: list[asyncpg.Record],
    ) -> tuple[list[tuple[asyncpg.Record, asyncio.Future]], list[tuple[asyncpg.Record, Refusal]], KafkaError | None]:
        """Hand the rows to the producer in order. A row refused at once (over
        max_request_size) is set aside later; an outage stops the sending there."""
        sent, refused = [], []
        for row in rows:
            try:
                sent.append((row, await self._publish(broker, row)))
            except KafkaError as error:
                found = refusal(error, row)
                if found is None:
                    return sent, refused, error
                refused.append((row, found))
        return sent, refused, None

    async def _resend_alone(self, rows: list[asyncpg.Record]) -> list[tuple[asyncpg.Record, Refusal]]:
        """Kafka refuses a partition's whole request: these rows may only have shared one
        with the record it refused. Each is sent again alone (so possibly after rows that
        followed it), by a producer no refusal has spent: marked when delivered, returned
        when refused for itself."""
        refused, rows = [], list(rows)
        while rows:
            async with self._producer() as alone:
                while rows:
                    row = rows.pop(0)
                    future = await self._publish(alone, row)
                    await self._acknowledged([future])
                    if (error := delivery_error(future)) is None:
                        await self._mark_published([row])
                    elif found := refusal(error, row):
                        refused.append((row, found))
                        break  # this producer is spent on that partition
                    else:
                        raise error
        return refused

    async def _acknowledged(self, futures: list[asyncio.Future]) -> None:
        """Wait until Kafka has answered every delivery. While it is away the idempotent
        producer retries without end (and stopping it would wait for the same answers):
        say so every `delivery_timeout` and keep waiting, so that the same deliveries
        complete, once each, when Kafka is back."""
        pending = set(futures)
        while pending:
            _, pending = await asyncio.wait(pending, timeout=self.delivery_timeout)
            if pending:
                self.connected = False
                log.warning("relay_unavailable", schema=self.schema, error="KafkaTimeoutError",
                            unacknowledged=len(pending), waited_seconds=self.delivery_timeout)
        self.connected = True

    async def _mark_published(self, rows: list[asyncpg.Record]) -> None:
        if not rows:
            return
        await self.pool.execute(
            "UPDATE outbox SET published_at = clock_timestamp() WHERE id = ANY($1::bigint[])",
            [row["id"] for row in rows],
        )
        for topic, count in Counter(row["topic"] for row in rows).items():
            PUBLISHED.labels(self.schema, topic).inc(count)

    async def _set_aside(self, broker: KafkaBroker, row: asyncpg.Record, found: Refusal) -> None:
        """Take a refused row out of the pending ones, once its dead letter is out (a relay
        that dies in between sends the dead letter again, never loses it)."""
        if found.kind != "invalid_topic":  # `<invalid>.dlq` would be as invalid
            await self._dead_letter(broker, row, found)
        await self.pool.execute(
            "UPDATE outbox SET refused_at = clock_timestamp(), refusal_kind = $2, refusal_detail = $3"
            f" WHERE id = $1 AND {PENDING}",
            row["id"], found.kind, found.detail,
        )
        OUTBOX_REFUSED.labels(self.schema, found.kind).inc()
        log.error("outbox_event_refused", schema=self.schema, outbox_id=row["id"], event_id=str(row["event_id"]),
                  topic=row["topic"], kind=found.kind, detail=found.detail)

    async def _dead_letter(self, broker: KafkaBroker, row: asyncpg.Record, found: Refusal) -> None:
        topic = refusal_dead_letter_topic(row["topic"])
        if topic not in self._dead_letter_topics:
            await ensure_topics(self.bootstrap_servers, [topic])
            self._dead_letter_topics.add(topic)
        future = await broker.publish(b"", topic, key=row["key"], headers={
            DLQ_ERROR_KIND: REFUSED_BY_BROKER,
            DLQ_ERROR_DETAIL: f"{found.kind}: {found.detail}",
            DLQ_SOURCE_TOPIC: row["topic"],
            OUTBOX_SCHEMA_HEADER: self.schema,
            OUTBOX_ID_HEADER: str(row["id"]),
            EVENT_ID_HEADER: str(row["event_id"]),
        }, no_confirm=True)
        await self._acknowledged([future])
        error = delivery_error(future)
        if error is not None:
            if refusal(error, row) is None:
                raise error
            log.error("outbox_dead_letter_refused", schema=self.schema, outbox_id=row["id"], topic=topic,
                      error=type(error).__name__)

    async def purge(self) -> int:
        """Delete rows published more than `retention_seconds` ago (their events are in
        Kafka; a published row is kept that long only to look into). Rows still pending or
        set aside stay. Returns how many went."""
        deleted = 0
        while True:
            status = await self.pool.execute(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE published_at <"
                " clock_timestamp() - make_interval(secs => $1) ORDER BY id LIMIT 10000)",
                float(self.retention_seconds))
            count = int(status.split()[-1])
            deleted += count
            if count < 10000:
                break
        if deleted:
            OUTBOX_PURGED.labels(self.schema).inc(deleted)
        return deleted

    async def observe_backlog(self) -> None:
        """Set the backlog gauges from the table (whether or not Kafka answers): pending
        rows only; those set aside are counted apart."""
        row = await self.pool.fetchrow(
            "SELECT pending.count AS pending, pending.oldest,"
            " (SELECT count(*) FROM outbox WHERE refused_at IS NOT NULL) AS set_aside"
            " FROM (SELECT count(*), coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0) AS oldest"
            f"       FROM outbox WHERE {PENDING}) AS pending")
        OUTBOX_BACKLOG.labels(self.schema).set(row["pending"])
        OUTBOX_OLDEST_AGE.labels(self.schema).set(float(row["oldest"]))
        OUTBOX_SET_ASIDE.labels(self.schema).set(row["set_aside"])
