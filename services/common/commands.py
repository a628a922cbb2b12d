"""One handler per command, reached the same way from HTTP and from Kafka.

A handler runs inside the transaction the bus opens and records its state change and its
events (through the outbox) there. From Kafka, each command runs in a savepoint of the
partition batch's transaction: a refused or undecodable command is rolled back alone and
its dead letter is written to the outbox in the same transaction as the consumer
position, so it is neither lost nor sent twice, and never blocks the partition.

Least privilege (access.py): a command from HTTP carries the principal of its token; when
that token is bound to territories or a worker, `run` asks the service's access policy,
in the command's transaction, what the command touches, and refuses it (403) outside
them. A command from Kafka carries no token (the bus is guarded by SASL ACLs): no
principal, no check. Every command is audited (audit.py): accepted ones in their own
transaction, refused ones once that transaction rolled back.
"""

from __future__ import annotations

import hashlib
import json
import re
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
from alfi_contracts.topics import events_topic

from . import audit, keyring
from .access import AccessPolicy, NoRule, Principal, authorise
from .consumer import Batches, Deferral, Deferrals
from .db import stateless
from .deadletters import write_dead_letter
from .errors import Conflict, NotFound, NotYetKnown, Rejected
from .metrics import COMMANDS
from .outbox import OutboxMessage, enqueue, sealed_event

log = structlog.get_logger("alfi.commands")


# What CloudEvents' correlationid extension accepts (alfi_contracts' Token).
_TOKEN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# The ids a command's own object goes by, for the audit trail (the household's has a column).
_OBJECT_IDS = ("action_id", "interview_id", "workshop_id", "rehousing_id", "situation_id", "meeting_id")


@dataclass(frozen=True)
class Context:
    """Who caused this: propagated into every event as correlationid / causationid.

    `principal`: the token of an HTTP request (checked against the access policy);
    `actor`: who to audit when there is no token (`kafka:<topic>`, a job's name)."""

    correlation_id: str
    causation_id: str
    principal: Principal | None = None
    actor: str | None = None

    @classmethod
    def caused_by(cls, causation_id: str, supplied_correlation: str | None, *,
                  principal: Principal | None = None, actor: str | None = None) -> Context:
        """A context keeping the caller's correlation id when it is a valid token, else a
        new one: a malformed id from HTTP or a Kafka header never refuses a command."""
        correlation = supplied_correlation if supplied_correlation and _TOKEN.match(supplied_correlation) else None
        return cls(correlation or str(uuid.uuid4()), causation_id, principal, actor)

    def audit_entry(self, service: str, action: str, outcome: str, ids: Any = None) -> audit.Entry:
        """An audit row for this context; `ids`: a mapping or model holding the household's
        and the object's ids (only those are read)."""
        get = ids.get if isinstance(ids, dict) else (lambda name: getattr(ids, name, None))
        objects = (_uuid(get(name)) for name in _OBJECT_IDS)
        principal = self.principal
        return audit.Entry(
            actor=principal.label if principal else self.actor or "unattributed",
            token_id=principal.token_id if principal else None,
            service=service, action=action, household_id=_uuid(get("household_id")),
            object_id=next((str(o) for o in objects if o is not None), None),
            outcome=outcome, correlation_id=self.correlation_id,
        )


def _uuid(value: Any) -> uuid.UUID | None:
    """An id as a UUID; anything else (a malformed path segment) is not kept: no input
    other than ids reaches the audit trail."""
    try:
        return None if value is None else uuid.UUID(str(value))
    except ValueError:
        return None


@dataclass
class Outcome:
    """What a handler answers: `created` (201) for a new thing; False (200) for an
    identical create replayed or a change to an existing thing."""

    body: dict[str, Any]
    created: bool = True


