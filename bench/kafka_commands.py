"""How many commands per second intake and casework apply from their Kafka command topics
(`alfi.<service>.commands`, `{"command": ..., "data": ...}`), and the delay from a
command's acceptance to its event's publication.

Targets (2 cores, everything local): >= 2,000 commands/s applied, p99 publication delay
< 1 s. One intake and one casework process. Two phases, because casework records an
interview only for a household its replica knows (else it defers the partition, then
dead-letters): first ENROLMENTS enrol_household commands onto alfi.intake.commands, then,
once casework's replica holds every household, INTERVIEWS record_interview commands
(spread over those households) onto alfi.casework.commands. Each phase is timed from its
first command produced to its last event read on the service's events topic (so the
relay's publication is inside the figure); the delay of each event is its arrival minus
the CloudEvent `time` (stamped in the transaction that applied the command).
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
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from alfi_contracts.topics import commands_topic, events_topic
from bench.stack import service

ENROLMENTS = int(os.environ.get("BENCH_KAFKA_ENROLMENTS", "10000"))
INTERVIEWS = int(os.environ.get("BENCH_KAFKA_INTERVIEWS", "20000"))
RATE_TARGET = 2000
P99_TARGET = 1.0
PORTS = {"intake": 18111, "casework": 18112}
TOPICS = ["alfi.intake.commands", "alfi.casework.commands"]
MODES = ("office", "home_visit", "phone", "video", "outside")


def enrolment(household: str) -> dict:
    return {"command": "enrol_household", "data": {
        "household_id": household, "programme": "fnavdl", "territory": "bretagne",
        "referent_worker_id": "sw-017", "enrolled_on": "2023-01-09", "youth": False,
        "dalo_priority": False, "adults": 1, "children": 2}}


def interview(household: str, n: int) -> dict:
    return {"command": "record_interview", "data": {
        "interview_id": str(uuid.uuid4()), "household_id": household, "worker_id": f"sw-{n % 30:03d}",
        "held_on": f"2023-{2 + n % 11:02d}-{1 + n % 28:02d}", "mode": MODES[n % len(MODES)],
        "topics": ["housing", "budget"], "duration_minutes": 45}}


class Phase:
    """Commands produced to one service, and its events read back."""

    def __init__(self, service: str, messages: list[tuple[str, dict]], wanted: set[str], event_type: str) -> None:
        self.service = service
        self.messages = messages  # (key, message)
        self.wanted = wanted  # the ids (CloudEvent data ids) whose events end the phase
        self.event_type = event_type
        self.delays: list[float] = []
        self.seconds = 0.0

    @property
    def rate(self) -> float:
        return len(self.messages) / self.seconds if self.seconds else 0.0


async def run_phase(bootstrap: str, phase: Phase, id_field: str) -> None:
    consumer = AIOKafkaConsumer(events_topic(phase.service), bootstrap_servers=bootstrap,
                                auto_offset_reset="latest", group_id=f"bench-{uuid.uuid4().hex[:6]}")
    await consumer.start()
    await consumer.getmany(timeout_ms=1000)  # joined, at the end of the topic
    await asyncio.sleep(1.0)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                max_batch_size=256 * 1024, enable_idempotence=True)
    await producer.start()
    remaining = set(phase.wanted)

    async def collect() -> None:
        while remaining:
            for records in (await consumer.getmany(timeout_ms=200, max_records=5000)).values():
                now = time.time()
                for record in records:
                    event = json.loads(record.value)
                    if event["type"] == phase.event_type and event["data"][id_field] in remaining:
                        remaining.discard(event["data"][id_field])
                        phase.delays.append(now - datetime.fromisoformat(event["time"]).timestamp())

    started = time.perf_counter()
    collector = asyncio.create_task(collect())
    topic = commands_topic(phase.service)
    for key, message in phase.messages:
        await producer.send(topic, json.dumps(message).encode(), key=key.encode())
    await producer.flush()
    produced = time.perf_counter() - started
    try:
        await asyncio.wait_for(collector, timeout=600)
    finally:
        phase.seconds = time.perf_counter() - started
        await producer.stop()
        await consumer.stop()
    print(f"  ({phase.service}: {len(phase.messages)} commands produced in {produced:.1f} s,"
          f" all events read after {phase.seconds:.1f} s)")


async def replicated(database_url: str, households: int, timeout: float = 300) -> float:
    """Seconds until casework's replica holds `households` households."""
    conn = await asyncpg.connect(database_url)
    started = time.perf_counter()
    try:
        while await conn.fetchval("SELECT count(*) FROM casework.households") < households:
            if time.perf_counter() - started > timeout:
                raise TimeoutError("casework's replica did not catch up")
            await asyncio.sleep(0.2)
    finally:
        await conn.close()
    return time.perf_counter() - started


async def run(bootstrap: str, database_url: str) -> list[Phase]:
    households = [str(uuid.uuid4()) for _ in range(ENROLMENTS)]
    enrolments = Phase("intake", [(h, enrolment(h)) for h in households], set(households), "household.enrolled")
    await run_phase(bootstrap, enrolments, "household_id")
    waited = await replicated(database_url, ENROLMENTS)
    print(f"  (casework's replica held every household {waited:.1f} s after the last enrolment event)")
    interviews = [(h, interview(h, n)) for n, h in ((n, households[n % ENROLMENTS]) for n in range(INTERVIEWS))]
    phase = Phase("casework", interviews, {m["data"]["interview_id"] for _, m in interviews}, "interview.held")
    await run_phase(bootstrap, phase, "interview_id")
    return [enrolments, phase]


def p99(delays: list[float]) -> float:
    delays = sorted(delays)
    return delays[max(int(len(delays) * 0.99) - 1, 0)]


def main() -> int:
    bootstrap, database_url = os.environ["KAFKA_BOOTSTRAP_SERVERS"], os.environ["DATABASE_URL"]
    env = {"DATABASE_URL": database_url, "KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    print(f"Kafka commands: {ENROLMENTS} enrol_household to intake, then {INTERVIEWS} record_interview"
          " to casework (one process each)")
    with ExitStack() as stack:
        for name, port in PORTS.items():
            log = Path(tempfile.gettempdir()) / f"alfi-bench-kafka-{name}.log"
            stack.enter_context(service(f"services.{name}", port, env, log))
        phases = asyncio.run(run(bootstrap, database_url))
    ok = True
    for phase in phases:
        met = phase.rate >= RATE_TARGET and p99(phase.delays) < P99_TARGET
        ok &= met
        print(f"  {phase.service:9} {phase.event_type:19} applied {phase.rate:8.0f} commands/s (target >= {RATE_TARGET}),"
              f" publication delay p50 {statistics.median(phase.delays) * 1000:5.0f} ms,"
              f" p99 {p99(phase.delays) * 1000:5.0f} ms (target < {P99_TARGET * 1000:.0f} ms)"
              f"   {'MET' if met else 'NOT MET'}")
    total = sum(len(p.messages) for p in phases) / sum(p.seconds for p in phases)
    print(f"  both phases         {total:8.0f} commands/s   {'MET' if ok else 'NOT MET'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
