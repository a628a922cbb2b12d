"""The local launcher's owned instances, with real processes: a private PostgreSQL that
survives a crash, and the three-node Kafka cluster that keeps acks=all writes going
with a node killed.

These tests do not use the session's Kafka and PostgreSQL: each makes throwaway ones
under a temporary directory, on ports nothing else here uses (PostgreSQL 55532, the
cluster 29292/29294/29296 with controllers one port up), and tears them down whatever
happens. The launcher calls block for seconds, so they run in a thread: the session's
event loop may be serving the in-process platform of other tests.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from bench.stack import load_devstack

PG_PORT = 55532
CLUSTER_PORTS = (29292, 29294, 29296)
PARTITIONS = 3


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def test_private_postgres_keeps_a_committed_row_through_a_crash():
    devstack = load_devstack()
    root = Path(tempfile.mkdtemp(prefix="alfi-test-pg-"))
    try:
        url = await asyncio.to_thread(devstack.pg_up, PG_PORT, root)
        assert url.startswith("postgresql://alfi:") and url.endswith(f"@127.0.0.1:{PG_PORT}/postgres")
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("CREATE TABLE crash_probe (id int PRIMARY KEY, note text NOT NULL)")
            await conn.execute("INSERT INTO crash_probe VALUES (1, 'committed before the crash')")
        finally:
            await conn.close()
        server_log = root / "postgres.log"
        offset = server_log.stat().st_size

        await asyncio.to_thread(devstack.pg_down, root, immediate=True)
        assert not port_open(PG_PORT)
        assert await asyncio.to_thread(devstack.pg_up, PG_PORT, root) == url

        with server_log.open("rb") as f:
            f.seek(offset)
            after_restart = f.read().decode(errors="replace")
        # An immediate stop skips the shutdown checkpoint: the restart replays the WAL.
        assert "not properly shut down" in after_restart, after_restart
        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval("SELECT note FROM crash_probe WHERE id = 1") == "committed before the crash"
        finally:
            await conn.close()
    finally:
        await asyncio.to_thread(devstack.pg_down, root)
        shutil.rmtree(root, ignore_errors=True)
    assert not port_open(PG_PORT)


async def describe(admin: AIOKafkaAdminClient, topic: str) -> list[dict]:
    (described,) = await admin.describe_topics([topic])
    return sorted(described["partitions"], key=lambda p: p["partition"])


async def wait_for(check, what: str, timeout: float = 30.0):  # noqa: ANN001, ANN201
    """Poll `check` until it returns something true. A client error counts as "not yet":
    aiokafka's admin client may pick the killed node for a request and not retry."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = await check()
        except KafkaError:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.25)


async def test_three_node_cluster_takes_acks_all_writes_with_one_node_killed():
    devstack = load_devstack()
    root = Path(tempfile.mkdtemp(prefix="alfi-test-kafka-cluster-"))
    topic = f"devstack-cluster-{uuid.uuid4().hex[:8]}"
    admin = producer = consumer = None
    timings: dict[str, float] = {}
    try:
        t0 = time.monotonic()
        bootstrap = await asyncio.to_thread(devstack.kafka_cluster_up, CLUSTER_PORTS, root)
        timings["cluster start"] = time.monotonic() - t0
        assert bootstrap == ",".join(f"127.0.0.1:{p}" for p in CLUSTER_PORTS)
        # Idempotent: the running nodes are reused.
        t0 = time.monotonic()
        assert await asyncio.to_thread(devstack.kafka_cluster_up, CLUSTER_PORTS, root) == bootstrap
        assert time.monotonic() - t0 < 5

        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
        await admin.start()
        await admin.create_topics([NewTopic(
            topic, num_partitions=PARTITIONS, replication_factor=3,
            topic_configs={"min.insync.replicas": "2", "retention.ms": "-1"},
        )])

        async def all_led_by_three():
            parts = await describe(admin, topic)
            return parts if len(parts) == PARTITIONS and all(
                p["leader"] >= 0 and len(p["replicas"]) == 3 and len(p["isr"]) == 3 for p in parts
            ) else None

        partitions = await wait_for(all_led_by_three, "the topic's leaders and full ISRs")

        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, request_timeout_ms=30000,
        )
        await producer.start()
        before = [f"before-{i}".encode() for i in range(30)]
        for i, value in enumerate(before):
            await producer.send_and_wait(topic, value, partition=i % PARTITIONS)

        # Kill -9 the leader of partition 0 (it may also be the active controller).
        victim = partitions[0]["leader"]
        t0 = time.monotonic()
        await asyncio.to_thread(devstack.kafka_node_down, victim, root)
        assert not port_open(CLUSTER_PORTS[victim - 1])
        after = [f"after-{i}".encode() for i in range(30)]
        # acks=all with two of three replicas: each partition's write waits until the
        # dead node is fenced out of its ISR (and, for partition 0, a new leader elected).
        await asyncio.wait_for(asyncio.gather(*[
            await producer.send(topic, value, partition=i % PARTITIONS) for i, value in enumerate(after)
        ]), timeout=60)
        timings["acks=all writes after the kill"] = time.monotonic() - t0

        async def victim_out():
            parts = await describe(admin, topic)
            return all(p["leader"] not in (victim, -1) and victim not in p["isr"] for p in parts)

        await wait_for(victim_out, f"node {victim} out of every leadership and ISR", timeout=10)

        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await consumer.start()
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen: list[bytes] = []
        deadline = time.monotonic() + 30
        while len(seen) < len(before) + len(after) and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                seen.extend(r.value for r in records)
        assert sorted(seen) == sorted(before + after)

        t0 = time.monotonic()
        assert await asyncio.to_thread(devstack.kafka_node_up, victim, root) == (
            f"127.0.0.1:{CLUSTER_PORTS[victim - 1]}"
        )
        timings["node restart"] = time.monotonic() - t0
        await wait_for(all_led_by_three, "the restarted node back in every ISR")
        timings["back in every ISR"] = time.monotonic() - t0
    finally:
        for client in (consumer, producer, admin):
            if client is not None:
                try:
                    await (client.close() if client is admin else client.stop())
                except Exception:  # noqa: BLE001 - teardown goes on
                    pass
        t0 = time.monotonic()
        await asyncio.to_thread(devstack.kafka_cluster_down, root)
        timings["cluster down"] = time.monotonic() - t0
        shutil.rmtree(root, ignore_errors=True)
        print("timings:", ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    assert not any(port_open(p) or port_open(p + 1) for p in CLUSTER_PORTS)
