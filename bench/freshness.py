"""Freshness: at a steady 1,000 events/s, how long from a command's acceptance until the
figure it changes shows in the reports API.

Target (2 cores, everything local): p99 < 500 ms.

Three service processes (intake, casework, stats). A few households are enrolled over
HTTP first and the bench waits until casework has replicated them. Then `record_interview`
commands go to `alfi.casework.commands` paced by the clock (command i is sent at
t0 + i / RATE whatever happened before: an open loop, so a slow pipeline meets a growing
backlog instead of a slower sender). A consumer taps `alfi.casework.events`: a command's
acceptance time is the CloudEvent `time` of its `interview.held`, stamped in the
transaction that accepted it. One poller asks stats
`GET /v1/reports/activity/breakdown?year=Y&by=month` in a tight loop, round robin over
the years whose counts are behind what the tap read, and records for each month
(year-month, time the answer arrived, interviews_held). One only: it shares stats' event
loop with the projector and the two cores with everything.

How a visibility time is determined, so that it cannot flatter. The commands go in waves
of WAVE (10 ms of commands), all of a wave for one household (one command partition,
accepted in order) and dated in one month: wave w in month w % 12 + 1 of year
YEARS[w // 12 % len(YEARS)]. A month receives a burst of WAVE interviews, then nothing
for len(YEARS) * 12 waves (24 s), and one answer covers twelve waves. A count alone does
not say which interviews it includes (stats applies partitions in any order), so an
answer certifies an interview only when the count leaves no room for it to be missing:
an answer arriving at r with count c for month M certifies every interview of M accepted
at or before r if c >= A_M(r), the number of interviews of M accepted at or before r.
(Stats' snapshot is taken before r, and an interview is accepted before stats can see
it, so what the snapshot counts is among those A_M(r): if it counts them all, each one
is in.) An interview's visibility time is the arrival of the first answer certifying it;
its latency that minus its acceptance time. Each answer's arrival is used, not the
moment its snapshot was taken, and a wave's first interviews wait for the wave's last:
both can only add to a latency (by a poll's round trip and by up to a wave's duration),
never remove from it; so can the poller's round robin over the years behind. The quiet
gap between two waves of the same month is what lets counts catch up; a latency longer
than it is still bounded correctly, only more coarsely. A command not accepted DRAIN
seconds after the last was sent, or an interview never certified, counts as missing: the
figure is NOT MET.

Figures are taken over the steady state: interviews accepted after WARMUP seconds, for
STEADY seconds. The rate accepted over that window is printed beside the target rate, so
a pipeline that could not keep 1,000/s shows it.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import aiohttp
import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from alfi_contracts.topics import CASEWORK_EVENTS, commands_topic
from bench.intake_commands import enrolment
from bench.stack import service
from services.common.auth import issue_token, migrate_auth
from services.common.kafka import ensure_topics

RATE = float(os.environ.get("BENCH_FRESHNESS_RATE", "1000"))
WARMUP = float(os.environ.get("BENCH_FRESHNESS_WARMUP", "10"))
STEADY = float(os.environ.get("BENCH_FRESHNESS_SECONDS", "40"))
WAVE = max(1, round(RATE / 100))  # 10 ms of commands: 10 at 1,000/s
YEARS = list(range(1901, 2100))  # no one else dates anything in these years (fresh database)
HOUSEHOLDS = 60
DRAIN = 20.0
TARGET_P99 = 0.5
INTAKE, CASEWORK, STATS = 18310, 18311, 18312
CASEWORK_COMMANDS = commands_topic("casework")


def interview(index: int, households: list[str]) -> tuple[str, tuple[int, int], bytes, bytes]:
    """Command `index`: its interview id, its (year, month), the Kafka key and value."""
    bucket = (index // WAVE) % (len(YEARS) * 12)
    year, month = YEARS[bucket // 12], bucket % 12 + 1
    # A wave is one household's: one command partition, accepted in one go, in order.
    household = households[(index // WAVE) % len(households)]
    interview_id = str(uuid.uuid4())
    message = {"command": "record_interview", "data": {
        "interview_id": interview_id, "household_id": household, "worker_id": "sw-017",
        "held_on": f"{year}-{month:02d}-15", "mode": "office", "topics": ["housing"], "duration_minutes": 45}}
    return interview_id, (year, month), household.encode(), json.dumps(message).encode()


async def tokens(database_url: str) -> tuple[str, str]:
    conn = await asyncpg.connect(database_url)
    try:
        await migrate_auth(conn)
        return (await issue_token(conn, ["intake:write"], "bench-freshness"),
                await issue_token(conn, ["reports:read"], "bench-freshness"))
    finally:
        await conn.close()


async def enrol_households(write_token: str, database_url: str) -> list[str]:
    """Households enrolled over HTTP, once casework has replicated them all."""
    # Enrolled before every year the interviews are dated in.
    bodies = [{**enrolment(), "enrolled_on": "1900-01-01"} for _ in range(HOUSEHOLDS)]
    async with aiohttp.ClientSession(f"http://127.0.0.1:{INTAKE}",
                                     headers={"Authorization": f"Bearer {write_token}"}) as client:
        for body in bodies:
            async with client.post("/v1/households", json=body) as response:
                assert response.status == 201, await response.text()
    ids = [b["household_id"] for b in bodies]
    conn = await asyncpg.connect(database_url)
    try:
        deadline = time.monotonic() + 60
        while await conn.fetchval("SELECT count(*) FROM casework.households WHERE household_id = ANY($1::uuid[])",
                                  ids) < len(ids):
            if time.monotonic() > deadline:
                raise RuntimeError("casework did not replicate the enrolments within 60 s")
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    return ids


class Run:
    """What the sender, the tap and the poller share while the load runs."""

    def __init__(self) -> None:
        self.bucket_of: dict[str, tuple[int, int]] = {}  # interview id -> (year, month)
        self.tapped: collections.Counter[tuple[int, int]] = collections.Counter()  # events read by the tap
        self.accepted: dict[str, float] = {}  # interview id -> acceptance time (CloudEvent time)
        self.published: dict[str, float] = {}  # interview id -> when the tap read its event
        self.answers: list[tuple[tuple[int, int], float, int]] = []  # ((year, month), arrival, interviews_held)
        # Years whose count is behind the events the tap read, in the order they fell behind.
        self.pending: collections.deque[int] = collections.deque()
        self.queued: set[int] = set()
        self.request_seconds: list[float] = []
        self.lag_behind_clock = 0.0  # the sender's worst lateness against its schedule
        self.tap_over = False

    def published_event(self, interview_id: str, accepted: float, now: float) -> None:
        self.accepted[interview_id] = accepted
        self.published[interview_id] = now
        year, month = self.bucket_of[interview_id]
        self.tapped[year, month] += 1
        if year not in self.queued:
            self.queued.add(year)
            self.pending.append(year)


async def send(run: Run, bootstrap: str, households: list[str], total: int) -> tuple[float, float]:
    """Command i sent at t0 + i / RATE by the clock (an open loop); returns when the first
    and the last were sent."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks=1)
    await producer.start()
    try:
        messages = [interview(i, households) for i in range(total)]
        deliveries = []
        started = time.time()
        index = 0
        while index < total:
            due = min(total, int((time.time() - started) * RATE) + 1)
            run.lag_behind_clock = max(run.lag_behind_clock, time.time() - (started + index / RATE))
            for interview_id, bucket, key, value in messages[index:due]:
                run.bucket_of[interview_id] = bucket
                deliveries.append(await producer.send(CASEWORK_COMMANDS, value, key=key))
            index = max(index, due)
            await asyncio.sleep(max(0.0, started + index / RATE - time.time()))
        finished = time.time()
        await asyncio.gather(*deliveries)
        return started, finished
    finally:
        await producer.stop()


