"""PostgreSQL unreachable under a running service: 503 with Retry-After, never a 500, and
the service answers again by itself once the database is back.

The service reaches PostgreSQL through a TCP forwarder of this test's own, which the test
cuts (listener closed, every connection reset) and restores on the same port: the shared
server is never touched. Kafka is an address where nothing listens, so this service's
command consumer and relay stay away from the session's topics.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

from services.common.auth import issue_token, migrate_auth
from services.common.service import Runtime
from services.common.settings import ServiceSettings
from services.intake.service import DEFINITION as INTAKE
from tests.conftest import fresh_database
from tests.integration.test_intake import enrolment


class Forwarder:
    """127.0.0.1:<port> -> the database server, until cut."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.server: asyncio.Server | None = None
        self.links: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._link, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.links):
            writer.transport.abort()  # a reset, as when the server crashes
        self.links.clear()
        await self.server.wait_closed()

    async def _link(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection(*self.target)
        self.links |= {client_writer, server_writer}
        await asyncio.gather(self._pipe(client_reader, server_writer), self._pipe(server_reader, client_writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self.links.discard(writer)
            writer.transport.abort()


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.asynccontextmanager
async def intake_through(forwarder: Forwarder, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    url = urlsplit(database_url)
    proxied = urlunsplit(url._replace(netloc=f"{url.username}:{url.password}@127.0.0.1:{forwarder.port}"))
    settings = ServiceSettings(service="intake", database_url=proxied, http_port=INTAKE.default_port,
                               kafka_bootstrap_servers=f"127.0.0.1:{unused_port()}")
    app = Runtime(INTAKE, settings).app()
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://intake") as client:
        yield client


def assert_database_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "2"
    problem = response.json()
    assert problem["kind"] == "database_unavailable" and problem["status"] == 503
    assert "nothing was recorded" in problem["detail"]


async def test_database_away_answers_503_with_retry_after_then_recovers(server_database_url: str):
    async with fresh_database(server_database_url) as database_url:
        conn = await asyncpg.connect(database_url)
        try:
            await migrate_auth(conn)
            auth = {"Authorization": f"Bearer {await issue_token(conn, ['intake:write', 'intake:read'], 'faults')}"}
        finally:
            await conn.close()
        server = urlsplit(database_url)
        forwarder = Forwarder(server.hostname or "127.0.0.1", server.port or 5432)
        await forwarder.start()
        async with intake_through(forwarder, database_url) as intake:
            known = enrolment()
            assert (await intake.post("/v1/households", json=known, headers=auth)).status_code == 201

            await forwarder.cut()
            during = enrolment()
            for _ in range(3):  # connections reset under the pool, then refused
                assert_database_unavailable(await intake.post("/v1/households", json=during, headers=auth))
            assert_database_unavailable(await intake.get(f"/v1/households/{known['household_id']}", headers=auth))

            await forwarder.start()  # the database is back, on the same address
            assert (await intake.post("/v1/households", json=during, headers=auth)).status_code == 201
            got = await intake.get(f"/v1/households/{during['household_id']}", headers=auth)
            assert got.status_code == 200 and got.json()["household_id"] == during["household_id"]
            metrics = (await intake.get("/metrics")).text
            assert 'route="/v1/households",service="intake",status="503"' in metrics
            await forwarder.cut()  # the service stops with its database away, too


async def test_a_service_started_while_the_database_is_away_waits_for_it(server_database_url: str):
    async with fresh_database(server_database_url) as database_url:
        server = urlsplit(database_url)
        forwarder = Forwarder(server.hostname or "127.0.0.1", server.port or 5432)
        forwarder.port = unused_port()  # nothing listens there yet: the database is "down"

        async def database_back_later() -> None:
            await asyncio.sleep(3)
            await forwarder.start()

        returning = asyncio.create_task(database_back_later())
        async with intake_through(forwarder, database_url) as intake:  # started, not exited
            assert returning.done()
            assert (await intake.get("/health/live")).status_code == 200
            ready = (await intake.get("/health/ready")).json()
            assert ready["checks"]["database"] is True
        await forwarder.cut()
