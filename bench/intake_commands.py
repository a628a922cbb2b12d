"""How many commands intake accepts per second over HTTP with its durable outbox, and the
delay from acceptance to publication on Kafka: one instance, then more processes on the
same port.

Targets (2 cores, everything local): one instance >= 1,000 commands/s, p99 publication
delay < 1 s; with workers, 3,000 commands/s. A closed loop of CONCURRENCY clients posts
enrolments; a consumer on alfi.intake.events measures, for each event, its arrival time
minus the CloudEvent `time` (stamped in the accepting transaction).

Set-ups (BENCH_INTAKE_SETUPS, comma-separated, default all):
- `one`: one process (`python -m services.intake`), the deployment the target is for;
- `workers2`, `workers3`: ALFI_WORKERS=2 or 3 (uvicorn's workers: a supervisor binds the
  port and forks the workers, which share its one listening socket; the way to use more
  cores on one machine, documented in README "Benchmarks");
- `reuseport2`: two independent instances behind one port, each with a listening socket
  of its own on that port with SO_REUSEPORT (the kernel spreads new connections over
  them by hash): what two separately started or restarted instances on one host do,
  where uvicorn's workers need one parent. Each instance runs its relay (one publishes at
  a time, advisory lock) and its consumers (one group).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import aiohttp
import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer

from bench.stack import REPO, service, stop
from services.common.auth import issue_token, migrate_auth

COMMANDS = int(os.environ.get("BENCH_COMMANDS", "6000"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "32"))
PORT = 18101
RATE_TARGET = 1000
WORKERS_TARGET = 3000
P99_TARGET = 1.0
SETUPS = {
    "one": "one instance",
    "workers2": "ALFI_WORKERS=2 (uvicorn workers, one socket)",
    "workers3": "ALFI_WORKERS=3 (uvicorn workers, one socket)",
    "reuseport2": "two instances, SO_REUSEPORT",
}


def enrolment() -> dict:
    return {"household_id": str(uuid.uuid4()), "programme": "fnavdl", "territory": "bretagne",
            "referent_worker_id": "sw-017", "enrolled_on": "2023-01-09", "youth": False,
            "dalo_priority": False, "adults": 1, "children": 2}


async def load(bootstrap: str, token: str) -> dict:
    bodies = [enrolment() for _ in range(COMMANDS)]
    wanted = {b["household_id"] for b in bodies}
    delays: list[float] = []
    consumer = AIOKafkaConsumer("alfi.intake.events", bootstrap_servers=bootstrap,
                                auto_offset_reset="latest", group_id=f"bench-{uuid.uuid4().hex[:6]}")
    await consumer.start()
    await consumer.getmany(timeout_ms=1000)
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
        "statuses": statuses, "seconds": elapsed, "rate": statuses.get(201, 0) / elapsed,
        "p50": statistics.median(delays), "p99": delays[int(len(delays) * 0.99) - 1],
    }


def wait_ready_on_port(processes: list[subprocess.Popen], answers: int, timeout: float = 90.0) -> None:
    """`answers` ready answers in a row on the shared port (each instance answers some)."""
    deadline, in_a_row = time.monotonic() + timeout, 0
    while in_a_row < answers:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the instances on port {PORT} were not ready within {timeout}s")
        if any(p.poll() is not None for p in processes):
            raise RuntimeError("an instance exited at start")
        try:
            ok = httpx.get(f"http://127.0.0.1:{PORT}/health/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            ok = False
        in_a_row = in_a_row + 1 if ok else 0
        time.sleep(0.05 if ok else 0.3)


@contextlib.contextmanager
def reuseport_instances(count: int, env: dict[str, str], log: Path) -> Iterator[list[subprocess.Popen]]:
    """`count` uvicorn processes, each on a socket of its own bound to PORT with
    SO_REUSEPORT (handed over as a file descriptor: the services' own launcher binds
    without it)."""
    processes = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(("127.0.0.1", PORT))
            sock.listen(2048)
            with log.open("ab") as out:
                processes.append(subprocess.Popen(
                    [sys.executable, "-m", "uvicorn", "services.intake.service:create_app", "--factory",
                     "--fd", str(sock.fileno()), "--no-access-log", "--timeout-graceful-shutdown", "10"],
                    env={**os.environ, **env, "ALFI_LOG_FORMAT": "json"}, cwd=REPO, stdout=out,
                    stderr=subprocess.STDOUT, start_new_session=True, pass_fds=(sock.fileno(),)))
            sock.close()  # the instance's now; a socket left here would be given connections too
        wait_ready_on_port(processes, answers=10 * count)
        yield processes
    finally:
        for process in processes:
            stop(process)


def run_setup(setup: str, bootstrap: str, database_url: str, token: str) -> dict:
    env = {"DATABASE_URL": database_url, "KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    log = Path(tempfile.gettempdir()) / "alfi-bench-intake.log"
    if setup == "reuseport2":
        starting = reuseport_instances(2, env, log)
    else:
        workers = {"one": 1, "workers2": 2, "workers3": 3}[setup]
        starting = service("services.intake", PORT, {**env, "ALFI_WORKERS": str(workers)}, log)
    with starting:
        return asyncio.run(load(bootstrap, token))


async def new_token(database_url: str) -> str:
    conn = await asyncpg.connect(database_url)
    try:
        await migrate_auth(conn)
        return await issue_token(conn, ["intake:write"], "bench")
    finally:
        await conn.close()


def main() -> int:
    bootstrap, database_url = os.environ["KAFKA_BOOTSTRAP_SERVERS"], os.environ["DATABASE_URL"]
    chosen = [s for s in os.environ.get("BENCH_INTAKE_SETUPS", ",".join(SETUPS)).split(",") if s]
    token = asyncio.run(new_token(database_url))
    print(f"intake over HTTP, durable outbox: {COMMANDS} enrolments per set-up, {CONCURRENCY} concurrent clients")
    results = {}
    for setup in chosen:
        result = results[setup] = run_setup(setup, bootstrap, database_url, token)
        target = RATE_TARGET if setup == "one" else WORKERS_TARGET
        print(f"  {SETUPS[setup]:45} {result['rate']:6.0f} commands/s (target >= {target}),"
              f" publication p50 {result['p50'] * 1000:5.0f} ms, p99 {result['p99'] * 1000:5.0f} ms"
              f" (target < {P99_TARGET * 1000:.0f} ms), statuses {result['statuses']}")
    ok = True
    if "one" in results:
        one = results["one"]
        met = one["rate"] >= RATE_TARGET and one["p99"] < P99_TARGET
        ok &= met
        print(f"  one instance: {'MET' if met else 'NOT MET'}")
    scaled = {s: r for s, r in results.items() if s != "one"}
    if scaled:
        best = max(scaled, key=lambda s: scaled[s]["rate"])
        met = scaled[best]["rate"] >= WORKERS_TARGET and scaled[best]["p99"] < P99_TARGET
        ok &= met
        print(f"  more processes: best {scaled[best]['rate']:.0f} commands/s ({SETUPS[best]}),"
              f" target >= {WORKERS_TARGET}: {'MET' if met else 'NOT MET'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
