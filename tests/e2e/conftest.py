"""The command services as real processes on their own ports, over real HTTP."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest

from bench.stack import start_service, stop, wait_ready
from services.common.auth import ALL_SCOPES, issue_token, migrate_auth
from tests.conftest import fresh_database

PORTS = {"intake": 18001, "casework": 18002, "veille": 18003}


@dataclass
class Stack:
    env: dict[str, str]
    logs: Path
    processes: dict = field(default_factory=dict)
    token: str = ""
    ports: dict[str, int] = field(default_factory=lambda: dict(PORTS))

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def start(self, service: str, until: str = "/health/ready") -> None:
        process = start_service(f"services.{service}", self.ports[service], self.env, self.logs / f"{service}.log")
        self.processes[service] = process
        wait_ready(self.ports[service], process, path=until)

    def kill(self, service: str) -> None:
        stop(self.processes.pop(service), kill=True)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture(scope="module")
async def stack(kafka_bootstrap: str, server_database_url: str, tmp_path_factory):
    """Module-scoped: the processes are gone before another module starts services that
    join the same consumer groups. Their own database, so nothing is shared."""
    async with fresh_database(server_database_url) as database_url:
        async for running in _stack(kafka_bootstrap, database_url, tmp_path_factory):
            yield running


async def _stack(kafka_bootstrap: str, database_url: str, tmp_path_factory, ports: dict[str, int] = PORTS,
                 start: tuple[str, ...] = tuple(PORTS)):
    conn = await asyncpg.connect(database_url)
    try:
        await migrate_auth(conn)
        token = await issue_token(conn, list(ALL_SCOPES), "e2e")
    finally:
        await conn.close()
    running = Stack({"DATABASE_URL": database_url, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap},
                    tmp_path_factory.mktemp("service-logs"), token=token, ports=dict(ports))
    try:
        for service in start:
            running.start(service)
        yield running
    finally:
        for process in running.processes.values():
            with contextlib.suppress(Exception):
                stop(process)
