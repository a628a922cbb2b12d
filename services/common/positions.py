"""See and, after a gap, decide consumers' positions (they live in PostgreSQL).

    python -m services.common.positions list
    python -m services.common.positions set --schema casework --consumer alfi-casework-households \\
        --topic alfi.intake.events --partition 3 (--offset N | --log-start)

`list` prints, for every consumer of every service schema (stats: its current
generation), each partition's stored position beside Kafka's log start and end, and
GAP where the consumer has stopped the partition. A consumer never skips a gap by
itself (services.common.consumer): an operator decides. `set` stores a position; the
consumer notices within 15 s and reads on from there. Typical decisions:
- records deleted under the position (log start above it): restore them if an archive
  exists; otherwise `--log-start` accepts the loss, and for stats `make rebuild` will
  refuse until the history is whole again;
- topic recreated (end below the position): the stored position belonged to the old
  topic; `--offset 0` reads the new topic from its start (events already applied are
  recognised by their ids where the effect is idempotent).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from .consumer import gap_of, store_positions
from .kafka import KafkaConnection
from .settings import ServiceSettings

SERVICE_SCHEMAS = ("intake", "casework", "veille")


async def consumer_schemas(conn: asyncpg.Connection) -> list[str]:
    """Schemas holding positions: the command services' and stats' current generation."""
    schemas = [s for s in SERVICE_SCHEMAS if await conn.fetchval("SELECT to_regclass($1)", f"{s}.consumer_positions")]
    if await conn.fetchval("SELECT to_regclass('stats.generation')"):
        current = await conn.fetchval("SELECT current FROM stats.generation")
        if current is not None:
            schemas.append(f"stats_g{int(current)}")
    return schemas


async def listing(database_url: str, kafka: KafkaConnection) -> list[str]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = []
        for schema in await consumer_schemas(conn):
            rows += [(schema, r) for r in await conn.fetch(
                f'SELECT consumer, topic, partition, next_offset FROM "{schema}".consumer_positions'
                " ORDER BY consumer, topic, partition")]
    finally:
        await conn.close()
    tps = sorted({TopicPartition(r["topic"], r["partition"]) for _, r in rows})
    client = AIOKafkaConsumer(**kafka.client_options(), enable_auto_commit=False)
    await client.start()
    try:
        starts = await client.beginning_offsets(tps) if tps else {}
        ends = await client.end_offsets(tps) if tps else {}
    finally:
        await client.stop()
    lines = []
    for schema, r in rows:
        tp = TopicPartition(r["topic"], r["partition"])
        start, end = starts.get(tp, 0), ends.get(tp, 0)
        gap = gap_of(r["next_offset"], start, end, full_history=True)
        lines.append(f"{schema:10} {r['consumer']:28} {tp.topic}[{tp.partition}] position={r['next_offset']}"
                     f" log_start={start} end={end} lag={max(end - r['next_offset'], 0)}"
                     + (f"  GAP ({gap.missing} records)" if gap else ""))
    return lines


async def set_position(database_url: str, kafka: KafkaConnection, schema: str, consumer: str, tp: TopicPartition,
                       offset: int | None) -> int:
    if offset is None:
        client = AIOKafkaConsumer(**kafka.client_options(), enable_auto_commit=False)
        await client.start()
        try:
            offset = (await client.beginning_offsets([tp]))[tp]
        finally:
            await client.stop()
    conn = await asyncpg.connect(database_url, server_settings={"search_path": schema})
    try:
        await store_positions(conn, consumer, {tp: offset})
    finally:
        await conn.close()
    return offset


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list")
    setting = sub.add_parser("set")
    setting.add_argument("--schema", required=True, help="intake, casework, veille or stats_g<N>")
    setting.add_argument("--consumer", required=True)
    setting.add_argument("--topic", required=True)
    setting.add_argument("--partition", type=int, required=True)
    where = setting.add_mutually_exclusive_group(required=True)
    where.add_argument("--offset", type=int)
    where.add_argument("--log-start", action="store_true")
    args = parser.parse_args(argv)
    settings = ServiceSettings(service="positions")
    if args.command == "list":
        for line in asyncio.run(listing(settings.database_url, settings.kafka)):
            print(line)
        return 0
    if args.schema not in SERVICE_SCHEMAS and not args.schema.removeprefix("stats_g").isdigit():
        parser.error(f"unknown schema {args.schema!r}")
    offset = asyncio.run(set_position(settings.database_url, settings.kafka, args.schema, args.consumer,
                                      TopicPartition(args.topic, args.partition), args.offset))
    print(f"{args.schema} {args.consumer} {args.topic}[{args.partition}] position set to {offset}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
