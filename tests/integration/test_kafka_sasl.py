"""The platform's Kafka clients against a broker that demands SASL/SCRAM-SHA-512, as
docker-compose.yml runs it: the settings the services read (ALFI_KAFKA_SECURITY_PROTOCOL,
_SASL_MECHANISM, _SASL_USERNAME, _SASL_PASSWORD) reach every client, topics are created,
the outbox relay and a FastStream broker publish, a consumer group reads back; a wrong
password and a client without SASL are refused.

The broker is a throwaway one of this module (deploy/local/devstack.py, `scram=`), on
ports nothing else here uses (19992, controller 19993), its SCRAM user created when its
storage is formatted. Its password has the characters `openssl rand -base64` gives
(+ / =), which the format tool's `--add-scram` syntax and the JAAS line must both carry.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.conn import create_conn
from aiokafka.errors import KafkaConnectionError, SaslAuthenticationFailed

from bench.stack import load_devstack
from services.common.kafka import ensure_topics, make_broker, topic_configs
from services.common.outbox import OutboxMessage, OutboxRelay, enqueue
from services.common.settings import ServiceSettings
from tests.integration.test_consumer_faults import schema_pool
from tests.support import wait_until

PORT = 19992
USER = "alfi-services"
PASSWORD = "s3cr+t/with=base64=="
KEY = b"0b7e4c52-3f3a-4a8e-9d55-0c1f2e6b9a10"


@dataclass(frozen=True)
class SaslBroker:
    bootstrap: str
    log: Path

    def settings(self, password: str = PASSWORD) -> ServiceSettings:
        """What a service builds from its environment under docker compose."""
        return ServiceSettings(
            service="sasl-test", database_url="postgresql://unused@127.0.0.1/unused",
            kafka_bootstrap_servers=self.bootstrap, kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username=USER, kafka_sasl_password=password,
        )

    def log_since(self, offset: int) -> str:
        with self.log.open("rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")


@pytest.fixture(scope="module")
async def sasl_kafka() -> AsyncIterator[SaslBroker]:
    devstack = load_devstack()
    root = Path(tempfile.mkdtemp(prefix="alfi-test-kafka-sasl-"))
    try:
        # The launcher blocks for seconds: in a thread, the session's loop may serve others.
        bootstrap = await asyncio.to_thread(devstack.kafka_up, port=PORT, root=root, scram=(USER, PASSWORD))
        yield SaslBroker(bootstrap, root / "kafka.log")
    finally:
        await asyncio.to_thread(devstack.kafka_down, root)
        shutil.rmtree(root, ignore_errors=True)


async def read_back(settings: ServiceSettings, topic: str, count: int) -> list[bytes]:
    """Read `count` records with a consumer group, as the services' consumers do."""
    consumer = AIOKafkaConsumer(
        topic, **settings.kafka.client_options(), group_id=f"sasl-test-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest", enable_auto_commit=False,
    )
    await consumer.start()
    try:
        values: list[bytes] = []
        async with asyncio.timeout(30):
            while len(values) < count:
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    values.extend(r.value for r in records)
        await consumer.commit()  # the group coordinator answers over SASL too
        return values
    finally:
        await consumer.stop()


async def test_topics_are_created_with_the_platforms_layout(sasl_kafka: SaslBroker):
    settings = sasl_kafka.settings()
    events, commands = f"alfi.sasl-{uuid.uuid4().hex[:8]}.events", f"alfi.sasl-{uuid.uuid4().hex[:8]}.commands"

    created = await ensure_topics(settings.kafka, [events, commands], partitions=3)
    assert sorted(created) == sorted([events, commands])

    admin = AIOKafkaAdminClient(**settings.kafka.client_options())
    await admin.start()
    try:
        configs = await topic_configs(admin, [events, commands])
    finally:
        await admin.close()
    assert configs[events]["retention.ms"] == "-1"
    assert configs[commands]["retention.ms"] == str(settings.kafka_command_retention_ms)
    assert await ensure_topics(settings.kafka, [events]) == []  # found, not created again


