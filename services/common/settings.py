"""Service settings from the environment (pydantic-settings).

`DATABASE_URL` and `KAFKA_BOOTSTRAP_SERVERS` are read under those plain names, which the
launcher, the tests and docker-compose all set; everything else is `ALFI_<FIELD>`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from .kafka import KafkaConnection


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ALFI_", extra="ignore", frozen=True)

    service: str
    database_url: str = Field(
        validation_alias=AliasChoices("ALFI_DATABASE_URL", "DATABASE_URL"),
    )
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092",
        validation_alias=AliasChoices("ALFI_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"),
    )
    # How every Kafka client connects (services.common.kafka.KafkaConnection): security
    # (PLAINTEXT, SASL_PLAINTEXT, SASL_SSL, SSL; SASL mechanism PLAIN or SCRAM-SHA-256/512)
    # and how the platform's topics are created (replication, min.insync.replicas).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None
    kafka_replication_factor: int = Field(1, ge=1)
    kafka_min_insync_replicas: int = Field(1, ge=1)
    # Command topics carry what upstream systems sent (personal data in clear): kept long
    # enough to be consumed after an outage, not forever. Event topics keep everything.
    kafka_command_retention_ms: int = Field(14 * 24 * 3600 * 1000, ge=3600 * 1000)
    # A Kafka command whose household is not replicated yet is retried this many times,
    # with exponential backoff from `command_retry_base_seconds` (at most 30 s apart),
    # before its dead letter: 14 tries span about 4 minutes, longer than a broker restart
    # (the enrolment cannot reach the replica meanwhile; a chaos run showed 15 s is not).
    command_retry_attempts: int = Field(14, ge=1)
    # Kafka commands applied per transaction. Their events are stamped as each is applied
    # but published only once the poll commits: 500 made the publication delay ~0.8 s at
    # 600 commands/s (bench/kafka_commands.py, bench/freshness.py).
    command_max_records: int = Field(200, ge=1, le=5000)
    command_retry_base_seconds: float = Field(0.5, gt=0)
    # An erasure stops everything at once but deletes the household's key (after which
    # nothing sealed of it opens) only this much later, so that consumers still apply
    # the events published just before it (services' relays are independent: an
    # interview may reach stats after the erasure). stats anonymises the household then.
    erasure_grace_seconds: float = Field(900, ge=0)
    # Published outbox rows are deleted once this old (their events are in Kafka).
    outbox_retention_seconds: float = Field(7 * 24 * 3600, ge=0)
    # Data quality (stats: /v1/reports/data-quality, services/stats/quality.py): how many
    # days an open accompaniment may go without an interview, a referent without holding
    # one, and an escalated situation without a review before they are reported; how often
    # stats counts them as of today for Prometheus (alfi_data_quality_issues); and how many
    # of each the alert AlfiDataQualityIssues tolerates (alfi_data_quality_threshold).
    data_quality_interview_days: int = Field(90, ge=1)
    data_quality_referent_days: int = Field(90, ge=1)
    data_quality_review_days: int = Field(60, ge=1)
    data_quality_interval_seconds: float = Field(60, gt=0)
    data_quality_alert_no_recent_interview: int = Field(20, ge=0)
    data_quality_alert_closure_outcome_unknown: int = Field(0, ge=0)
    data_quality_alert_referent_inactive: int = Field(0, ge=0)
    data_quality_alert_situation_not_reviewed: int = Field(0, ge=0)
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    # Worker processes for the HTTP API. With more than one, each runs its own relay
    # (only the advisory-lock holder publishes) and consumers (the group shares the
    # partitions), and /metrics aggregates every worker (PROMETHEUS_MULTIPROC_DIR).
    workers: int = 1
    # Processes a stats rebuild fills the new generation with (sharing the partitions):
    # decoding and opening sealed fields is CPU-bound, one process per core.
    rebuild_workers: int = Field(2, ge=1, le=64)
    db_pool_min: int = 1
    db_pool_max: int = 10
    log_level: str = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"

    @property
    def kafka(self) -> KafkaConnection:
        return KafkaConnection(
            bootstrap_servers=self.kafka_bootstrap_servers,
            security_protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            sasl_username=self.kafka_sasl_username,
            sasl_password=self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None,
            ssl_cafile=self.kafka_ssl_cafile,
            replication_factor=self.kafka_replication_factor,
            min_insync_replicas=self.kafka_min_insync_replicas,
            command_retention_ms=self.kafka_command_retention_ms,
        )

    def as_environment(self) -> dict[str, str]:
        """These settings as the environment a child process reads them from (`ALFI_*`,
        secrets included: the child is the same service)."""
        environment = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is not None:
                plain = value.get_secret_value() if isinstance(value, SecretStr) else value
                environment[f"ALFI_{name.upper()}"] = str(plain)
        return environment

    @classmethod
    def for_service(cls, service: str, default_port: int) -> ServiceSettings:
        """Settings from the environment, with the service's own port unless ALFI_HTTP_PORT."""
        settings = cls(service=service)
        if "http_port" not in settings.model_fields_set:
            settings = settings.model_copy(update={"http_port": default_port})
        return settings
