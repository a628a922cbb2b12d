"""Service settings from the environment (pydantic-settings).

`DATABASE_URL` and `KAFKA_BOOTSTRAP_SERVERS` are read under those plain names, which the
launcher, the tests and docker-compose all set; everything else is `ALFI_<FIELD>`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    # Worker processes for the HTTP API. With more than one, each runs its own relay
    # (only the advisory-lock holder publishes) and consumers (the group shares the
    # partitions), and /metrics aggregates every worker (PROMETHEUS_MULTIPROC_DIR).
    workers: int = 1
    db_pool_min: int = 1
    db_pool_max: int = 10
    log_level: str = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"

    @classmethod
    def for_service(cls, service: str, default_port: int) -> ServiceSettings:
        """Settings from the environment, with the service's own port unless ALFI_HTTP_PORT."""
        settings = cls(service=service)
        if "http_port" not in settings.model_fields_set:
            settings = settings.model_copy(update={"http_port": default_port})
        return settings
