"""The HTTP side every service shares: problems, auth, limits, correlation, health, metrics.

- Errors are RFC 9457 `application/problem+json`, the router's 404 and 405 (with every
  method of the path in Allow) too; validation problems list each offending field as a
  JSON pointer in `errors` and `detail`, and count unknown fields under their parent:
  never a value nor an unknown field's name (it may be personal). A body that is not
  JSON is a 422 whether or not it decodes.
- `require_scope("x:y")`: 401 without a valid bearer token (unknown, expired or revoked),
  403 without the scope; the token's principal (scopes, territories, worker, label, id)
  is kept on `request.state` and reaches the command's Context, where the bus checks the
  territories and the worker (access.py) and audits the command (audit.py).
- `audited_read`: a read of a household or of a report is audited before it is answered.
- Bodies over `MAX_BODY_BYTES` answer 413 before they are parsed.
- `X-Correlation-ID` is taken from the request (or made) and travels into every event.
- `/asyncapi.json` serves the platform's AsyncAPI document, like `/openapi.json`, without a token.
- PostgreSQL unreachable (a crash, a restart, a failover, the pool out of connections)
  answers 503 `database_unavailable` with `Retry-After`, from any route or the token
  check; only what is not understood answers 500.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import asyncpg
import orjson
import structlog
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from alfi_contracts import export
from alfi_contracts.envelope import FieldProblem, field_problems

from . import audit, faults
from .access import Principal
from .auth import digest, principal_of
from .commands import Context
from .errors import NotYetKnown, Rejected
from .group_commit import GroupCommit
from .metrics import HTTP_DURATION, HTTP_REQUESTS, exposition
from .problems import PROBLEM, document_problems

DATABASE_RETRY_AFTER_SECONDS = 2
MAX_BODY_BYTES = 64 * 1024

log = structlog.get_logger("alfi.http")


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    headers = extra.pop("headers", None)
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra},
        status_code=status, media_type=PROBLEM, headers=headers,
    )


def _problems(error: RequestValidationError) -> list[FieldProblem]:
    """FastAPI's `loc` starts with where the value was read ("body", "query", "path"...),
    left out of the pointer. A query, path or header parameter is named by the route, not
    by the request, so its name may be told."""
    errors = [{**e, "loc": tuple(e["loc"][1:])} for e in error.errors()]
    declared = frozenset(e["loc"][1] for e in error.errors()
                         if e["loc"][0] != "body" and len(e["loc"]) > 1 and isinstance(e["loc"][1], str))
    return field_problems(errors, known=declared)


def _allowed_methods(request: Request) -> str:
    """Every method a route serves the request's path with. Starlette's Allow names those of
    the first route matching the path only, and one path's methods may be several routes."""
    allowed = [method for method in ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
               if any(route.matches({**request.scope, "method": method})[0] is Match.FULL
                      for route in request.app.router.routes)]
    return ", ".join(allowed)


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every failure as a problem, and document the Problem schema (problems.py)."""
    document_problems(app)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
        # Pointers and fixed messages only: neither a value nor an unknown field's name,
        # which may be personal data, is sent back (alfi_contracts.envelope.field_problems).
        problems = _problems(error)
        pointers = ", ".join(dict.fromkeys(p.pointer for p in problems))
        unknown = "".join(f"; {p.message} at {p.pointer}" for p in problems if p.unknown_fields)
        return problem(422, "Invalid request", f"Check these fields: {pointers}{unknown}.",
                       errors=[{"field": p.pointer, "message": p.message} for p in problems])

    @app.exception_handler(Rejected)
    async def rejected(_request: Request, error: Rejected) -> JSONResponse:
        extra: dict[str, Any] = {"kind": error.kind}
        if error.field:
            extra["errors"] = [{"field": error.field, "message": error.detail}]
        if isinstance(error, NotYetKnown):
            extra["headers"] = {"Retry-After": str(error.retry_after_seconds)}
        title = {403: "Forbidden", 404: "Not found", 409: "Conflict"}.get(error.status, "Invalid request")
        return problem(error.status, title, error.detail, **extra)

    # Starlette's class, which FastAPI's extends: the router's 404 and 405 (with Allow) and
    # FastAPI's body parsing raise it, and are problems like any other.
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 400 and error.__cause__ is not None:
            # FastAPI answers 422 for a body that is not JSON but 400 for one it cannot
            # decode (not UTF-8, nested too deep): the same mistake, the same answer.
            return await invalid(request, RequestValidationError(
                [{"type": "json_invalid", "loc": ("body", 0), "msg": "JSON decode error", "input": {}}]))
        if error.status_code == 405:
            allowed = _allowed_methods(request)
            return problem(405, "Method not allowed", f"{request.method} is not allowed here; this path answers"
                           f" {allowed}.", headers={"Allow": allowed})
        if error.status_code == 404 and request.scope.get("route") is None:
            return problem(404, "Not found", "No route answers this path: see /openapi.json.")
        return problem(error.status_code, str(error.detail), str(error.detail), headers=error.headers)

    async def database_unavailable(_request: Request, error: Exception) -> JSONResponse:
        if not faults.database_unavailable(error):
            raise error  # not PostgreSQL away: the 500 below
        log.warning("database_unavailable", error=type(error).__name__)
        return problem(503, "Database unavailable",
                       "The database is unavailable; nothing was recorded. Retry in a few seconds.",
                       kind="database_unavailable",
                       headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)})

    # Whether PostgreSQL is away is decided in one place (faults.database_unavailable);
    # the handler is registered under the classes that can say so rather than under
    # Exception, whose handler answers from the outermost middleware, after the request
    # metrics have counted a 500.
    for error_class in (OSError, asyncpg.InterfaceError, asyncpg.PostgresError):
        app.add_exception_handler(error_class, database_unavailable)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, _error: Exception) -> JSONResponse:
        return problem(500, "Internal error", "The service failed; the request was not recorded.")


class BodyLimit:
    """Refuse bodies over `limit` bytes with 413, whether or not Content-Length is sent."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared and declared.isdigit() and int(declared) > self.limit:
            return await self._too_large(scope, receive, send)
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise HTTPException(413, f"Request body over {self.limit} bytes")
            return message

        await self.app(scope, limited, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(413, "Request body too large", f"Bodies are limited to {self.limit} bytes.")
        await response(scope, receive, send)


def request_context(request: Request) -> Context:
    return Context.caused_by(f"http:{uuid.uuid4()}", request.headers.get("x-correlation-id"),
                             principal=getattr(request.state, "principal", None))


class TokenChecks:
    """Token checks with one lookup in flight per token: a request whose token is being
    looked up when it arrives shares that lookup's answer (an upstream system posting many
    commands with one token costs one query per round trip, not one per request). Nothing
    is kept once the lookup is done: a revoked or expired token is refused from the next
    lookup on, as before (the window is the one query already running)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.in_flight: dict[bytes, asyncio.Future] = {}

    async def principal(self, token: str) -> Principal | None:
        key = digest(token)  # the token itself is not kept, even for a moment
        lookup = self.in_flight.get(key)
        if lookup is None:
            lookup = self.in_flight[key] = asyncio.ensure_future(principal_of(self.pool, token))
            lookup.add_done_callback(lambda _: self.in_flight.pop(key, None))
        # Shielded: a request given up by its client does not cancel the others' lookup.
        return await asyncio.shield(lookup)


def token_checks(request: Request) -> TokenChecks:
    checks = getattr(request.app.state, "token_checks", None)
    if checks is None or checks.pool is not request.app.state.pool:
        checks = request.app.state.token_checks = TokenChecks(request.app.state.pool)
    return checks


# Declares the scheme in the OpenAPI document; the checks below give the problem answers.
bearer = HTTPBearer(auto_error=False, description="A platform token (make token SCOPES=...)")


def require_scope(scope: str) -> Callable[..., Awaitable[None]]:
    async def check(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        challenge = {"WWW-Authenticate": 'Bearer realm="alfi"'}
        if credentials is None or not credentials.credentials:
            raise HTTPException(401, "A bearer token is required (Authorization: Bearer ...)", challenge)
        pool: asyncpg.Pool = request.app.state.pool
        principal = await token_checks(request).principal(credentials.credentials.strip())
        if principal is None:
            raise HTTPException(401, "The bearer token is unknown, expired or revoked", challenge)
        if scope not in principal.scopes:
            # Audited like a refused command: a token tried what it was not given.
            route = request.scope.get("route")
            action = f"{request.method} {getattr(route, 'path', request.url.path)}"
            context = Context.caused_by(f"http:{uuid.uuid4()}", None, principal=principal)
            await audit.record_quietly(pool, context.audit_entry(
                request.app.state.runtime.definition.name, action, audit.rejected("forbidden_scope"),
                request.path_params))
            raise HTTPException(403, f"The token lacks the scope {scope}")
        request.state.principal = principal

    return check


def Authorised(scope: str) -> Any:  # noqa: N802 - reads as a marker in route signatures
    return Depends(require_scope(scope))


def request_principal(request: Request) -> Principal:
    """The principal `require_scope` found for this request."""
    return request.state.principal


async def audited_read(request: Request, action: str, read: Callable[[], Awaitable[Any]], *,
                       household_id: uuid.UUID | None = None, object_id: str | None = None,
                       conn: asyncpg.Connection | None = None) -> Any:
    """`read()`'s answer, once the read is in the audit trail (written on `conn`, in the
    read's transaction, when given; else on the pool): a read that cannot be audited is
    not served. A refused read (403, 404) is audited too, without failing its answer."""
    context = request_context(request)
    service = request.app.state.runtime.definition.name

    def entry(outcome: str) -> audit.Entry:
        return replace(context.audit_entry(service, action, outcome, {"household_id": household_id}),
                       object_id=object_id)

    try:
        answer = await read()
    except Rejected as error:
        await audit.record_quietly(request.app.state.pool, entry(audit.rejected(error.kind)))
        raise
    await audit.record(conn or request.app.state.pool, entry(audit.ACCEPTED))
    return answer


def install_health_and_metrics(
    app: FastAPI, readiness: Callable[[], Awaitable[tuple[bool, dict[str, bool]]]]
) -> None:
    @app.get("/health/live", include_in_schema=False)
    async def live() -> dict[str, str]:
        return {"status": "live"}

    @app.get("/health/ready", include_in_schema=False)
    async def ready() -> JSONResponse:
        ok, checks = await readiness()
        return JSONResponse({"status": "ready" if ok else "not_ready", "checks": checks},
                            status_code=200 if ok else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        body, content_type = exposition()
        return Response(body, media_type=content_type)


@functools.cache
def _asyncapi_document() -> bytes:
    # Built from the contracts rather than read from contracts/asyncapi.json: the images
    # install alfi_contracts without that file, and a unit test keeps both the same.
    return export.rendered(export.documents()["asyncapi.json"]).encode()


def install_asyncapi(app: FastAPI) -> None:
    """`GET /asyncapi.json`: the topics and messages of the whole platform, without a
    token like /openapi.json (ids, vocabularies and classes only, no personal data)."""

    @app.get("/asyncapi.json", tags=["documents"], response_class=Response, responses={
        200: {"description": "The AsyncAPI 3.0 document of every topic and message.",
              "content": {"application/json": {"schema": {"type": "object"}}}}})
    async def asyncapi() -> Response:
        """The platform's AsyncAPI document (contracts/asyncapi.json)."""
        return Response(_asyncapi_document(), media_type="application/json")


async def run_command(request: Request, name: str, command: BaseModel) -> Response:
    """Execute a command for an HTTP request: 201 when recorded, 200 when replayed."""
    runtime = request.app.state.runtime
    group = getattr(request.app.state, "group_commit", None)
    if group is None or group.pool is not runtime.pool:
        group = request.app.state.group_commit = GroupCommit(runtime.bus, runtime.pool)
    outcome = await group.execute(name, command, request_context(request))
    status = 201 if outcome.created else 200
    try:
        # orjson writes the views' UUIDs, dates and lists as jsonable_encoder + json would, faster.
        return Response(orjson.dumps(outcome.body), status_code=status, media_type="application/json")
    except TypeError:  # a type orjson does not know (none of today's views has one)
        return JSONResponse(jsonable_encoder(outcome.body), status_code=status)


class RequestMetrics:
    """Count and time every request by its route template (never the path: it holds ids)."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            HTTP_REQUESTS.labels(self.service, route, scope["method"], str(status)).inc()
            HTTP_DURATION.labels(self.service, route, scope["method"]).observe(time.perf_counter() - started)
