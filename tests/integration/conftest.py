"""Real Kafka and real PostgreSQL, chosen by tests/infra.py, once per session.

Each session works in a database of its own, dropped at the end, so runs never see each
other's rows; topics are named per test where it matters.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from tests import infra


@pytest.fixture(scope="session")
def kafka() -> Iterator[infra.Kafka]:
    with infra.kafka() as broker:
        yield broker


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka: infra.Kafka) -> str:
    return kafka.bootstrap


@pytest.fixture(scope="session")
def server_database_url() -> Iterator[str]:
    with infra.postgres() as url:
        yield url


@pytest.fixture(scope="session")
async def database_url(server_database_url: str) -> AsyncIterator[str]:
    name = f"alfi_test_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server_database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    parts = urlsplit(server_database_url)
    yield urlunsplit(parts._replace(path=f"/{name}"))
    admin = await asyncpg.connect(server_database_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    try:
        yield conn
    finally:
        await conn.close()


async def wait_until(predicate, timeout: float = 30.0, interval: float = 0.1) -> None:
    """Poll `predicate` (sync or async) until it is true; fail with a clear message."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


@pytest.fixture(scope="session")
async def platform(kafka_bootstrap: str, database_url: str):
    from tests.integration.platform import running_platform

    async with running_platform(kafka_bootstrap, database_url) as running:
        yield running