@dataclass
class Unit:
    """What a handler works with: the transaction's connection and a way to emit events.

    Emitted events are sealed at once and written to the outbox with the command's audit
    row when the handler is done (`CommandBus.run`), in one statement: same transaction,
    fewer round trips."""

    conn: asyncpg.Connection
    schema: str
    service: str
    context: Context
    emitted: list[EventData] = field(default_factory=list)
    # How long an erasure lets the household's key live on (settings.erasure_grace_seconds).
    erasure_grace_seconds: float = 900.0
    messages: list[OutboxMessage] = field(default_factory=list)
    # Household keys read beforehand for a whole poll or group (keyring.locked_keys).
    keys: dict[uuid.UUID, bytes] = field(default_factory=dict)

    async def emit(self, data: EventData, key: bytes | None = None) -> None:
        """Record `data` for the outbox (`key`: the household's, when the handler holds it)."""
        key = key or self.keys.get(getattr(data, "household_id", None))  # type: ignore[arg-type]
        self.messages.append(await sealed_event(self.conn, events_topic(self.service), data,
                                                self.context.correlation_id, self.context.causation_id, key))
        self.emitted.append(data)


Handler = Callable[[Unit, Any], Awaitable[Outcome]]


def fingerprint(command: BaseModel) -> str:
    """A stable hash of a command's content, to tell a replay from a different request."""
    canonical = json.dumps(command.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class CommandBus:
    def __init__(self, service: str, schema: str, handlers: dict[str, Handler],
                 retry: RetryPolicy | None = None, access: AccessPolicy | None = None,
                 erasure_grace_seconds: float = 900.0) -> None:
        self.service = service
        self.erasure_grace_seconds = erasure_grace_seconds
        self.schema = schema
        self.handlers = handlers
        self.retry = retry or RetryPolicy()
        # What each command touches (services/<svc>/access.py); set with the HTTP routes,
        # the only way a principal reaches the bus. None: bound tokens are refused.
        self.access = access
        self.messages = TypeAdapter(command_message_union(service)) if handlers else None

    async def execute(self, pool: asyncpg.Pool, name: str, command: BaseModel, context: Context) -> Outcome:
        """Run a command in a transaction of its own (a refusal audited after it rolled
        back). HTTP requests go through `GroupCommit`, which shares transactions."""
        try:
            async with stateless(pool) as conn, conn.transaction():
                return await self.run(conn, name, command, context)
        except Rejected as error:
            # Rolled back with the command: recorded on its own, never failing the answer.
            await audit.record_quietly(pool, context.audit_entry(self.service, name, audit.rejected(error.kind), command))
            raise

    async def run(self, conn: asyncpg.Connection, name: str, command: BaseModel, context: Context) -> Outcome:
        """Check the principal's territories and worker, run the handler and audit the
        accepted command, all in the caller's transaction. A refusal (Rejected) is
        audited by the caller once that transaction has rolled back."""
        try:
            outcome, unit = await self.apply(conn, name, command, context)
        except Rejected as error:
            self.refused(name, context, error)
            raise
        await enqueue(conn, self.schema, unit.messages, [self.audit_entry(name, context, outcome)])
        self.accepted(name, context, outcome, unit)
        return outcome

    async def apply(self, conn: asyncpg.Connection, name: str, command: BaseModel,
                    context: Context, keys: dict[uuid.UUID, bytes] | None = None) -> tuple[Outcome, Unit]:
        """The access check and the handler, in the caller's transaction; the events are
        left in the unit for the caller to write (with the audit row, `enqueue`). `keys`:
        household keys the caller read for several commands at once (`household_keys`)."""
        unit = Unit(conn, self.schema, self.service, context, erasure_grace_seconds=self.erasure_grace_seconds,
                    keys=keys or {})
        if context.principal is not None and context.principal.bound:
            await self.authorise(conn, name, command, context.principal)
        try:
            outcome = await self.handlers[name](unit, command)
        except asyncpg.UniqueViolationError as error:
            # Two requests raced past the handler's checks (a rehousing of the same
            # household posted twice at once): the loser is told, like any conflict.
            raise Conflict(f"A concurrent request already recorded this ({error.constraint_name}).") from None
        return outcome, unit

    def audit_entry(self, name: str, context: Context, outcome: Outcome) -> audit.Entry:
        return context.audit_entry(self.service, name, audit.ACCEPTED, outcome.body)

    def accepted(self, name: str, context: Context, outcome: Outcome, unit: Unit) -> None:
        COMMANDS.labels(self.service, name, "accepted", "").inc()
        # Ids and closed labels only: the event types, never the command's content.
        log.info("command_accepted", command=name, replayed=not outcome.created and not unit.emitted,
                 event_types=[e.type for e in unit.emitted],
                 correlationid=context.correlation_id, causationid=context.causation_id)

    def refused(self, name: str, context: Context, error: Rejected) -> None:
        COMMANDS.labels(self.service, name, "rejected", error.kind).inc()
        log.info("command_rejected", command=name, kind=error.kind, status=error.status,
                 correlationid=context.correlation_id, causationid=context.causation_id)

    async def authorise(self, conn: asyncpg.Connection, name: str, command: BaseModel, principal: Principal) -> None:
        if self.access is None:
            raise NoRule(f"{self.service} has no access rules: a token bound to territories or a worker"
                         " cannot act here.")
        authorise(principal, await self.access(conn, name, command))

    async def handle_kafka_batch(self, conn: asyncpg.Connection, batches: Batches) -> Deferrals:
        """The poll's commands in the poll's transaction. First all of them at once in one
        savepoint, their events and audit rows written together (`apply_poll`); when any
        of them fails, that savepoint is rolled back and the poll runs again one command
        at a time (`handle_one_by_one`), where a refused command goes alone to the
        dead-letter topic. Refusals are rare: a poll usually costs one pass."""
        try:
            async with conn.transaction():
                applied = await self.apply_poll(conn, batches)
        except Exception:  # noqa: BLE001 - sorted out command by command below (ValidationError too)
            return await self.handle_one_by_one(conn, batches)
        for tp, record, name, context, outcome, unit in applied:
            self.retry.forget(tp, record.offset)
            self.accepted(name, context, outcome, unit)
        return {}

    async def apply_all(self, conn: asyncpg.Connection,
                        commands: list[tuple[str, BaseModel, Context]]) -> list[tuple[Outcome, Unit]]:
        """(name, command, context)s in order in the caller's transaction, without a
        savepoint each, their households' keys read at once and their events and audit
        rows written in one statement; raises at the first that fails. A Kafka poll's
        single pass and an HTTP group (group_commit.py)."""
        keys = await household_keys(conn, [command for _, command, _ in commands])
        done = [await self.apply(conn, name, command, context, keys) for name, command, context in commands]
        await enqueue(conn, self.schema, [m for _, unit in done for m in unit.messages],
                      [self.audit_entry(name, context, outcome)
                       for (name, _, context), (outcome, _) in zip(commands, done, strict=True)])
        return done

    async def apply_poll(self, conn: asyncpg.Connection, batches: Batches) -> list[tuple]:
        """Every command of the poll, in order, without a savepoint each; raises at the
        first that fails (unreadable, refused, not yet known, or anything else)."""
        read = [(tp, record, self.messages.validate_json(record.value or b""))
                for tp, records in batches.items() for record in records]
        commands = [(message.command, message.data, self._kafka_context(tp, record)) for tp, record, message in read]
        done = await self.apply_all(conn, commands)
        return [(tp, record, name, context, outcome, unit) for (tp, record, _), (name, _, context), (outcome, unit)
                in zip(read, commands, done, strict=True)]

    @staticmethod
    def _kafka_context(tp: TopicPartition, record: ConsumerRecord) -> Context:
        return Context.caused_by(f"{tp.topic}:{tp.partition}:{record.offset}",
                                 _header(record, "correlationid"), actor=f"kafka:{tp.topic}")

    async def handle_one_by_one(self, conn: asyncpg.Connection, batches: Batches) -> Deferrals:
        """Each command in a savepoint of the poll's transaction. A command whose household
        is not replicated yet defers its partition (the replica is usually a moment
        behind) until `retry.attempts` tries have failed; then, like any refused or
        unreadable command, it goes to the dead-letter topic."""
        deferrals: Deferrals = {}
        for tp, records in batches.items():
            for record in records:
                context = self._kafka_context(tp, record)
                message = None
                try:
                    async with conn.transaction():  # a savepoint per command
                        message = self.messages.validate_json(record.value or b"")
                        await self.run(conn, message.command, message.data, context)
                except ValidationError as error:
                    COMMANDS.labels(self.service, "unreadable", "rejected", "invalid").inc()
                    await self.dead_letter(conn, tp, record, "invalid", describe(error))
                    await audit.record(conn, context.audit_entry(self.service, "unreadable", audit.rejected("invalid")))
                except NotYetKnown as error:
                    deferral = self.retry.defer(tp, record.offset, error.kind)
                    if deferral is not None:
                        deferrals[tp] = deferral
                        break  # the partition's later commands wait behind this one, in order
                    await self.dead_letter(conn, tp, record, error.kind, error.detail)
                    await self._audit_refusal(conn, context, message, error)
                except Rejected as error:
                    await self.dead_letter(conn, tp, record, error.kind, error.detail)
                    await self._audit_refusal(conn, context, message, error)
                else:
                    self.retry.forget(tp, record.offset)
        return deferrals

    async def _audit_refusal(self, conn: asyncpg.Connection, context: Context, message: Any, error: Rejected) -> None:
        """In the batch's transaction, with the dead letter: exactly once, like it."""
        await audit.record(conn, context.audit_entry(self.service, message.command, audit.rejected(error.kind),
                                                     message.data))

    async def dead_letter(
        self, conn: asyncpg.Connection, tp: TopicPartition, record: ConsumerRecord, kind: str, detail: str
    ) -> None:
        self.retry.forget(tp, record.offset)
        log.warning("command_dead_lettered", topic=tp.topic, partition=tp.partition,
                    offset=record.offset, kind=kind)
        await write_dead_letter(conn, self.schema, tp, record, kind, detail)


class RetryPolicy:
    """How often a deferred record is tried again: exponential backoff from `base`
    seconds up to `max_delay`, `attempts` tries in all (the default, about 4 minutes,
    outlasts a broker restart, during which the household's enrolment cannot reach the
    replica) (counted per record, in memory: a restart starts
    the count again, which only delays the dead letter)."""

    def __init__(self, attempts: int = 14, base: float = 0.5, max_delay: float = 30.0) -> None:
        self.attempts = attempts
        self.base = base
        self.max_delay = max_delay
        self.tried: dict[tuple[str, int, int], int] = {}

    def defer(self, tp: TopicPartition, offset: int, reason: str) -> Deferral | None:
        key = (tp.topic, tp.partition, offset)
        tried = self.tried[key] = self.tried.get(key, 0) + 1
        if tried >= self.attempts:
            self.tried.pop(key, None)
            return None
        return Deferral(offset, min(self.base * 2 ** (tried - 1), self.max_delay), reason)

    def forget(self, tp: TopicPartition, offset: int) -> None:
        if self.tried:
            self.tried.pop((tp.topic, tp.partition, offset), None)


async def household_keys(conn: asyncpg.Connection, commands: list[BaseModel]) -> dict[uuid.UUID, bytes]:
    """The keys of the households these commands name, in one statement, to seal their
    events with (an enrolment's household has none yet: it makes its own)."""
    households = [h for c in commands if (h := getattr(c, "household_id", None)) is not None]
    return await keyring.locked_keys(conn, households) if households else {}


def _header(record: ConsumerRecord, name: str) -> str | None:
    """A header's text; absent, null-valued or not UTF-8 headers read as absent."""
    for key, value in record.headers or ():
        if key == name and value:
            try:
                return value.decode()
            except UnicodeDecodeError:
                return None
    return None


async def insert_once(
    conn: asyncpg.Connection, table: str, id_column: str, values: dict[str, Any], command: BaseModel,
    household_key: bytes | None = None,
) -> tuple[asyncpg.Record, bool]:
    """Insert a created thing under its (possibly client-chosen) id, exactly once.

    Returns (row, created). The same id with the same command content returns the
    original row (a safe retry); the same id with other content is a Conflict.
    `table` and the column names come from the code, never from a request.
    `household_key`: also store it as the created row's household key, in the same
    statement (keyring.key_creation); the row's `key_created` says whether it was (not
    when the household already had a key, or was erased).
    """
    digest = fingerprint(command)
    columns = [*values, "request_hash"]
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    insert = (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"
              f" ON CONFLICT ({id_column}) DO NOTHING RETURNING *")
    if household_key is None:
        row = await conn.fetchrow(insert, *values.values(), digest)
    else:
        key = f"${len(columns) + 1}"
        row = await conn.fetchrow(
            f"WITH created AS ({insert}), keyed AS ({keyring.key_creation('created', key)})"
            " SELECT created.*, EXISTS (SELECT 1 FROM keyed) AS key_created FROM created",
            *values.values(), digest, household_key)
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
