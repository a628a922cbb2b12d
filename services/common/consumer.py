"""A Kafka consumer whose position lives in PostgreSQL, beside the effect it feeds.

Each poll returns records per partition; the poll is applied and every partition's next
offset stored in one transaction. On (re)assignment the consumer seeks to the stored
position, so a redelivered record is never applied twice and a crash at any instant
resumes exactly where the last commit left off. Offsets are also committed to Kafka
afterwards, in the background and best effort, only so that lag shows in Kafka's own
tools.

Failures are handled here once, for every consumer (STYLE.md 11):
- A dependency away (Kafka, PostgreSQL: services.common.faults) rolls the poll back; the
  consumer reconnects with backoff and resumes from its stored positions.
- Anything else a poll raises is a record's fault or a bug: the poll is applied again
  record by record, each in a savepoint, and a record that still fails goes to
  `<topic>.dlq` (kind `unprocessable`, the exception's class and place in the detail)
  in the transaction that moves the position past it. No record stops the stream.
- A handler may defer a partition from one record on (a Kafka command whose household
  is not replicated yet): the records before it commit, the partition is paused and
  read again from that record after the delay the handler asks for.
- A gap is never skipped: a stored position below the partition's log start (records
  deleted), above its end (topic recreated), or a partition that must be read from
  offset 0 whose log no longer starts there, stops that partition (paused, metric
  `alfi_consumer_partition_gap_messages`, error log) until an operator decides
  (`python -m services.common.positions`); the other partitions go on.
- If the task dies anyway, `run` restarts it with exponential backoff and jitter, logs
  the reason at error level and counts it; `running` turns False meanwhile (readiness).

Throughput: the consumer keeps one connection for its transactions while it runs (no
pool reset between polls), and the next poll is prepared while the previous one's
transaction is in flight (see `prepare`).

aiokafka directly, not a FastStream subscriber: FastStream commits positions to Kafka,
and exactly-once in effect needs them in the database transaction.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError, OffsetOutOfRangeError
from aiokafka.structs import ConsumerRecord

from alfi_contracts import ContractError

from . import faults
from .kafka import Kafka, connection, ensure_topics
from .metrics import (
    BATCH_DURATION, CONSUMED, CONSUMER_GAP, CONSUMER_RESTARTS, CONSUMER_RETRIES, CONSUMER_RUNNING, DEAD_LETTERS,
)

log = structlog.get_logger("alfi.consumer")

Batches = dict[TopicPartition, list[ConsumerRecord]]

# Why a record goes to `<topic>.dlq` (alfi-error-kind): the contracts' kinds, the
# commands' refusals, and a failure the handler did not expect.
DEAD_LETTER_KINDS = (*ContractError.KINDS, "invalid", "not_found", "conflict", "household_not_yet_known",
                     "unprocessable")


@dataclass(frozen=True)
class Deferral:
    """Read this partition again from `offset` after `delay` seconds (records before it
    in the poll are applied)."""

    offset: int
    delay: float
    reason: str


Deferrals = dict[TopicPartition, Deferral]
# Applies a poll (as `prepare` made it) inside the consumer's transaction; may return the
# partitions it deferred.
BatchHandler = Callable[[asyncpg.Connection, Any], Awaitable[Deferrals | None]]
# Writes a record's dead letter in the caller's transaction.
DeadLetterWriter = Callable[[asyncpg.Connection, TopicPartition, ConsumerRecord, str, str], Awaitable[None]]


@dataclass(frozen=True)
class Gap:
    """Why a partition is stopped: `missing` records cannot be read at `position`."""

    position: int | None  # the stored position (None: never stored, full history required)
    log_start: int
    end: int

    @property
    def missing(self) -> int:
        if self.position is None:
            return self.log_start
        return self.log_start - self.position if self.position < self.log_start else self.position - self.end


def gap_of(position: int | None, log_start: int, end: int, full_history: bool) -> Gap | None:
    """Pure: whether reading a partition from `position` would skip records silently."""
    if position is None:
        return Gap(None, log_start, end) if full_history and log_start > 0 else None
    if position < log_start or position > end:
        return Gap(position, log_start, end)
    return None


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
        for tp in revoked:
            self.owner.forget(tp)

    async def on_partitions_assigned(self, assigned) -> None:  # noqa: ANN001
        try:
            await self.owner.seek_to_stored(list(assigned))
        except Exception as error:  # noqa: BLE001 - aiokafka would only log it: the loop raises it
            self.owner.assignment_error = error


_FAILED = object()  # `prepare` raised: the poll goes record by record


class TransactionalConsumer:
    def __init__(
        self, pool: asyncpg.Pool, name: str, topics: Sequence[str], kafka: Kafka,
        handle_batch: BatchHandler, *, dead_letter: DeadLetterWriter, max_records: int = 500,
        search_path: Callable[[], str] | None = None, group_id: str | None = None,
        prepare: Callable[[Batches], Any] | None = None, full_history: bool = True,
        partitions: Sequence[TopicPartition] | None = None,
    ) -> None:
        self.pool = pool
        self.name = name
        self.topics = list(topics)
        self.kafka = connection(kafka)
        self.handle_batch = handle_batch
        self.dead_letter = dead_letter
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
        # Event topics keep every record: a partition never read must start at offset 0.
        # Command topics expire; a new consumer starts at their log start.
        self.full_history = full_history
        # Given partitions are assigned, not shared through the group (a stats rebuild's
        # workers split them by number, so a household's partitions of every topic go to
        # one of them; no rebalance). Only the position commits use the group then.
        self.partitions = list(partitions) if partitions is not None else None
        self.positions: dict[TopicPartition, int] = {}
        self.gaps: dict[TopicPartition, Gap] = {}
        self.unstored: set[TopicPartition] = set()  # assigned with no stored position
        self.deferred: dict[TopicPartition, tuple[int, float]] = {}  # tp -> (offset, resume at)
        self.consumer: AIOKafkaConsumer | None = None
        self.conn: asyncpg.Connection | None = None  # held while consuming
        self.conn_search_path: str | None = None
        self.committing: asyncio.Task | None = None  # the background Kafka commit
        self.state = "starting"  # running | waiting | failed (restarting after a failure)
        self.failures = 0
        self.progressed = False  # a poll answered since the last (re)connection
        self.applied = 0
        self.dead_lettered = 0
        self.stopping = False
        self.gaps_checked = 0.0
        self.gap_recheck_seconds = 15.0  # how soon an operator's new position is noticed
        self.assignment_error: Exception | None = None
        # Set once every assigned partition has been read to its end since start.
        self.caught_up = asyncio.Event()
        CONSUMER_RUNNING.labels(name).set(1)
        for topic in self.topics:  # series at 0, so the first dead letter shows as an increase
            for kind in DEAD_LETTER_KINDS:
                DEAD_LETTERS.labels(topic, kind)

    @property
    def running(self) -> bool:
        """False only while restarting after a failure (waiting for Kafka or PostgreSQL
        is running: the dependency's own check says it is away)."""
        return self.state != "failed"

    async def run(self) -> None:
        attempt = 0
        while not self.stopping:
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Restart:
                log.info("consumer_restarting", consumer=self.name)
                continue
            except Exception as error:  # noqa: BLE001 - every failure is classified here, once
                if faults.transient(error):
                    self.state = "waiting"
                    log.warning("consumer_unavailable", consumer=self.name, error=type(error).__name__)
                else:
                    self.state = "failed"
                    self.failures += 1
                    CONSUMER_RUNNING.labels(self.name).set(0)
                    CONSUMER_RESTARTS.labels(self.name, type(error).__name__).inc()
                    log.error("consumer_failed", consumer=self.name, error=faults.where(error),
                              restarts=self.failures)
                # The backoff grows while failures follow each other, and starts again
                # after the consumer has read again.
                attempt = 1 if self.progressed else attempt + 1
                await asyncio.sleep(backoff(attempt))
            else:
                attempt = 0

    async def _consume(self) -> None:
        # Subscribing to a topic that does not exist yet would only notice it at the next
        # metadata refresh (5 min by default): create it first, with the platform's layout.
        self.progressed = False
        await ensure_topics(self.kafka, self.topics)
        self.consumer = AIOKafkaConsumer(
            **self.kafka.client_options(), group_id=self.group_id,
            client_id=self.name, enable_auto_commit=False,
            # Never reset a position silently (the default would jump to the log start or
            # the end): an out-of-range position is a gap, reported and stopped.
            auto_offset_reset="none",
            metadata_max_age_ms=30_000,  # notice new partitions/topics within 30 s, not 5 min
        )
        await self.consumer.start()
        try:
            if self.partitions is None:
                self.consumer.subscribe(self.topics, listener=_SeekToStored(self))
            else:
                self.consumer.assign(self.partitions)
                await self.seek_to_stored(self.partitions)
            writing: asyncio.Task | None = None
            try:
                while not self.stopping:
                    if writing is not None and writing.done():
                        await writing  # surfaces its failure (or Restart) now, not at the next poll
                        writing = None
                    if self.assignment_error is not None:
                        error, self.assignment_error = self.assignment_error, None
                        raise error  # partitions without a position: reconnect and seek again
                    self._resume_due()
                    if self.gaps and time.monotonic() - self.gaps_checked > self.gap_recheck_seconds:
                        await self._recheck_gaps()
                    try:
                        batches = await self.consumer.getmany(timeout_ms=500, max_records=self.max_records)
                    except OffsetOutOfRangeError as error:
                        await self._out_of_range(error)
                        continue
                    self._mark_running()
                    if not batches:
                        if writing is None and not self.caught_up.is_set():
                            await self._check_caught_up()
                        continue
                    prepared = await self._prepare_or_fail(batches)
                    if writing is not None:
                        await writing  # one transaction at a time, in poll order
                        writing = None
                    held = {tp for tp in batches if tp in self.deferred or tp in self.gaps}
                    if held:  # read before the previous poll deferred them: read again later
                        batches = {tp: records for tp, records in batches.items() if tp not in held}
                        if not batches:
                            continue
                        prepared = await self._prepare_or_fail(batches)
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
            await self._release()
            self.deferred.clear()
            await self.consumer.stop()
            self.consumer = None

    def _mark_running(self) -> None:
        self.progressed = True
        if self.state != "running":
            if self.state == "failed":
                log.info("consumer_recovered", consumer=self.name)
            self.state = "running"
            CONSUMER_RUNNING.labels(self.name).set(1)

    async def _prepare(self, batches: Batches) -> Any:
        if self.prepare is None:
            return batches
        prepared = self.prepare(batches)
        return await prepared if asyncio.iscoroutine(prepared) else prepared

    async def _prepare_or_fail(self, batches: Batches) -> Any:
        try:
            return await self._prepare(batches)
        except Exception as error:  # noqa: BLE001 - a record's fault: isolated in apply
            if faults.transient(error):
                raise
            return _FAILED

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
            try:
                await self.pool.release(conn)
            except Exception:  # noqa: BLE001 - a broken connection: the pool drops it
                conn.terminate()

    # ------------------------------------------------------------------ positions and gaps

    async def seek_to_stored(self, assigned: list[TopicPartition]) -> None:
        """On assignment: seek each partition to its stored position (a partition never
        applied: to offset 0, or, for a topic that expires, to its log start).

        No Kafka request here: it runs inside the group's rebalance, where a request to a
        partition leader that just moved could fail and leave partitions without any
        position. A position outside the log makes the next fetch fail with
        OffsetOutOfRange (the reset policy is "none"), which `_out_of_range` handles."""
        async with self.pool.acquire() as conn, conn.transaction():
            await self.enter_schema(conn)
            positions = await stored_positions(conn, self.name)
        consumer = self.consumer
        assert consumer is not None
        for tp in assigned:
            stored = positions.get(tp)
            if stored is None:
                self.unstored.add(tp)
            position = 0 if stored is None else stored
            consumer.seek(tp, position)
            self.positions[tp] = position
            if self.gaps.pop(tp, None) is not None:  # the next fetch says whether it still is one
                consumer.resume(tp)
                CONSUMER_GAP.labels(self.name, tp.topic, str(tp.partition)).set(0)

    def forget(self, tp: TopicPartition) -> None:
        self.positions.pop(tp, None)
        self.unstored.discard(tp)
        self.deferred.pop(tp, None)
        if self.gaps.pop(tp, None) is not None:
            CONSUMER_GAP.labels(self.name, tp.topic, str(tp.partition)).set(0)

    def _stop_on_gap(self, tp: TopicPartition, gap: Gap) -> None:
        assert self.consumer is not None
        self.consumer.pause(tp)
        if self.gaps.get(tp) != gap:
            log.error("consumer_partition_gap", consumer=self.name, topic=tp.topic, partition=tp.partition,
                      position=gap.position, log_start=gap.log_start, end=gap.end, missing=gap.missing)
        self.gaps[tp] = gap
        self.gaps_checked = time.monotonic()
        CONSUMER_GAP.labels(self.name, tp.topic, str(tp.partition)).set(gap.missing)

    def _clear_gap(self, tp: TopicPartition) -> None:
        if self.gaps.pop(tp, None) is not None:
            log.warning("consumer_partition_gap_resolved", consumer=self.name, topic=tp.topic,
                        partition=tp.partition)
            assert self.consumer is not None
            self.consumer.resume(tp)
        CONSUMER_GAP.labels(self.name, tp.topic, str(tp.partition)).set(0)

    async def _out_of_range(self, error: OffsetOutOfRangeError) -> None:
        """The broker says a fetch position is outside the log: a partition never applied
        whose log no longer starts at 0, a position below the log start (records
        deleted) or above the end (the topic was recreated)."""
        assert self.consumer is not None
        fetched = error.args[0] if error.args and isinstance(error.args[0], dict) else {}
        tps = list(fetched) or [tp for tp in self.consumer.assignment() if tp not in self.gaps]
        starts = await self.consumer.beginning_offsets(tps)
        ends = await self.consumer.end_offsets(tps)
        for tp in tps:
            never_applied = tp in self.unstored and self.positions.get(tp, 0) == 0
            position = None if never_applied else self.positions.get(tp, fetched.get(tp, 0))
            gap = gap_of(position, starts[tp], ends[tp], self.full_history)
            if gap is None:  # a topic that expires, read from where it starts now
                self.consumer.seek(tp, starts[tp])
                self.positions[tp] = starts[tp]
                continue
            self._stop_on_gap(tp, gap)
            self.consumer.seek(tp, ends[tp])  # a valid position while paused: nothing is read

    async def _recheck_gaps(self) -> None:
        """An operator may have moved a stopped partition's stored position: if it is in
        the log now, seek there and read on."""
        assert self.consumer is not None
        self.gaps_checked = time.monotonic()
        tps = list(self.gaps)
        async with self.pool.acquire() as conn, conn.transaction():
            await self.enter_schema(conn)
            positions = await stored_positions(conn, self.name)
        starts = await self.consumer.beginning_offsets(tps)
        ends = await self.consumer.end_offsets(tps)
        for tp in tps:
            stored = positions.get(tp)
            if gap_of(stored, starts[tp], ends[tp], self.full_history) is None:
                position = starts[tp] if stored is None else stored
                self.consumer.seek(tp, position)
                self.positions[tp] = position
                self._clear_gap(tp)

    def _resume_due(self) -> None:
        if not self.deferred:
            return
        now = time.monotonic()
        assert self.consumer is not None
        for tp, (offset, due) in list(self.deferred.items()):
            if due <= now:
                del self.deferred[tp]
                self.consumer.seek(tp, offset)
                self.consumer.resume(tp)

    def _defer(self, deferrals: Deferrals) -> None:
        assert self.consumer is not None
        for tp, deferral in deferrals.items():
            self.consumer.pause(tp)
            self.consumer.seek(tp, deferral.offset)
            self.deferred[tp] = (deferral.offset, time.monotonic() + deferral.delay)
            CONSUMER_RETRIES.labels(self.name, deferral.reason).inc()
            log.info("consumer_partition_deferred", consumer=self.name, topic=tp.topic, partition=tp.partition,
                     offset=deferral.offset, reason=deferral.reason, delay_s=round(deferral.delay, 2))

    async def _check_caught_up(self) -> None:
        assert self.consumer is not None
        # A stopped partition (gap) cannot be read: it is reported on its own, not waited for.
        assigned = [tp for tp in self.consumer.assignment() if tp not in self.gaps]
        if assigned:
            ends = await self.consumer.end_offsets(assigned)
            # Nothing is in flight here, so where the consumer reads next is what it has
            # applied (or skipped: an empty partition).
            if all([await self.consumer.position(tp) >= end for tp, end in ends.items()]):
                self.caught_up.set()
        elif self.consumer.assignment():
            self.caught_up.set()

    async def stop(self, task: asyncio.Task, timeout: float = 10.0) -> None:
        """Finish the poll in hand (it commits or rolls back whole), then stop."""
        self.stopping = True
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except (TimeoutError, asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping regardless
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    # ------------------------------------------------------------------ applying a poll

    async def apply(self, batches: Batches, prepared: Any) -> None:
        """One transaction for the whole poll: every partition's records and positions.
        A poll that fails for any other reason than a dependency is applied again record
        by record (`_isolate`)."""
        started = time.perf_counter()
        conn = await self._connection()
        try:
            if prepared is _FAILED:
                applied = await self._isolate(conn, batches)
            else:
                try:
                    applied = await self._apply_poll(conn, batches, prepared)
                except (Restart, asyncio.CancelledError):
                    raise
                except Exception as error:  # noqa: BLE001 - classified: a dependency, or a record
                    if faults.transient(error):
                        raise
                    log.warning("consumer_poll_failed", consumer=self.name, error=faults.where(error),
                                records=sum(len(r) for r in batches.values()))
                    applied = await self._isolate(conn, batches)
        except Exception as error:
            if faults.database_unavailable(error):
                await self._release()  # a broken connection goes back to the pool, which drops it
            raise
        if applied is None:
            return
        fresh, positions, deferrals = applied
        self.positions.update(positions)
        self.unstored.difference_update(positions)
        if deferrals:
            self._defer(deferrals)
        self.applied += sum(len(records) for records in fresh.values())
        BATCH_DURATION.labels(self.name).observe(time.perf_counter() - started)
        for tp, records in fresh.items():
            CONSUMED.labels(self.name, tp.topic).inc(len(records))
        if self.committing is None or self.committing.done():
            self.committing = asyncio.create_task(self._commit_to_kafka())

    async def _fresh(self, conn: asyncpg.Connection, batches: Batches) -> Batches:
        """The poll's records not applied yet (a restart may re-read some), positions locked."""
        # Only the polled partitions' rows, in one order: consumers sharing the partitions
        # (a group's members, a rebuild's workers) then wait on each other only for a
        # partition both hold (during a rebalance), never for the whole topic.
        stored = await conn.fetch(
            "SELECT topic, partition, next_offset FROM consumer_positions"
            " WHERE consumer = $1 AND (topic, partition) IN (SELECT * FROM unnest($2::text[], $3::int[]))"
            " ORDER BY topic, partition FOR UPDATE",
            self.name, [tp.topic for tp in batches], [tp.partition for tp in batches],
        )
        floor = {TopicPartition(r["topic"], r["partition"]): r["next_offset"] for r in stored}
        return {
            tp: kept for tp, records in batches.items()
            if (kept := records if records[0].offset >= floor.get(tp, 0)  # the usual case: all new
                else [r for r in records if r.offset >= floor.get(tp, 0)])
        }

    async def _apply_poll(self, conn: asyncpg.Connection, batches: Batches, prepared: Any):  # noqa: ANN202
        async with conn.transaction():
            fresh = await self._fresh(conn, batches)
            if not fresh:
                return None
            if fresh != batches:  # some were applied before a restart: prepare only the rest
                prepared = await self._prepare(fresh)
            deferrals = await self.handle_batch(conn, prepared) or {}
            fresh = _before_deferrals(fresh, deferrals)
            positions = _positions(fresh, deferrals)
            await store_positions(conn, self.name, positions)
        return fresh, positions, deferrals

    async def _isolate(self, conn: asyncpg.Connection, batches: Batches):  # noqa: ANN202
        """Apply each record alone, in a savepoint; dead-letter those that fail."""
        async with conn.transaction():
            fresh = await self._fresh(conn, batches)
            if not fresh:
                return None
            deferrals: Deferrals = {}
            for tp, records in fresh.items():
                for record in records:
                    try:
                        async with conn.transaction():
                            single = {tp: [record]}
                            deferral = (await self.handle_batch(conn, await self._prepare(single)) or {}).get(tp)
                    except (Restart, asyncio.CancelledError):
                        raise
                    except Exception as error:  # noqa: BLE001 - this record's fault, unless a dependency's
                        if faults.transient(error):
                            raise
                        self.dead_lettered += 1
                        log.warning("consumer_record_dead_lettered", consumer=self.name, topic=tp.topic,
                                    partition=tp.partition, offset=record.offset, error=faults.where(error))
                        await self.dead_letter(conn, tp, record, "unprocessable", faults.where(error))
                        continue
                    if deferral is not None:
                        deferrals[tp] = deferral
                        break
            fresh = _before_deferrals(fresh, deferrals)
            positions = _positions(fresh, deferrals)
            await store_positions(conn, self.name, positions)
        return fresh, positions, deferrals

    async def _commit_to_kafka(self) -> None:
        """Informational only (lag in Kafka's tools); the database position is the truth."""
        consumer = self.consumer
        if consumer is None:
            return
        assigned = consumer.assignment()
        positions = {tp: offset for tp, offset in self.positions.items() if tp in assigned}
        if positions:
            try:
                await consumer.commit(positions)
            except (KafkaError, AssertionError):
                pass


def _before_deferrals(fresh: Batches, deferrals: Deferrals) -> Batches:
    """The records applied: those of a deferred partition stop before its deferral."""
    if not deferrals:
        return fresh
    kept = {tp: [r for r in records if tp not in deferrals or r.offset < deferrals[tp].offset]
            for tp, records in fresh.items()}
    return {tp: records for tp, records in kept.items() if records}


def _positions(fresh: Batches, deferrals: Deferrals) -> dict[TopicPartition, int]:
    positions = {tp: records[-1].offset + 1 for tp, records in fresh.items()}
    positions.update({tp: deferral.offset for tp, deferral in deferrals.items()})
    return positions


def backoff(attempt: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff with full jitter in [half, whole] of the step (AWS's advice:
    instances restarting together do not retry in step)."""
    step = min(cap, base * 2 ** min(attempt - 1, 16))
    return random.uniform(step / 2, step)