async def tap(run: Run, consumer: AIOKafkaConsumer, total: int) -> None:
    while len(run.accepted) < total:
        for records in (await consumer.getmany(timeout_ms=200)).values():
            now = time.time()
            for record in records:
                event = json.loads(record.value)
                interview_id = event["data"].get("interview_id")
                if event["type"] == "interview.held" and interview_id in run.bucket_of:
                    run.published_event(interview_id, datetime.fromisoformat(event["time"]).timestamp(), now)


async def poll(run: Run, client: aiohttp.ClientSession) -> None:
    """Ask, round robin, for each year whose counts (by month) are behind the events the tap read."""
    while not run.tap_over or run.pending:
        if not run.pending:
            await asyncio.sleep(0.001)
            continue
        year = run.pending.popleft()
        asked = time.time()
        async with client.get("/v1/reports/activity/breakdown", params={"year": year, "by": "month"}) as response:
            body = await response.json()
        arrived = time.time()
        assert response.status == 200, body
        run.request_seconds.append(arrived - asked)
        counts = {row["month"]: row["interviews_held"] for row in body["rows"]}
        behind = False
        for month in range(1, 13):
            count = counts.get(f"{year}-{month:02d}", 0)
            run.answers.append(((year, month), arrived, count))
            behind = behind or count < run.tapped[year, month]
        if behind:
            run.pending.append(year)
        else:
            run.queued.discard(year)


def quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("inf")


def visibility(run: Run) -> dict[str, float]:
    """Each interview's visibility time: the arrival of the first answer about its month
    whose count covers every interview of that month accepted by then (module docstring)."""
    accepted_by_bucket: dict[tuple[int, int], list[float]] = collections.defaultdict(list)
    for interview_id, accepted in run.accepted.items():
        accepted_by_bucket[run.bucket_of[interview_id]].append(accepted)
    for times in accepted_by_bucket.values():
        times.sort()
    certified: dict[tuple[int, int], list[float]] = collections.defaultdict(list)  # arrivals that certify
    for bucket, arrived, count in run.answers:
        if count >= bisect.bisect_right(accepted_by_bucket[bucket], arrived):
            certified[bucket].append(arrived)
    for arrivals in certified.values():
        arrivals.sort()
    visible = {}
    for interview_id, accepted in run.accepted.items():
        arrivals = certified[run.bucket_of[interview_id]]
        at = bisect.bisect_left(arrivals, accepted)
        if at < len(arrivals):
            visible[interview_id] = arrivals[at]
    return visible


async def measure(bootstrap: str, read_token: str, households: list[str]) -> dict:
    run = Run()
    total = int(RATE * (WARMUP + STEADY))
    await ensure_topics(bootstrap, [CASEWORK_COMMANDS, CASEWORK_EVENTS])
    consumer = AIOKafkaConsumer(CASEWORK_EVENTS, bootstrap_servers=bootstrap, auto_offset_reset="latest",
                                group_id=f"bench-freshness-{uuid.uuid4().hex[:6]}")
    await consumer.start()
    await asyncio.sleep(1.0)  # let the group settle at the end of the topic
    tapping = asyncio.create_task(tap(run, consumer, total))
    # One poller: it shares stats' event loop with the projector (and the two cores with
    # everything), so more would measure the API's contention rather than freshness.
    async with aiohttp.ClientSession(f"http://127.0.0.1:{STATS}",
                                     headers={"Authorization": f"Bearer {read_token}"}) as client:
        poller = asyncio.create_task(poll(run, client))
        started, finished = await send(run, bootstrap, households, total)
        # Commands not accepted DRAIN seconds after the last was sent are counted as
        # missing: a command side that cannot keep the rate fails, without a long drain.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(tapping, timeout=DRAIN)
        run.tap_over = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(poller, timeout=DRAIN)  # interviews never shown: missing below
    await consumer.stop()

    visible = visibility(run)
    window = (started + WARMUP, started + WARMUP + STEADY)
    measured = [i for i, accepted in run.accepted.items() if window[0] <= accepted < window[1]]
    latencies = sorted(visible[i] - run.accepted[i] for i in measured if i in visible)
    missing = len(measured) - len(latencies) + (total - len(run.accepted))
    publication = sorted(run.published[i] - run.accepted[i] for i in measured)
    shown = sorted(visible[i] - run.published[i] for i in measured if i in visible)
    accepted = sorted(run.accepted.values())
    return {
        "total": total, "sent_seconds": finished - started, "accepted": len(run.accepted),
        "window_rate": len(measured) / STEADY, "measured": len(measured), "missing": missing,
        "overall_rate": len(accepted) / (accepted[-1] - accepted[0]) if len(accepted) > 1 else 0.0,
        "p50": quantile(latencies, 0.50), "p90": quantile(latencies, 0.90), "p99": quantile(latencies, 0.99),
        "max": quantile(latencies, 1.0),
        "published_p50": quantile(publication, 0.50), "published_p99": quantile(publication, 0.99),
        "shown_p50": quantile(shown, 0.50), "shown_p99": quantile(shown, 0.99),
        "requests": len(run.request_seconds), "request_ms": 1000 * statistics.median(run.request_seconds),
        "sender_late_ms": 1000 * run.lag_behind_clock,
    }


