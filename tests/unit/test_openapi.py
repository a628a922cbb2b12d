"""Every service's OpenAPI document says what each route can answer: its failures as
problem+json with the shared Problem schema, and its successes with a JSON schema, so
that a client generator or schemathesis finds no undocumented status or empty body."""

from __future__ import annotations

import datetime
import uuid

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from alfi_contracts.vocabulary import Programme
from services.common.problems import Problem
from services.intake.answers import Household
from services.stats.answers import Activity, ProjectionStatus
from services.stats.reports import FIGURES

from services.casework.service import DEFINITION as CASEWORK
from services.common.service import Runtime
from services.common.settings import ServiceSettings
from services.intake.service import DEFINITION as INTAKE
from services.stats.service import DEFINITION as STATS
from services.veille.service import DEFINITION as VEILLE

PROBLEM = "application/problem+json"
PROBLEM_REF = "#/components/schemas/Problem"
METHODS = ("get", "post", "put", "patch", "delete")
UNAUTHENTICATED = {("get", "/asyncapi.json")}


def document(definition) -> dict:  # noqa: ANN001 - a ServiceDefinition
    # Building the app opens nothing: the pool and Kafka start in its lifespan.
    settings = ServiceSettings(service=definition.name, DATABASE_URL="postgresql://unused@127.0.0.1:1/none")
    return Runtime(definition, settings).app().openapi()


def operations() -> list:
    found = []
    for definition in (INTAKE, CASEWORK, VEILLE, STATS):
        spec = document(definition)
        for path, item in spec["paths"].items():
            for method in METHODS:
                if method in item:
                    found.append(pytest.param(spec, method, path, item[method], id=f"{definition.name} {method} {path}"))
    return found


OPERATIONS = operations()


@pytest.mark.parametrize(("spec", "method", "path", "operation"), OPERATIONS)
def test_every_error_is_a_documented_problem(spec: dict, method: str, path: str, operation: dict):
    errors = {status: response for status, response in operation["responses"].items() if status[0] in "45"}
    assert "500" not in errors
    for status, response in errors.items():
        assert set(response.get("content", {})) == {PROBLEM}, (status, response)
        media = response["content"][PROBLEM]
        assert media.get("schema") == {"$ref": PROBLEM_REF}, status
        examples = [example["value"] for example in media.get("examples", {}).values()]
        assert examples, f"{status} has no example"
        for example in examples:
            assert Problem.model_validate(example).status == int(status)
    if (method, path) not in UNAUTHENTICATED:
        assert {"401", "403"} <= set(errors), "an authenticated route answers 401 and 403"
        assert operation.get("security"), "an authenticated route names the bearer scheme"
    if "requestBody" in operation:
        assert {"413", "422"} <= set(errors)
    if operation.get("parameters") or "requestBody" in operation:
        assert "422" in errors
    for status in ("409", "503"):
        if status in errors:
            assert "Retry-After" in errors[status].get("headers", {}), status


@pytest.mark.parametrize(("spec", "method", "path", "operation"), OPERATIONS)
def test_every_json_success_has_a_schema(spec: dict, method: str, path: str, operation: dict):
    successes = {s: r for s, r in operation["responses"].items() if s.startswith("2")}
    assert successes
    for status, response in successes.items():
        json = response.get("content", {}).get("application/json")
        if json is not None:
            schema = json.get("schema") or {}
            if "$ref" in schema:
                schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
            assert schema.get("properties") or path == "/asyncapi.json" and schema == {"type": "object"}, \
                f"{status} has an empty JSON schema"
    if "201" in successes:
        assert "200" in successes, "a create replayed answers 200: declared too"


@pytest.mark.parametrize("definition", (INTAKE, CASEWORK, VEILLE, STATS), ids=lambda d: d.name)
def test_problem_schema_and_bearer_scheme_are_components(definition):
    spec = document(definition)
    components = spec["components"]
    assert components["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    problem = components["schemas"]["Problem"]
    assert {"type", "title", "status", "detail"} <= set(problem["required"])
    assert {"kind", "errors"} <= set(problem["properties"])
    assert "HTTPValidationError" not in components["schemas"]  # FastAPI's own 422 is replaced


def _served(route_options: dict, answer: dict) -> bytes:
    app = FastAPI()

    @app.get("/", **route_options)
    async def read() -> dict:
        return answer

    return TestClient(app).get("/").content


UTC = datetime.timezone.utc
ANSWERS = [
    pytest.param({"response_model": Household}, {
        "household_id": uuid.uuid4(), "programme": "fnavdl", "territory": "bretagne", "referent_worker_id": None,
        "enrolled_on": datetime.date(2023, 2, 1), "youth": None, "dalo_priority": None, "adults": None,
        "children": None, "closed_on": datetime.date(2023, 5, 1), "closure_outcome": None,
        "erased_on": datetime.date(2023, 6, 1)}, id="erased household"),
    pytest.param({"response_model": Activity, "response_model_exclude_none": True},
                 {"year": 2023, **dict.fromkeys(FIGURES, 0)}, id="activity"),
    pytest.param({"response_model": Activity, "response_model_exclude_none": True},
                 {"year": 2023, "programme": Programme.FNAVDL, "territory": "bretagne", **dict.fromkeys(FIGURES, 7)},
                 id="filtered activity"),
    pytest.param({"response_model": ProjectionStatus}, {
        "generation": 2, "partitions": [{"topic": "t", "partition": 0, "position": 5, "end_offset": None, "lag": None}],
        "topics": {"t": {"last_event_time": datetime.datetime(2024, 1, 15, 9, 30, tzinfo=UTC),
                         "applied_at": datetime.datetime(2024, 1, 15, 9, 30, 1, 123456, tzinfo=UTC)}}},
                 id="projection status"),
]


@pytest.mark.parametrize(("route_options", "answer"), ANSWERS)
def test_response_models_answer_byte_for_byte_as_before(route_options: dict, answer: dict):
    """The routes' answers, once declared, are the bytes they were when typed `dict`."""
    assert _served(route_options, answer) == _served({}, answer)
