"""Every service answers only what its OpenAPI document declares (issue 13).

schemathesis reads the document each running service serves at `/openapi.json` and
generates, for every operation, requests valid and invalid against it; each answer must
be no 5xx, a declared status, a declared content type, a body and headers matching the
declared schema. The requests go through the platform's own clients (the services
in-process on the real Kafka and PostgreSQL): schemathesis's ASGI transport would run
the app in another event loop than the one its database pool belongs to, so hypothesis
draws the cases in a worker thread and each request is sent on the test's loop.

Every case is sent with the all-scope token, so the commands really execute, and without
a token, so the 401s are checked too. Half the valid cases name a household, interview
or situation recorded beforehand instead of a random id, so the answers of commands that
succeed (and their schemas) are checked, not only 404 and 409. Once per operation, a
valid body is also sent too large and as text/plain. Each path is also asked with the
methods it does not declare (a 405 problem with Allow), and a path no route serves
answers a 404 problem.

Generated commands are recorded in the session's database: their dates, and the years
of every request, are moved to FAR_YEAR, which no other test counts figures for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings, strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.common.http import MAX_BODY_BYTES
from services.common.problems import PROBLEM
from tests.integration.test_casework_veille import enrolled, interview

# schemathesis's own strategies draw from `random` (its concern, not this test's).
pytestmark = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies:hypothesis.errors.HypothesisDeprecationWarning")

SERVICES = ("intake", "casework", "veille", "stats")
# Cases per operation, drawn from the positive and the negative strategies together; each
# is sent with and without a token: about 30 s for the four services on an idle machine
# (stats, with the most operations, 13 s), on top of the platform fixture.
MAX_EXAMPLES = 40
CHECKS = (not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance)
# Other tests each count figures for (or freeze) a year of their own, 1950 to 2024
# (`grep -rn "Y = " tests/integration`); 2096 is a leap year, so every date stays a date.
FAR_YEAR = 2096
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
REQUEST_TIMEOUT_SECONDS = 30
SENT = ("method", "url", "params", "headers", "json", "data", "files")

Send = Callable[[dict[str, Any]], httpx.Response]
Failures = dict[tuple[str, str, str, str], str]


def far_dated(value: Any, name: str | None = None) -> Any:  # noqa: ANN401 - any JSON value
    """`value` with every `YYYY-MM-DD` string moved to FAR_YEAR (same month and day), and
    every value named `year` that a route could read as a year made FAR_YEAR (a year to
    freeze or to publish included)."""
    if isinstance(value, str) and ISO_DATE.fullmatch(value):
        return f"{FAR_YEAR}{value[4:]}"
    if name == "year" and isinstance(value, (int, float, str)) and not isinstance(value, bool):
        with contextlib.suppress(ValueError, OverflowError):
            if float(value).is_integer() and 1900 <= float(value) <= 2100:
                return FAR_YEAR
    if isinstance(value, dict):
        return {key: far_dated(item, key) for key, item in value.items()}
    if isinstance(value, list):
        return [far_dated(item, name) for item in value]
    return value


def with_known_ids(case: Case, known: dict[str, str]) -> None:
    """The ids of `case`'s path and body that name something recorded in `known` instead,
    and its lists without repeats: the document does not say that `topics` or `reasons`
    may not repeat a value (a 422), and most such commands would never be recorded."""
    if case.path_parameters:
        case.path_parameters = {name: known.get(name, value) for name, value in case.path_parameters.items()}
    if isinstance(case.body, dict) and "household_id" in case.body:
        body = {name: list(dict.fromkeys(value)) if isinstance(value, list) and all(isinstance(v, str) for v in value)
                else value for name, value in case.body.items()}
        case.body = {**body, "household_id": known["household_id"]}


async def recorded(platform) -> dict[str, str]:  # noqa: ANN001 - the platform fixture
    """A household enrolled on FAR_YEAR's first day, replicated to casework and veille,
    with an interview and a situation of its own."""
    household = await enrolled(platform, enrolled_on=f"{FAR_YEAR}-01-01")
    held = await platform.casework.post("/v1/interviews", json=interview(household, held_on=f"{FAR_YEAR}-01-02"),
                                        headers=platform.auth())
    escalated = await platform.veille.post("/v1/situations", headers=platform.auth(), json={
        "household_id": household, "escalated_on": f"{FAR_YEAR}-01-02", "severity": "serious",
        "reasons": ["rent_arrears"]})
    assert (held.status_code, escalated.status_code) == (201, 201), (held.text, escalated.text)
    return {"household_id": household, "interview_id": held.json()["interview_id"],
            "situation_id": escalated.json()["situation_id"]}


def answer_of(response: httpx.Response) -> str:
    return f"{response.status_code} {response.headers.get('content-type', '(no content type)')}"


def request_of(kwargs: dict[str, Any]) -> str:
    body = kwargs.get("json", kwargs.get("data", kwargs.get("content")))
    shown = "" if body is None else f" {kwargs['headers'].get('Content-Type', '')} {str(body)[:200]}"
    query = f"?{httpx.QueryParams(kwargs['params'])}" if kwargs.get("params") else ""
    return f"{kwargs['method']} {kwargs['url']}{query}{shown}"


def variants(case: Case, kwargs: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The case's JSON body over the size limit, and sent as text/plain."""
    if not isinstance(case.body, dict) or "json" not in kwargs:
        return []
    padded = {**case.body, "padding": "x" * MAX_BODY_BYTES}
    as_text = {k: v for k, v in kwargs.items() if k != "json"}
    as_text["headers"] = {**kwargs["headers"], "Content-Type": "text/plain"}
    return [("body too large", {**kwargs, "json": padded}),
            ("text/plain body", {**as_text, "data": json.dumps(case.body)})]