def main() -> int:
    bootstrap, database_url = os.environ["KAFKA_BOOTSTRAP_SERVERS"], os.environ["DATABASE_URL"]
    log_dir = Path(tempfile.gettempdir())
    env = {"DATABASE_URL": database_url, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "ALFI_LOG_LEVEL": "WARNING"}
    write_token, read_token = asyncio.run(tokens(database_url))
    print(f"freshness at {RATE:.0f} events/s: record_interview on {CASEWORK_COMMANDS} paced by the clock,"
          f" {WARMUP:.0f} s warm-up, {STEADY:.0f} s measured", flush=True)
    with (service("services.intake", INTAKE, env, log_dir / "alfi-bench-freshness-intake.log"),
          service("services.casework", CASEWORK, env, log_dir / "alfi-bench-freshness-casework.log"),
          service("services.stats", STATS, env, log_dir / "alfi-bench-freshness-stats.log")):
        households = asyncio.run(enrol_households(write_token, database_url))
        result = asyncio.run(measure(bootstrap, read_token, households))
    ok = result["missing"] == 0 and result["p99"] < TARGET_P99
    print(f"  sent {result['total']} commands in {result['sent_seconds']:.1f} s (sender at most"
          f" {result['sender_late_ms']:.0f} ms behind its clock); {result['accepted']} accepted by"
          f" {DRAIN:.0f} s after the last")
    print(f"  accepted in the measured window  {result['window_rate']:8.0f} events/s   (target rate {RATE:.0f});"
          f" over the run {result['overall_rate']:.0f} events/s")
    print(f"  {result['requests']} report requests (breakdown by month), median {result['request_ms']:.1f} ms")
    print(f"  acceptance -> figure changed     p50 {result['p50'] * 1000:5.0f} ms, p90 {result['p90'] * 1000:5.0f} ms,"
          f" p99 {result['p99'] * 1000:5.0f} ms, max {result['max'] * 1000:5.0f} ms"
          f"   (target p99 < {TARGET_P99 * 1000:.0f} ms)")
    print(f"    of which acceptance -> on Kafka  p50 {result['published_p50'] * 1000:5.0f} ms,"
          f" p99 {result['published_p99'] * 1000:5.0f} ms (casework's transaction and outbox relay)")
    print(f"       on Kafka -> figure changed    p50 {result['shown_p50'] * 1000:5.0f} ms,"
          f" p99 {result['shown_p99'] * 1000:5.0f} ms (stats' projector and the reports API)")
    if result["missing"]:
        print(f"  {result['missing']} interviews never shown in the figure")
    print(f"  {'MET' if ok else 'NOT MET'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
