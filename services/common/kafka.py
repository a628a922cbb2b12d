"""The Kafka side every service shares: how to connect, the FastStream broker factory,
topic setup.

aiokafka's defaults are acks=1 and no idempotence (NOTES.md); every producer of the
platform publishes with acks=all and the idempotent producer, set here once.

Topics are created with the platform's layout and kept so: event and dead-letter topics
keep every record (`retention.ms=-1`: a rebuild or a new replica reads the whole
history), command topics keep what upstream sent for `command_retention_ms`; replication
factor and `min.insync.replicas` come from settings. An existing topic whose retention or
min.insync.replicas differ is altered to the platform's values.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context
from faststream.kafka import KafkaBroker
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from alfi_contracts.topics import PARTITIONS

KEEP_FOREVER = "-1"

log = structlog.get_logger("alfi.kafka")


@dataclass(frozen=True)
class KafkaConnection:
    """Where Kafka is and how to talk to it (ALFI_KAFKA_* settings); a plain bootstrap
    string stands for a local PLAINTEXT broker with single-replica topics."""

    bootstrap_servers: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    replication_factor: int = 1
    min_insync_replicas: int = 1
    command_retention_ms: int = 14 * 24 * 3600 * 1000

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for any aiokafka client (consumer, producer, admin)."""
        options: dict[str, Any] = {"bootstrap_servers": self.bootstrap_servers,
                                   "security_protocol": self.security_protocol}
        if "SSL" in self.security_protocol:
            options["ssl_context"] = create_ssl_context(cafile=self.ssl_cafile)
        if self.security_protocol.startswith("SASL"):
            options.update(sasl_mechanism=self.sasl_mechanism or "PLAIN",
                           sasl_plain_username=self.sasl_username, sasl_plain_password=self.sasl_password)
        return options

    def faststream_security(self) -> BaseSecurity | None:
        if self.security_protocol == "PLAINTEXT":
            return None
        ssl = create_ssl_context(cafile=self.ssl_cafile) if "SSL" in self.security_protocol else None
        if not self.security_protocol.startswith("SASL"):
            return BaseSecurity(ssl_context=ssl, use_ssl=True)
        kind = {"SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}.get(
            self.sasl_mechanism or "PLAIN", SASLPlaintext)
        return kind(self.sasl_username or "", self.sasl_password or "", ssl_context=ssl,
                    use_ssl="SSL" in self.security_protocol)

    def topic_config(self, topic: str) -> dict[str, str]:
        # Commands and their dead letters hold upstream input in clear (personal fields
        # are sealed only in events): kept for the command retention, so an erasure
        # reaches them within that time. Events (sealed) and their dead letters stay.
        clear = topic.endswith((".commands", ".commands.dlq"))
        retention = str(self.command_retention_ms) if clear else KEEP_FOREVER
        return {"retention.ms": retention, "min.insync.replicas": str(self.min_insync_replicas)}


Kafka = KafkaConnection | str


def connection(kafka: Kafka) -> KafkaConnection:
    return kafka if isinstance(kafka, KafkaConnection) else KafkaConnection(kafka)


def make_broker(
    kafka: Kafka, client_id: str, *, middlewares: Sequence[Any] = (), **options: Any
) -> KafkaBroker:
    kafka = connection(kafka)
    return KafkaBroker(
        # A list: FastStream would read "h1:p1,h2:p2" as one host name.
        [server.strip() for server in kafka.bootstrap_servers.split(",") if server.strip()],
        security=kafka.faststream_security(),
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        middlewares=middlewares,
        **options,
    )


async def ensure_topics(kafka: Kafka, topics: Iterable[str], partitions: int = PARTITIONS) -> list[str]:
    """Create the topics that do not exist yet, with the platform's configuration, align
    the configuration of those that do, and wait until all have partition leaders (a
    consumer that subscribes before a topic is visible would not see it until its next
    metadata refresh). Return those this call created."""
    kafka = connection(kafka)
    wanted = list(dict.fromkeys(topics))
    admin = AIOKafkaAdminClient(**kafka.client_options(), client_id="alfi-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        for topic in missing:  # one by one: a topic another service created meanwhile is fine
            try:
                await admin.create_topics([NewTopic(
                    topic, num_partitions=partitions, replication_factor=kafka.replication_factor,
                    topic_configs=kafka.topic_config(topic))])
            except TopicAlreadyExistsError:
                pass
        await _align_configs(admin, kafka, [t for t in wanted if t in existing])
        for _ in range(100):
            described = await admin.describe_topics(wanted)
            if all(d["error_code"] == 0 and d["partitions"] and all(p["leader"] >= 0 for p in d["partitions"])
                   for d in described):
                break
            await asyncio.sleep(0.1)
        return missing
    finally:
        await admin.close()


async def topic_configs(admin: AIOKafkaAdminClient, topics: list[str]) -> dict[str, dict[str, str]]:
    """The effective configuration of each topic (its own or the broker's default)."""
    if not topics:
        return {}
    answers = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t) for t in topics])
    configs: dict[str, dict[str, str]] = {}
    for answer in answers:
        for resource in answer.resources:
            error_code, _, _, name, entries = resource[:5]
            if error_code == 0:
                configs[name] = {entry[0]: entry[1] for entry in entries}
    return configs


async def _align_configs(admin: AIOKafkaAdminClient, kafka: KafkaConnection, topics: list[str]) -> None:
    """Give existing topics the platform's retention and min.insync.replicas (a topic made
    before retention was set, or by the broker's auto-creation, kept 7 days only)."""
    for topic, current in (await topic_configs(admin, topics)).items():
        wanted = kafka.topic_config(topic)
        if any(current.get(key) != value for key, value in wanted.items()):
            # AlterConfigs replaces the topic's whole dynamic configuration: give all of ours.
            await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=wanted)])
            log.info("topic_config_aligned", topic=topic, **{k.replace(".", "_"): v for k, v in wanted.items()})


async def partitions_of(kafka: Kafka, topics: Iterable[str]) -> list[TopicPartition]:
    """Every partition of the existing `topics` (for consumers that assign themselves)."""
    admin = AIOKafkaAdminClient(**connection(kafka).client_options(), client_id="alfi-admin")
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    return [TopicPartition(d["topic"], p["partition"]) for d in described if d["error_code"] == 0
            for p in d["partitions"]]


async def read_to_end(kafka: Kafka, topics: Iterable[str]) -> list[ConsumerRecord]:
    """Every record now on `topics`, from the beginning to the end offsets read at start,
    without a consumer group (tools and tests; never for a consumer that must commit)."""
    tps = await partitions_of(kafka, topics)
    if not tps:
        return []
    consumer = AIOKafkaConsumer(**connection(kafka).client_options(), enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[ConsumerRecord] = []
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()
