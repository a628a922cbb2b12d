"""Validation errors never echo the input (issue 12): neither an unknown field's name nor a
value reaches a 422 body or a dead-letter detail, however hostile the request.

Hypothesis puts names and addresses into valid HTTP bodies and Kafka commands, as unknown
fields (nested ones too) and in place of string values, and checks that none of them comes
back. The texts are chosen so that they cannot occur in an honest answer (capitalised
names, street addresses, anything with a character outside printable ASCII: the answers
are ASCII), so finding one means it was echoed.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Annotated, Any
from urllib.parse import quote
from uuid import UUID, uuid4

import pytest
from aiokafka import TopicPartition
from fastapi import FastAPI, Query
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings, strategies as st
from pydantic import TypeAdapter, ValidationError

from alfi_contracts import ContractError, decode, make_event
from alfi_contracts.commands import COMMANDS, EnrolHousehold, RecordInterview, RecordMeeting, command_message_union
from alfi_contracts.envelope import describe, field_problems
from alfi_contracts.events import HouseholdEnrolled
from alfi_contracts.topics import DLQ_ERROR_DETAIL
from services.common.deadletters import dead_letter
from services.common.http import install_problem_handlers

VALID: dict[str, dict[str, Any]] = {
    "enrol_household": {
        "household_id": str(uuid4()), "programme": "jeunes_ase", "territory": "ile-de-france",
        "referent_worker_id": "sw-017", "enrolled_on": "2023-12-31", "youth": True,
        "dalo_priority": False, "adults": 1, "children": 2,
    },
    "change_referent": {"household_id": str(uuid4()), "referent_worker_id": "sw-018", "changed_on": "2024-01-02"},
    "record_interview": {
        "household_id": str(uuid4()), "worker_id": "sw-001", "held_on": "2024-01-03", "mode": "home_visit",
        "topics": ["budget", "housing"], "duration_minutes": 45,
    },
    "record_workshop": {
        "residence": "les-lilas", "territory": "bretagne", "theme": "budget", "held_on": "2024-01-04",
        "participants": 12,
    },
    "escalate_situation": {
        "household_id": str(uuid4()), "escalated_on": "2024-01-05", "severity": "serious",
        "reasons": ["rent_arrears", "isolation"],
    },
    "record_meeting": {
        "held_on": "2024-01-06", "territory": "bretagne",
        "reviewed": [{"situation_id": str(uuid4()), "decision": "monitor"},
                     {"situation_id": str(uuid4()), "decision": "close"}],
    },
}
ROUTES = {"/households": "enrol_household", "/interviews": "record_interview", "/meetings": "record_meeting"}

PEOPLE = [
    "Jean Dupont, 12 rue X", "Madame D", "Guylène N'Diaye", "Mme Fatoumata Koné", "12 rue des Lilas, 75020 Paris",
    "06 12 34 56 78", "jean.dupont@example.org", "née le 03/04/1987", "enceinte, sans titre de séjour",
]


def _foreign(text: str) -> bool:
    return any(not " " <= character <= "~" for character in text)


# What a person's data looks like; none of it can be part of an honest answer.
personal_texts = st.one_of(
    st.sampled_from(PEOPLE),
    st.from_regex(r"[A-Z][a-z]{2,12} [A-Z][a-zé]{2,12}", fullmatch=True),  # "Jean Dupont"
    st.from_regex(r"[0-9]{1,3} (rue|avenue|allée|impasse) [A-Z][a-z]{2,12}", fullmatch=True),
    st.text(min_size=3, max_size=30).filter(_foreign),
)


@st.composite
def poisoned(draw: st.DrawFn, document: Any) -> tuple[Any, list[str]]:  # noqa: ANN401
    """`document` with unknown fields added to its objects and some string values replaced
    by personal texts; also the texts put in (at least one)."""
    texts: list[str] = []

    def put(value: Any) -> Any:  # noqa: ANN401
        if isinstance(value, dict):
            changed = {key: put(item) for key, item in value.items()}
            for key in draw(st.lists(personal_texts, max_size=3)):
                changed[key] = draw(st.one_of(personal_texts, st.integers(), st.booleans()))
                texts.extend([key, changed[key]])
            return changed
        if isinstance(value, list):
            return [put(item) for item in value]
        if isinstance(value, str) and draw(st.integers(0, 3)) == 0:
            texts.append(draw(personal_texts))
            return texts[-1]
        return value

    changed = put(document)
    if not texts:
        texts.extend([draw(personal_texts), draw(personal_texts)])
        changed[texts[-2]] = texts[-1]
    return changed, [t for t in texts if isinstance(t, str) and len(t) >= 3]


def echoed(texts: list[str], answer: Any) -> list[str]:  # noqa: ANN401
    """The texts found in any key or string of a JSON answer (or in a plain string)."""
    def strings(value: Any) -> list[str]:  # noqa: ANN401
        if isinstance(value, dict):
            return [*value, *(s for item in value.values() for s in strings(item))]
        if isinstance(value, list):
            return [s for item in value for s in strings(item)]
        return [value] if isinstance(value, str) else []

    said = "\x00".join(strings(answer))
    return [text for text in texts if text in said]


def problems_app() -> FastAPI:
    """The shared problem handlers over routes that take command bodies, as the services do."""
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/households")
    async def enrol(body: EnrolHousehold) -> dict:
        return {}

    @app.post("/interviews")
    async def interview(body: RecordInterview) -> dict:
        return {}

    @app.post("/meetings")
    async def meeting(body: RecordMeeting) -> dict:
        return {}

    @app.get("/households/{household_id}/figures")
    async def figures(household_id: UUID, year: Annotated[int, Query(ge=1900, le=2100)]) -> dict:
        return {}

    return app


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(problems_app())


def kafka_detail(message: bytes, service: str) -> str:
    with pytest.raises(ValidationError) as caught:
        TypeAdapter(command_message_union(service)).validate_json(message)
    return describe(caught.value)


# ---------------------------------------------------------------- whatever is sent


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), path=st.sampled_from(sorted(ROUTES)))
def test_a_422_never_echoes_an_unknown_field_or_a_value(client, data, path):
    body, texts = data.draw(poisoned(VALID[ROUTES[path]]))
    response = client.post(path, json=body)
    assert response.status_code == 422
    problem = response.json()
    assert set(problem) == {"type", "title", "status", "detail", "errors"}
    assert all(set(e) == {"field", "message"} and e["field"].startswith("/") for e in problem["errors"])
    assert echoed(texts, problem) == []


@settings(max_examples=200, deadline=None)
@given(data=st.data(), name=st.sampled_from(sorted(VALID)))
def test_a_dead_letter_never_echoes_an_unknown_field_or_a_value(data, name):
    message, texts = data.draw(poisoned({"command": name, "data": VALID[name]}))
    detail = kafka_detail(json.dumps(message).encode(), COMMANDS[name][0])
    assert echoed(texts, detail) == []
    letter = dead_letter(TopicPartition("alfi.intake.commands", 0), SimpleNamespace(offset=0, key=b"", value=b""),
                         "invalid", detail)
    assert echoed(texts, letter.headers[DLQ_ERROR_DETAIL]) == []  # what `make dead-letters` prints


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=personal_texts)
def test_a_bad_path_or_query_parameter_is_not_echoed(client, text):
    response = client.get(f"/households/{quote(text, safe='')}/figures", params={"year": text})
    if response.status_code == 404:  # a "/" in the text: another path
        return
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {"/household_id", "/year"}
    assert echoed([text], response.json()) == []


# ---------------------------------------------------------------- what the answer says


def test_unknown_fields_are_counted_under_their_parent(client):
    body = VALID["enrol_household"] | {"adults": 0, "Jean Dupont, 12 rue X": 1, "Madame D": "née en 1987"}
    response = client.post("/households", json=body)
    assert response.status_code == 422
    problem = response.json()
    assert problem["errors"] == [
        {"field": "/adults", "message": "Input should be greater than or equal to 1"},
        {"field": "/", "message": "2 unknown fields"},
    ]
    assert problem["detail"] == "Check these fields: /adults, /; 2 unknown fields at /."
    assert echoed(["Jean", "Dupont", "Madame", "1987"], problem) == []


def test_a_nested_unknown_field_is_counted_at_its_object(client):
    body = VALID["record_meeting"] | {
        "reviewed": [VALID["record_meeting"]["reviewed"][0] | {"Jean Dupont": "violences"},
                     VALID["record_meeting"]["reviewed"][1] | {"decision": "Madame D"}],
    }
    problem = client.post("/meetings", json=body).json()
    assert problem["errors"] == [
        {"field": "/reviewed/0", "message": "1 unknown field"},
        {"field": "/reviewed/1/decision",
         "message": "Input should be 'monitor', 'refer_partner', 'urgent_action' or 'close'"},
    ]
    assert echoed(["Jean Dupont", "violences", "Madame D"], problem) == []


def test_unknown_fields_of_a_kafka_command_are_merged_per_object():
    meeting = VALID["record_meeting"]
    message = {"command": "record_meeting", "Jean Dupont": 1,
               "data": meeting | {"Madame D": 2, "Rue des Lilas": 3,
                                  "reviewed": [meeting["reviewed"][0] | {"Enceinte": True}]}}
    assert kafka_detail(json.dumps(message).encode(), "veille") == (
        "/data/reviewed/0: 1 unknown field; /data: 2 unknown fields; /: 1 unknown field")


def test_a_bad_uuid_is_told_without_its_letters(client):
    problem = client.post("/households", json=VALID["enrol_household"] | {"household_id": "Jean-Dupont"}).json()
    assert problem["errors"] == [{"field": "/household_id", "message": "must be a UUID"}]
    detail = kafka_detail(json.dumps({"command": "record_interview",
                                      "data": VALID["record_interview"] | {"household_id": "Jxx"}}).encode(), "casework")
    assert detail == "/data/household_id: must be a UUID"


def test_an_unknown_command_lists_the_known_ones_not_the_one_given():
    detail = kafka_detail(json.dumps({"command": "Jean Dupont", "data": {}}).encode(), "veille")
    assert detail == ("/command: must be one of the known commands: "
                      "'escalate_situation', 'resolve_situation', 'record_meeting', 'complete_action',"
                      " 'cancel_action'")
    assert kafka_detail(b'{"data": {}}', "veille") == "/command: Field required"


def test_bad_json_is_told_without_quoting_it(client):
    response = client.post("/households", content=b'{"Jean Dupont": ', headers={"content-type": "application/json"})
    assert response.json()["errors"] == [{"field": "/", "message": "is not valid JSON"}]
    assert "Dupont" not in response.text
    assert kafka_detail(b'{"Jean Dupont": ', "intake") == "/: is not valid JSON"


def test_the_contracts_own_validation_messages_are_kept():
    interview = VALID["record_interview"] | {"topics": ["budget", "budget"], "held_on": "le 3 mai"}
    assert kafka_detail(json.dumps({"command": "record_interview", "data": interview}).encode(), "casework") == (
        "/data/held_on: must be an ISO date YYYY-MM-DD; /data/topics: must not repeat a value")
    situation = str(uuid4())
    meeting = VALID["record_meeting"] | {"reviewed": [{"situation_id": situation, "decision": "close"}] * 2}
    assert kafka_detail(json.dumps({"command": "record_meeting", "data": meeting}).encode(), "veille") == (
        "/data/reviewed: a meeting reviews each situation once")


def test_a_key_from_the_input_ends_the_pointer():
    """A free dict's key, say; the contracts have none today."""
    errors = [{"type": "int_type", "loc": ("data", "Jean Dupont", 0, "adults"), "msg": "Input should be a valid integer",
               "input": "x"},
              {"type": "value_error", "loc": ("adults",), "msg": "Value error, Jean Dupont is not valid",
               "input": "x", "ctx": {"error": ValueError("Jean Dupont is not valid")}}]
    assert [(p.pointer, p.message) for p in field_problems(errors)] == [
        ("/data", "Input should be a valid integer"),
        ("/adults", "is not valid"),  # a validator's message the contracts do not know
    ]


def test_an_event_that_cannot_be_read_is_not_echoed():
    event = json.loads(make_event(HouseholdEnrolled(**VALID["enrol_household"])).model_dump_json())
    with pytest.raises(ContractError) as caught:
        decode(json.dumps(event | {"data": event["data"] | {"Jean Dupont": "12 rue X"}}))
    assert caught.value.kind == "invalid_data" and caught.value.detail == "/: 1 unknown field"
    with pytest.raises(ContractError) as caught:
        decode(json.dumps(event | {"type": "jean_dupont.rue_des_lilas"}))
    assert caught.value.kind == "unknown_type" and "dupont" not in str(caught.value)
