"""One handler per command, reached the same way from HTTP and from Kafka.

A handler runs inside the transaction the bus opens and records its state change and its
events (through the outbox) there. From Kafka, each command runs in a savepoint of the
partition batch's transaction: a refused or undecodable command is rolled back alone and
its dead letter is written to the outbox in the same transaction as the consumer
position, so it is neither lost nor sent twice, and never blocks the partition.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import structlog
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from pydantic import BaseModel, TypeAdapter, ValidationError

from alfi_contracts import EventData, command_message_union
from alfi_contracts.envelope import describe
from alfi_contracts.topics import (
    DLQ_ERROR_DETAIL, DLQ_ERROR_KIND, DLQ_SOURCE_OFFSET, DLQ_SOURCE_PARTITION, DLQ_SOURCE_TOPIC,
    dead_letter_topic, events_topic,
)

from .consumer import Batches
from .errors import Conflict, NotFound, Rejected
from .metrics import COMMANDS, DEAD_LETTERS
from .outbox import OutboxMessage, emit, enqueue

log = structlog.get_logger("alfi.commands")


@dataclass(frozen=True)
class Context:
    """Who caused this: propagated into every event as correlationid / causationid."""

    correlation_id: str
    causation_id: str


@dataclass
class Outcome:
    """What a handler answers: `created` (201) for a new thing; False (200) for an
    identical create replayed or a change to an existing thing."""

    body: dict[str, Any]
    created: bool = True


@dataclass
class Unit:
    """What a handler works with: the transaction's connection and a way to emit events."""

    conn: asyncpg.Connection
    schema: str
    service: str
    context: Context
    emitted: list[EventData] = field(default_factory=list)

    async def emit(self, data: EventData) -> None:
        await emit(self.conn, self.schema, events_topic(self.service), data,
                   self.context.correlation_id, self.context.causation_id)
        self.emitted.append(data)


Handler = Callable[[Unit, Any], Awaitable[Outcome]]


def fingerprint(command: BaseModel) -> str:
    """A stable hash of a command's content, to tell a replay from a different request."""
    canonical = json.dumps(command.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class CommandBus:
    def __init__(self, service: str, schema: str, handlers: dict[str, Handler]) -> None:
        self.service = service
        self.schema = schema
        self.handlers = handlers
        self.messages = TypeAdapter(command_message_union(service)) if handlers else None

    async def execute(self, pool: asyncpg.Pool, name: str, command: BaseModel, context: Context) -> Outcome:
        async with pool.acquire() as conn, conn.transaction():
            return await self.run(conn, name, command, context)

    async def run(self, conn: asyncpg.Connection, name: str, command: BaseModel, context: Context) -> Outcome:
        unit = Unit(conn, self.schema, self.service, context)
        try:
            outcome = await self.handlers[name](unit, command)
        except Rejected as error:
            COMMANDS.labels(self.service, name, "rejected", error.kind).inc()
            log.info("command_rejected", command=name, kind=error.kind, status=error.status,
                     correlationid=context.correlation_id, causationid=context.causation_id)
            raise
        COMMANDS.labels(self.service, name, "accepted", "").inc()
        # Ids and closed labels only: the event types, never the command's content.
        log.info("command_accepted", command=name, replayed=not outcome.created and not unit.emitted,
                 event_types=[e.type for e in unit.emitted],
                 correlationid=context.correlation_id, causationid=context.causation_id)
        return outcome

    async def handle_kafka_batch(self, conn: asyncpg.Connection, batches: Batches) -> None:
        for tp, record in ((tp, r) for tp, records in batches.items() for r in records):
            try:
                async with conn.transaction():  # a savepoint per command
                    message = self.messages.validate_json(record.value or b"")
                    headers = {k: v.decode(errors="replace") for k, v in record.headers or ()}
                    correlation = headers.get("correlationid") or str(uuid.uuid4())
                    causation = f"{tp.topic}:{tp.partition}:{record.offset}"
                    await self.run(conn, message.command, message.data, Context(correlation, causation))
            except ValidationError as error:
                COMMANDS.labels(self.service, "unreadable", "rejected", "invalid").inc()
                await self.dead_letter(conn, tp, record, "invalid", describe(error))
            except Rejected as error:
                await self.dead_letter(conn, tp, record, error.kind, error.detail)

    async def dead_letter(
        self, conn: asyncpg.Connection, tp: TopicPartition, record: ConsumerRecord, kind: str, detail: str
    ) -> None:
        log.warning("command_dead_lettered", topic=tp.topic, partition=tp.partition,
                    offset=record.offset, kind=kind)
        await enqueue(conn, self.schema, [dead_letter(tp, record, kind, detail)])


def dead_letter(tp: TopicPartition, record: ConsumerRecord, kind: str, detail: str) -> OutboxMessage:
    """The message as it came, to `<topic>.dlq`, with why and where from in headers."""
    DEAD_LETTERS.labels(tp.topic, kind).inc()
    return OutboxMessage(
        event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"dlq:{tp.topic}:{tp.partition}:{record.offset}"),
        topic=dead_letter_topic(tp.topic),
        key=record.key or b"",
        payload=record.value or b"",
        headers={
            DLQ_ERROR_KIND: kind,
            DLQ_ERROR_DETAIL: detail[:1000],
            DLQ_SOURCE_TOPIC: tp.topic,
            DLQ_SOURCE_PARTITION: str(tp.partition),
            DLQ_SOURCE_OFFSET: str(record.offset),
        },
    )


async def insert_once(
    conn: asyncpg.Connection, table: str, id_column: str, values: dict[str, Any], command: BaseModel
) -> tuple[asyncpg.Record, bool]:
    """Insert a created thing under its (possibly client-chosen) id, exactly once.

    Returns (row, created). The same id with the same command content returns the
    original row (a safe retry); the same id with other content is a Conflict.
    `table` and the column names come from the code, never from a request.
    """
    digest = fingerprint(command)
    columns = [*values, "request_hash"]
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    row = await conn.fetchrow(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"
        f" ON CONFLICT ({id_column}) DO NOTHING RETURNING *",
        *values.values(), digest,
    )
    if row is not None:
        return row, True
    existing = await conn.fetchrow(f"SELECT * FROM {table} WHERE {id_column} = $1", values[id_column])
    if existing["request_hash"] != digest:
        raise Conflict(f"{id_column} {values[id_column]} was already used for other content.", field=id_column)
    return existing, False


def record_view(row: asyncpg.Record) -> dict[str, Any]:
    """A write-model row as an API answer: bookkeeping columns left out."""
    return {k: v for k, v in dict(row).items() if k not in ("request_hash", "created_at")}


async def locked(conn: asyncpg.Connection, table: str, id_column: str, id_value: Any, what: str) -> asyncpg.Record:
    """The row of `table` with that id, locked for this transaction; NotFound otherwise.
    `table` and `id_column` come from the code, never from a request."""
    row = await conn.fetchrow(f"SELECT * FROM {table} WHERE {id_column} = $1 FOR UPDATE", id_value)
    if row is None:
        raise NotFound(f"No {what} {id_value}.", field=id_column)
    return row
