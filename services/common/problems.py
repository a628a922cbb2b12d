"""What the OpenAPI documents say a route can answer when it fails: RFC 9457 problems.

One `Problem` model describes every error body `http.py` sends; `responses_for` builds
a route's error responses from what the route does (needs a token, takes a body or
parameters, looks an id up, runs a command, reads the database), so no route writes its
own dicts. FastAPI's default 422 (`HTTPValidationError`) is replaced by the Problem one:
the handler in http.py never answers that shape. 500 is never declared: it is not a
contract but a bug.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

PROBLEM = "application/problem+json"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
JSON = "application/json"


class FieldError(BaseModel):
    field: str = Field(description="JSON pointer to the field (`/adults`), or a parameter's name")
    message: str = Field(description="What is wrong, never the value sent")


class Problem(BaseModel):
    """An RFC 9457 problem, as every error of the platform is answered."""

    type: str = Field(description="Always about:blank: `kind` classifies")
    title: str
    status: int
    detail: str = Field(description="What happened and what to do; names fields or ids, never personal data")
    kind: str | None = Field(None, description="A closed label: not_found, conflict, household_not_yet_known,"
                                               " forbidden_territory, forbidden_worker, database_unavailable...")
    errors: list[FieldError] | None = Field(None, description="The offending fields, for 422 and some 403/404/409")


def _example(status: int, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"value": {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}}


def _retry_after(when: str) -> dict[str, Any]:
    return {"Retry-After": {"description": f"Seconds to wait before retrying ({when})", "schema": {"type": "integer"}}}

# status -> (description, named examples, headers)
_ANSWERS: dict[int, tuple[str, dict[str, dict[str, Any]], dict[str, Any]]] = {
    401: ("No valid bearer token: missing, unknown, expired or revoked.",
          {"unauthorised": _example(401, "The bearer token is unknown, expired or revoked",
                                    "The bearer token is unknown, expired or revoked")},
          {"WWW-Authenticate": {"description": 'Bearer realm="alfi"', "schema": {"type": "string"}}}),
    403: ("The token lacks the route's scope, or is bound to other territories (`kind` forbidden_territory)"
          " or to another worker (forbidden_worker).",
          {"forbidden_scope": _example(403, "The token lacks the scope intake:write",
                                       "The token lacks the scope intake:write"),
           "forbidden_territory": _example(403, "Forbidden", "The token may act only in bretagne; this touches"
                                           " normandie.", kind="forbidden_territory")},
          {}),
    404: ("The id in the path or body names nothing known here.",
          {"not_found": _example(404, "Not found", "No household 0b9e8c52-5f0a-4c1e-9a51-2f3d1c7a9e10.",
                                 kind="not_found", errors=[{"field": "household_id", "message":
                                                            "No household 0b9e8c52-5f0a-4c1e-9a51-2f3d1c7a9e10."}])},
          {}),
    409: ("The command conflicts with what is recorded (same id with other content, a closed or erased"
          " household), or its household has not reached this service yet (`kind` household_not_yet_known:"
          " retry after Retry-After seconds).",
          {"conflict": _example(409, "Conflict", "The accompaniment is already closed (on 2023-06-30).",
                                kind="conflict"),
           "household_not_yet_known": _example(
               409, "Conflict", "Household 0b9e8c52-5f0a-4c1e-9a51-2f3d1c7a9e10 has not reached this service yet"
               " (its enrolment comes from intake's events); retry in a moment, then check the id.",
               kind="household_not_yet_known", errors=[{"field": "household_id", "message": "..."}])},
          _retry_after("household_not_yet_known only")),
    413: ("The body is over 65536 bytes.",
          {"too_large": _example(413, "Request body too large", "Bodies are limited to 65536 bytes.")}, {}),
    422: ("A field or parameter is invalid; `errors` lists each one by pointer, never its value.",
          {"invalid": _example(422, "Invalid request", "Check these fields: /adults.",
                               errors=[{"field": "/adults", "message": "Input should be greater than or equal to 1"}])},
          {}),
    503: ("The database is unavailable; nothing was recorded: retry after Retry-After seconds.",
          {"database_unavailable": _example(503, "Database unavailable", "The database is unavailable; nothing"
                                            " was recorded. Retry in a few seconds.", kind="database_unavailable")},
          _retry_after("always")),
}


def _problem_response(status: int) -> dict[str, Any]:
    description, examples, headers = _ANSWERS[status]
    response: dict[str, Any] = {"description": description,
                                "content": {PROBLEM: {"schema": PROBLEM_REF, "examples": examples}}}
    if headers:
        response["headers"] = headers
    return response


def responses_for(*, auth: bool = True, body: bool = False, params: bool = False, lookup: bool = False,
                  command: bool = False, database: bool = True,
                  answer: tuple[int, type[BaseModel], str] | None = None) -> dict[int | str, dict[str, Any]]:
    """A route's `responses=`: the problems it can answer, and its JSON answer
    `(status, model, description)` when it returns one (a 201 also answers 200 when the
    same command is replayed, with the same body).

    auth: 401/403; body: 413 and 422; params: 422 (a path or query parameter); lookup: 404
    (an id in the path or body is looked up); command: 409 (conflict or
    household_not_yet_known); database: 503 database_unavailable.
    """
    statuses = [status for status, applies in ((401, auth), (403, auth), (404, lookup), (409, command),
                                               (413, body), (422, body or params), (503, database)) if applies]
    responses: dict[int | str, dict[str, Any]] = {status: _problem_response(status) for status in statuses}
    if answer is not None:
        status, model, description = answer
        responses[status] = {"model": model, "description": description}
        if status == 201:
            responses[200] = {"model": model, "description": "The same command replayed: what was recorded"}
    return responses


def document_problems(app: FastAPI) -> None:
    """Put `Problem` (and `FieldError`) among the app's OpenAPI components, which the
    responses above refer to, and drop FastAPI's unused validation error schemas."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = build()
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(problem.pop("$defs", {}), Problem=problem)
            text = str(spec["paths"])
            for unused in ("HTTPValidationError", "ValidationError"):
                if f"/{unused}'" not in text:
                    schemas.pop(unused, None)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign] - FastAPI's documented way to extend the schema
