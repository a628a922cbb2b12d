"""Dead letters: how a consumer writes one, and the operator's tool to list them with their
errors and re-drive chosen ones to their source topic.

    python -m services.common.deadletters list [--topic alfi.intake.commands.dlq]
    python -m services.common.deadletters redrive --topic alfi.casework.commands.dlq --offset 0:12 [...]

`list` prints one line per message (partition:offset, source, kind, detail, key), never
the payload, which may hold personal data. `redrive` publishes the chosen messages,
unchanged, to the topic named in their `alfi-source-topic` header, once the cause is fixed;
the consumers' rules and idempotence apply as for any message.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord

from alfi_contracts.topics import (
    DLQ_ERROR_DETAIL, DLQ_ERROR_KIND, DLQ_SOURCE_OFFSET, DLQ_SOURCE_PARTITION, DLQ_SOURCE_TOPIC,
    dead_letter_topic,
)

from .kafka import read_to_end
from .metrics import DEAD_LETTERS
from .outbox import REFUSED_BY_BROKER, OutboxMessage, enqueue

REDRIVEN_FROM = "alfi-redriven-from"


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


async def write_dead_letter(
    conn: asyncpg.Connection, schema: str, tp: TopicPartition, record: ConsumerRecord, kind: str, detail: str
) -> None:
    """Record a dead letter in `schema`'s outbox, in the caller's transaction (with the
    position that moves past the record: neither lost nor sent twice)."""
    await enqueue(conn, schema, [dead_letter(tp, record, kind, detail)])


def dead_letter_writer(schema: str):  # noqa: ANN201 - a DeadLetterWriter for a consumer
    async def write(conn: asyncpg.Connection, tp: TopicPartition, record: ConsumerRecord, kind: str,
                    detail: str) -> None:
        await write_dead_letter(conn, schema, tp, record, kind, detail)

    return write


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]

    @property
    def source(self) -> str:
        return self.headers.get(DLQ_SOURCE_TOPIC, self.topic.removesuffix(".dlq"))

    def line(self) -> str:
        return (f"{self.topic} {self.partition}:{self.offset} from {self.source}"
                f" [{self.headers.get(DLQ_ERROR_KIND, '?')}] {self.headers.get(DLQ_ERROR_DETAIL, '')}"
                f" key={(self.key or b'').decode(errors='replace')}")


async def dead_letter_topics(bootstrap: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return sorted(t for t in await admin.list_topics() if t.endswith(".dlq"))
    finally:
        await admin.close()


async def read_all(bootstrap: str, topics: list[str]) -> list[DeadLetter]:
    letters = [DeadLetter(r.topic, r.partition, r.offset, r.key, r.value,
                          {k: v.decode(errors="replace") for k, v in r.headers})
               for r in await read_to_end(bootstrap, topics)]
    return sorted(letters, key=lambda d: (d.topic, d.partition, d.offset))


async def redrive(bootstrap: str, topic: str, positions: set[tuple[int, int]]) -> list[DeadLetter]:
    chosen = [d for d in await read_all(bootstrap, [topic]) if (d.partition, d.offset) in positions]
    missing = positions - {(d.partition, d.offset) for d in chosen}
    if missing:
        raise LookupError(f"no dead letter at {sorted(missing)} on {topic}")
    refused = [d for d in chosen if d.headers.get(DLQ_ERROR_KIND) == REFUSED_BY_BROKER]
    if refused:
        # The record carries no payload: the event is in its service's outbox, set aside.
        raise ValueError(
            "refused_by_broker dead letters carry no payload; put the outbox row back instead"
            " (UPDATE <alfi-outbox-schema>.outbox SET refused_at = NULL, refusal_kind = NULL,"
            " refusal_detail = NULL WHERE id = <alfi-outbox-id>): "
            + ", ".join(f"{d.partition}:{d.offset} (outbox id {d.headers.get('alfi-outbox-id')})" for d in refused))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for letter in chosen:
            await producer.send_and_wait(letter.source, letter.value, key=letter.key, headers=[
                (REDRIVEN_FROM, f"{letter.topic}:{letter.partition}:{letter.offset}".encode())])
    finally:
        await producer.stop()
    return chosen


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list")
    listing.add_argument("--topic", action="append", help="a .dlq topic (default: all)")
    again = sub.add_parser("redrive")
    again.add_argument("--topic", required=True, help="the .dlq topic")
    again.add_argument("--offset", action="append", required=True, help="partition:offset, repeatable")
    args = parser.parse_args(argv)
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    if args.command == "list":
        topics = args.topic or asyncio.run(dead_letter_topics(bootstrap))
        letters = asyncio.run(read_all(bootstrap, topics))
        for letter in letters:
            print(letter.line())
        print(f"{len(letters)} dead letters in {len(topics)} topics", file=sys.stderr)
        return 0
    positions = {tuple(int(n) for n in o.split(":")) for o in args.offset}
    try:
        letters = asyncio.run(redrive(bootstrap, args.topic, positions))
    except (LookupError, ValueError) as error:
        print(f"redrive refused: {error}", file=sys.stderr)
        return 1
    for letter in letters:
        print(f"re-driven to {letter.source}: {letter.line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