async def test_a_faststream_broker_publishes_and_a_consumer_group_reads_back(sasl_kafka: SaslBroker):
    settings = sasl_kafka.settings()
    topic = f"alfi.sasl-{uuid.uuid4().hex[:8]}.events"
    await ensure_topics(settings.kafka, [topic], partitions=1)
    broker = make_broker(settings.kafka, "sasl-test-publisher")  # acks=all, idempotent, SCRAM
    await broker.start()
    try:
        for n in range(3):
            await broker.publish(f'{{"n": {n}}}'.encode(), topic, key=KEY)
    finally:
        await broker.stop()

    assert await read_back(settings, topic, 3) == [b'{"n": 0}', b'{"n": 1}', b'{"n": 2}']


async def test_the_outbox_relay_publishes_over_sasl(sasl_kafka: SaslBroker, database_url: str):
    """The path every service's events take: outbox row, relay, Kafka."""
    settings = sasl_kafka.settings()
    async with schema_pool(database_url) as (schema, pool):
        topic = f"alfi.sasl-{schema}.events"
        payloads = [b'{"relayed": 1}', b'{"relayed": 2}']
        async with pool.acquire() as conn, conn.transaction():
            await enqueue(conn, schema, [
                OutboxMessage(uuid.uuid4(), topic, KEY, payload, {"content-type": "application/json"})
                for payload in payloads])
        relay = OutboxRelay(pool, schema, settings.kafka, f"sasl-test-{schema}", topics=[topic])
        task = asyncio.create_task(relay.run())
        try:
            await wait_until(lambda: pool.fetchval("SELECT bool_and(published_at IS NOT NULL) FROM outbox"))
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    assert await read_back(settings, topic, 2) == payloads


async def test_a_wrong_password_is_refused(sasl_kafka: SaslBroker):
    offset = sasl_kafka.log.stat().st_size
    options = sasl_kafka.settings(password="not-the-password").kafka.client_options()
    host, port = options.pop("bootstrap_servers").rsplit(":", 1)

    # One connection with the same options: the broker's own answer, not a timeout.
    with pytest.raises(SaslAuthenticationFailed, match="invalid credentials"):
        await create_conn(host, int(port), **options, request_timeout_ms=10_000)
    # The services' consumer does not start.
    consumer = AIOKafkaConsumer(**sasl_kafka.settings(password="not-the-password").kafka.client_options(),
                                request_timeout_ms=10_000)
    with pytest.raises(KafkaConnectionError):
        await consumer.start()
    await consumer.stop()
    assert "Failed authentication" in sasl_kafka.log_since(offset)


async def test_a_client_without_sasl_cannot_read(sasl_kafka: SaslBroker):
    settings = sasl_kafka.settings()
    topic = f"alfi.sasl-{uuid.uuid4().hex[:8]}.events"
    await ensure_topics(settings.kafka, [topic], partitions=1)
    broker = make_broker(settings.kafka, "sasl-test-publisher")
    await broker.start()
    try:
        await broker.publish(b"kept from unauthenticated readers", topic, key=KEY)
    finally:
        await broker.stop()
    offset = sasl_kafka.log.stat().st_size

    plaintext = AIOKafkaConsumer(topic, bootstrap_servers=sasl_kafka.bootstrap, auto_offset_reset="earliest",
                                 request_timeout_ms=10_000)  # security_protocol PLAINTEXT: aiokafka's default
    with pytest.raises(KafkaConnectionError):
        await plaintext.start()
    await plaintext.stop()
    # The broker closed the connection at its first request, before any read.
    assert "during SASL handshake" in sasl_kafka.log_since(offset)
    assert await read_back(settings, topic, 1) == [b"kept from unauthenticated readers"]  # it is there