def explore(operation: schemathesis.APIOperation, send: Send, token: dict[str, str], known: dict[str, str]) -> Failures:
    """Generate cases for `operation`, send them, run the checks: the failures found, one
    per (operation, request kind, answer, check), each with an example."""
    failures: Failures = {}
    cases = st.one_of(operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
                      operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
    probed = False

    def check(case: Case, kind: str, kwargs: dict[str, Any]) -> None:
        try:
            response = send(kwargs)
        except Exception as error:  # noqa: BLE001 - the app raised through the transport: a 500
            failures.setdefault((operation.label, kind, "raised", "not_a_server_error"),
                                f"{type(error).__name__}: {error}\n      e.g. {request_of(kwargs)}")
            return
        for conformance in CHECKS:
            try:
                case.validate_response(response, checks=[conformance], headers=kwargs["headers"])
            except FailureGroup as group:
                reasons = "; ".join(f"{f.title}: {f.message.strip().splitlines()[0]}" for f in group.exceptions)
                failures.setdefault((operation.label, kind, answer_of(response), conformance.__name__),
                                    f"{reasons}\n      e.g. {request_of(kwargs)} -> {response.text[:300]}")

    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=cases, name_known_ids=st.booleans())
    def run(case: Case, name_known_ids: bool) -> None:
        nonlocal probed
        positive = case.meta.generation.mode.is_positive
        if positive and name_known_ids:
            with_known_ids(case, known)
        if isinstance(case.body, (dict, list)):
            case.body = far_dated(case.body)
        if case.path_parameters:
            case.path_parameters = far_dated(case.path_parameters)
        if isinstance(case.query, dict):
            case.query = far_dated(case.query)
        with_token = case.as_transport_kwargs(base_url="", headers=token)
        without = case.as_transport_kwargs(base_url="")
        without["headers"].pop("Authorization", None)
        check(case, "token", with_token)
        check(case, "no token", without)
        extra = variants(case, with_token) if not probed and positive else []
        for kind, kwargs in extra:
            probed = True
            check(case, kind, kwargs)

    run()
    return failures


def outside_the_document(document: dict[str, Any], send: Send, token: dict[str, str]) -> Failures:
    """What no operation declares is still a problem: each path asked with a method it does
    not declare answers 405 naming the declared ones in Allow (HEAD goes with GET), and a
    path no route serves answers 404."""
    failures: Failures = {}
    for path, item in document["paths"].items():
        declared = {method.upper() for method in item if method.upper() in METHODS}
        url = re.sub(r"\{[^}]+\}", "0b9e8c52-5f0a-4c1e-9a51-2f3d1c7a9e10", path)
        for method in sorted(set(METHODS) - declared):
            response = send({"method": method, "url": url, "headers": token})
            allowed = {m.strip() for m in response.headers.get("allow", "").split(",")} - {"HEAD"}
            if (response.status_code, response.headers.get("content-type"), allowed) != (405, PROBLEM, declared):
                failures.setdefault((path, "undeclared methods", answer_of(response), "405 problem with Allow"),
                                    f"expected 405 {PROBLEM} with Allow: {', '.join(sorted(declared))}; got Allow:"
                                    f" {response.headers.get('allow')}, e.g. {method} -> {response.text[:300]}")
    response = send({"method": "GET", "url": "/no/such/route", "headers": token})
    if (response.status_code, response.headers.get("content-type")) != (404, PROBLEM):
        failures[("GET /no/such/route", "token", answer_of(response), "404 problem")] = response.text[:300]
    return failures


@pytest.mark.parametrize("service", SERVICES)
async def test_every_answer_is_declared_in_the_openapi_document(platform, service: str):
    client = platform.clients[service]
    served = await client.get("/openapi.json")
    assert served.status_code == 200
    document = served.json()
    schema = schemathesis.openapi.from_dict(document)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations
    token = platform.auth("all")
    known = await recorded(platform)
    loop = asyncio.get_running_loop()

    def send(kwargs: dict[str, Any]) -> httpx.Response:
        kwargs = {key: value for key, value in kwargs.items() if key in SENT}
        if isinstance(kwargs.get("data"), (bytes, str)):
            kwargs["content"] = kwargs.pop("data")
        return asyncio.run_coroutine_threadsafe(client.request(**kwargs), loop).result(REQUEST_TIMEOUT_SECONDS)

    def explore_all() -> Failures:
        found = outside_the_document(document, send, token)
        for operation in operations:
            found.update(explore(operation, send, token, known))
        return found

    failures = await asyncio.to_thread(explore_all)
    assert not failures, f"{service}: {len(failures)} answers its OpenAPI document does not declare:\n" + "\n".join(
        f"- {label} [{kind}] {answer}: {check}\n      {example}"
        for (label, kind, answer, check), example in sorted(failures.items()))
