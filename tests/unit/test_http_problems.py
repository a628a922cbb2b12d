"""How the HTTP layer answers failures: PostgreSQL unreachable is a 503 to retry, never a 500."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from services.common.http import RequestMetrics, install_problem_handlers
from services.common.metrics import HTTP_REQUESTS

UNREACHABLE = [
    ConnectionRefusedError(111, "Connect call failed"),
    ConnectionResetError(104, "Connection reset by peer"),
    TimeoutError(),  # a pool acquire timing out
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.InterfaceError("connection is closed"),
    asyncpg.CannotConnectNowError("the database system is starting up"),
    asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.CrashShutdownError("terminating connection because of crash of another server process"),
    asyncpg.TooManyConnectionsError("sorry, too many clients already"),
]
NOT_UNDERSTOOD = [
    ValueError("a bug"),
    KeyError("household_id"),
    asyncpg.UniqueViolationError("duplicate key value violates unique constraint"),
    asyncpg.UndefinedColumnError("column \"refused_at\" does not exist"),
]


def app_raising(error: BaseException) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/v1/things")
    async def failing() -> None:
        raise error

    app.add_middleware(RequestMetrics, service="unit-problems")
    return app


async def answer(error: BaseException) -> httpx.Response:
    # raise_app_exceptions=False: Starlette re-raises what its 500 handler answered.
    transport = httpx.ASGITransport(app=app_raising(error), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://unit") as client:
        return await client.post("/v1/things")


def counted(status: str) -> float:
    return HTTP_REQUESTS.labels("unit-problems", "/v1/things", "POST", status)._value.get()


@pytest.mark.parametrize("error", UNREACHABLE, ids=lambda e: type(e).__name__)
async def test_database_unreachable_answers_503_with_retry_after(error: BaseException):
    before = counted("503")
    response = await answer(error)
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "2"
    body = response.json()
    assert body["kind"] == "database_unavailable" and body["status"] == 503
    assert "nothing was recorded" in body["detail"] and "retry" in body["detail"].lower()
    assert counted("503") == before + 1  # the request metrics see the 503 as answered


@pytest.mark.parametrize("error", NOT_UNDERSTOOD, ids=lambda e: type(e).__name__)
async def test_any_other_failure_stays_a_500(error: BaseException):
    response = await answer(error)
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "retry-after" not in response.headers
    assert "kind" not in response.json()
