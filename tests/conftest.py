"""Markers follow the folder (tests/unit, tests/integration, tests/e2e); infrastructure
fixtures start only when a collected test asks for them.

Real Kafka and real PostgreSQL, chosen by tests/infra.py, once per session. Each session
works in a database of its own, dropped at the end, so runs never see each other's rows.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from tests import infra

LAYERS = ("unit", "integration", "e2e")
# The tests' households are dated years back: the retention clock (on by default) would
# erase them while the session runs. tests/integration/test_retention.py drives it itself.
os.environ.setdefault("ALFI_RETENTION_ENABLED", "false")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        layer = Path(item.fspath).relative_to(Path(__file__).parent).parts[0]
        if layer in LAYERS:
            item.add_marker(getattr(pytest.mark, layer))


@pytest.fixture(scope="session")
def kafka() -> Iterator[infra.Kafka]:
    with infra.kafka() as broker:
        yield broker


@pytest.fixture
def stoppable_kafka(kafka: infra.Kafka) -> infra.Kafka:
    """The session's broker, for tests that stop and restart it: only one this session
    started itself (never a broker given in KAFKA_BOOTSTRAP_SERVERS, which is not ours)."""
    if kafka.local is None:
        pytest.skip("needs a broker this test session started and may stop (KAFKA_BOOTSTRAP_SERVERS is set)")
    return kafka


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka: infra.Kafka) -> str:
    return kafka.bootstrap


@pytest.fixture(scope="session")
def server_database_url() -> Iterator[str]:
    with infra.postgres() as url:
        yield url


@contextlib.asynccontextmanager
async def fresh_database(server_url: str) -> AsyncIterator[str]:
    """A database of its own on the server, dropped afterwards."""
    name = f"alfi_test_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    finally:
        admin = await asyncpg.connect(server_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture(scope="session")
async def database_url(server_database_url: str) -> AsyncIterator[str]:
    async with fresh_database(server_database_url) as url:
        yield url


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def event_loop_runner():
    """Run a coroutine to completion from a synchronous test (hypothesis drives sync
    functions); a loop of its own, so it never nests in pytest-asyncio's."""
    import asyncio
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        yield lambda coroutine: pool.submit(asyncio.run, coroutine).result()
