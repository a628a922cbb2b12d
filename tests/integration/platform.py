"""The three command services running in-process on the real Kafka and PostgreSQL."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from services.casework.service import DEFINITION as CASEWORK
from services.common.kafka import read_to_end
from services.common.auth import ALL_SCOPES, issue_token, migrate_auth
from services.common.service import Runtime
from services.common.settings import ServiceSettings
from services.intake.service import DEFINITION as INTAKE
from services.stats.service import DEFINITION as STATS
from services.veille.service import DEFINITION as VEILLE


@dataclass
class Platform:
    runtimes: dict[str, Runtime]
    clients: dict[str, httpx.AsyncClient]
    tokens: dict[str, str]
    bootstrap: str
    database_url: str

    def __getattr__(self, name: str) -> httpx.AsyncClient:
        return self.clients[name]

    def auth(self, scope: str = "all") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[scope]}"}


@contextlib.asynccontextmanager
async def running_platform(bootstrap: str, database_url: str) -> AsyncIterator[Platform]:
    conn = await asyncpg.connect(database_url)
    try:
        await migrate_auth(conn)
        tokens = {"all": await issue_token(conn, list(ALL_SCOPES), "tests")}
        for scope in ALL_SCOPES:
            tokens[scope] = await issue_token(conn, [scope], f"tests {scope}")
    finally:
        await conn.close()
    runtimes, clients = {}, {}
    async with contextlib.AsyncExitStack() as stack:
        for definition in (INTAKE, CASEWORK, VEILLE, STATS):
            settings = ServiceSettings(service=definition.name, database_url=database_url,
                                       kafka_bootstrap_servers=bootstrap, http_port=definition.default_port,
                                       # a household never enrolled is dead-lettered in 7.5 s, not 4 min
                                       command_retry_attempts=5,
                                       # erasures complete at once (keys deleted, stats
                                       # anonymises within seconds)
                                       erasure_grace_seconds=0)
            runtime = Runtime(definition, settings)
            app = runtime.app()
            await stack.enter_async_context(app.router.lifespan_context(app))
            app.state.pool = runtime.pool
            runtimes[definition.name] = runtime
            clients[definition.name] = await stack.enter_async_context(httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url=f"http://{definition.name}"))
        yield Platform(runtimes, clients, tokens, bootstrap, database_url)


async def produce(bootstrap: str, topic: str, values: list[bytes], key: bytes | None = None,
                  partition: int | None = None) -> None:
    """Send raw records in order (one key or one partition), each acknowledged."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=key, partition=partition)
    finally:
        await producer.stop()


async def read_topic(bootstrap: str, topic: str) -> list[ConsumerRecord]:
    """Every record currently on `topic`, read from the beginning without a group."""
    return await read_to_end(bootstrap, [topic])
