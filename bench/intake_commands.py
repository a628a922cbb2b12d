"""How many commands one intake instance accepts per second over HTTP with its durable
outbox, and the delay from acceptance to publication on Kafka.

Targets (2 cores, everything local): >= 500 commands/s, p99 publication delay < 1 s.
A closed loop of CONCURRENCY clients posts enrolments; a consumer on alfi.intake.events
measures, for each event, its arrival time minus the CloudEvent `time` (stamped in the
accepting transaction).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import aiohttp
from aiokafka import AIOKafkaConsumer
from datetime import datetime

from bench.stack import service
from services.common.auth import issue_token, migrate_auth

COMMANDS = int(os.environ.get("BENCH_COMMANDS", "6000"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "32"))
PORT = 18101


def enrolment() -> dict:
    return {"household_id": str(uuid.uuid4()), "programme": "fnavdl", "territory": "bretagne",
            "referent_worker_id": "sw-017", "enrolled_on": "2023-01-09", "youth": False,
            "dalo_priority": False, "adults": 1, "children": 2}


async def run(bootstrap: str, database_url: str) -> dict:
    conn = await asyncpg.connect(database_url)
    await migrate_auth(conn)
    token = await issue_token(conn, ["intake:write"], "bench")
    await conn.close()

    bodies = [enrolment() for _ in range(COMMANDS)]
    wanted = {b["household_id"] for b in bodies}
    delays: list[float] = []
    consumer = AIOKafkaConsumer("alfi.intake.events", bootstrap_servers=bootstrap,
                                auto_offset_reset="latest", group_id=f"bench-{uuid.uuid4().hex[:6]}")
    await consumer.start()
    await asyncio.sleep(1.0)  # let the group settle at the end of the topic

    async def collect() -> None:
        while len(delays) < COMMANDS:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                now = time.time()
                for record in records:
                    event = json.loads(record.value)
                    if event["subject"] in wanted:
                        accepted = datetime.fromisoformat(event["time"]).timestamp()
                        delays.append(now - accepted)

    collector = asyncio.create_task(collect())
    queue = list(bodies)
    statuses: dict[int, int] = {}
    # aiohttp rather than httpx: the load generator must cost less CPU than the service
    # it measures, on the same two cores.
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(f"http://127.0.0.1:{PORT}", connector=connector,
                                     headers={"Authorization": f"Bearer {token}"}) as client:
        async def worker() -> None:
            while queue:
                async with client.post("/v1/households", json=queue.pop()) as response:
                    await response.read()
                    statuses[response.status] = statuses.get(response.status, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
    await asyncio.wait_for(collector, timeout=120)
    await consumer.stop()
    delays.sort()
    return {
        "commands": COMMANDS, "statuses": statuses, "seconds": elapsed,
        "rate": statuses.get(201, 0) / elapsed,
        "p50": statistics.median(delays), "p99": delays[int(len(delays) * 0.99) - 1],
    }


def main() -> int:
    bootstrap, database_url = os.environ["KAFKA_BOOTSTRAP_SERVERS"], os.environ["DATABASE_URL"]
    log = Path(tempfile.gettempdir()) / "alfi-bench-intake.log"
    with service("services.intake", PORT, {"DATABASE_URL": database_url,
                                            "KAFKA_BOOTSTRAP_SERVERS": bootstrap}, log):
        result = asyncio.run(run(bootstrap, database_url))
    ok = result["rate"] >= 500 and result["p99"] < 1.0
    print(f"intake over HTTP, durable outbox: {result['commands']} enrolments, {CONCURRENCY} concurrent clients,"
          f" statuses {result['statuses']}")
    print(f"  accepted            {result['rate']:8.0f} commands/s   (target >= 500)")
    print(f"  publication delay   p50 {result['p50'] * 1000:6.0f} ms, p99 {result['p99'] * 1000:6.0f} ms"
          f"   (target p99 < 1000 ms)")
    print(f"  {'MET' if ok else 'NOT MET'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
