"""The contracts an upstream producer relies on: shapes, vocabularies, versions, schemas."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from uuid import uuid4

import pytest
from pydantic import TypeAdapter, ValidationError

from alfi_contracts import EVENT_TYPES, EVENTS_BY_TYPE, ContractError, decode, encode, make_event
from alfi_contracts import export
from alfi_contracts.envelope import read
from alfi_contracts.commands import COMMANDS, command_message_union
from alfi_contracts.events import HouseholdEnrolled, InterviewHeld, SituationEscalated, VeilleMeetingHeld
from alfi_contracts.topics import dead_letter_topic, events_topic

STORED = Path(__file__).parent / "stored_events"
DESIGN_CATALOGUE = {
    "household.enrolled", "household.referent_changed", "household.accompaniment_closed",
    "household.personal_data_erased", "interview.held", "interview.cancelled",
    "workshop.held", "rehousing.confirmed", "situation.escalated",
    "veille.meeting_held", "situation.resolved",
}
# Added since DESIGN.md, documented in the README ("Veille follow-up"): issue 14.
ADDED = {"veille.action_decided", "veille.action_completed", "veille.action_cancelled",
         "situation.re_review_scheduled"}


def enrolled(**overrides) -> HouseholdEnrolled:
    fields = dict(
        household_id=uuid4(), programme="jeunes_ase", territory="ile-de-france",
        referent_worker_id="sw-017", enrolled_on="2023-12-31", youth=True,
        dalo_priority=True, adults=1, children=0,
    )
    return HouseholdEnrolled(**(fields | overrides))


def stored_payloads() -> list[Path]:
    return sorted(STORED.glob("*.json"))


def test_catalogue_matches_design():
    assert set(EVENTS_BY_TYPE) == DESIGN_CATALOGUE | ADDED


@pytest.mark.parametrize("path", stored_payloads(), ids=lambda p: p.stem)
def test_every_stored_payload_is_still_readable(path: Path):
    raw = path.read_bytes()
    envelope, data = decode(raw)
    assert envelope.type == data.type
    assert isinstance(data, EVENTS_BY_TYPE[envelope.type])


def test_every_current_version_has_a_stored_payload():
    stored = {p.stem for p in stored_payloads()}
    assert {f"{m.type}.v{m.version}" for m in EVENT_TYPES} <= stored


def test_situation_escalated_v1_single_reason_is_upcast_to_a_list():
    envelope, data = decode((STORED / "situation.escalated.v1.json").read_bytes())
    assert envelope.schema_version == 1
    assert isinstance(data, SituationEscalated)
    assert data.reasons == ["rent_arrears"]


def test_round_trip_keeps_envelope_and_data():
    data = enrolled()
    event = make_event(data, correlation_id="req-1", causation_id="cmd-1")
    envelope, decoded = decode(encode(event))
    assert decoded == data
    assert envelope == event
    assert envelope.subject == data.household_id
    assert envelope.source == "/alfi/intake"
    assert envelope.dataschema == "urn:alfi:schema:household.enrolled:v1"
    assert data.key == str(data.household_id).encode()


def test_encoded_event_is_structured_cloudevent_json():
    body = json.loads(encode(make_event(enrolled())))
    assert body["specversion"] == "1.0"
    assert body["datacontenttype"] == "application/json"
    assert body["data"]["enrolled_on"] == "2023-12-31"
    assert "correlationid" not in body  # absent, not null, when unset


def test_workshop_and_meeting_are_keyed_by_their_own_id():
    meeting = VeilleMeetingHeld(
        meeting_id=uuid4(), held_on="2023-05-10", territory="bretagne",
        reviewed=[{"situation_id": uuid4(), "decision": "monitor"}],
    )
    assert meeting.key == str(meeting.meeting_id).encode()
    assert make_event(meeting).subject == meeting.meeting_id


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"programme": "hotel_social"}, "programme"),
        ({"territory": "Île de France"}, "territory"),
        ({"referent_worker_id": "Guylène"}, "referent_worker_id"),
        ({"enrolled_on": "31/12/2023"}, "enrolled_on"),
        ({"enrolled_on": 1703980800}, "enrolled_on"),
        ({"adults": 0}, "adults"),
        ({"children": -1}, "children"),
        ({"name": "Madame D"}, "name"),
    ],
)
def test_event_rejects_bad_values_naming_the_field(overrides, field):
    with pytest.raises(ValidationError) as caught:
        enrolled(**overrides)
    assert field in {str(loc) for e in caught.value.errors() for loc in e["loc"]}


def test_events_are_immutable():
    data = enrolled()
    with pytest.raises(ValidationError):
        data.children = 3  # type: ignore[misc]


def test_interview_topics_are_a_non_empty_set():
    fields = dict(
        interview_id=uuid4(), household_id=uuid4(), worker_id="sw-001", held_on=date(2023, 1, 2),
        mode="office", duration_minutes=45,
    )
    with pytest.raises(ValidationError, match="topics"):
        InterviewHeld(**fields, topics=[])
    with pytest.raises(ValidationError, match="must not repeat"):
        InterviewHeld(**fields, topics=["budget", "budget"])


def test_meeting_reviews_each_situation_once():
    situation = uuid4()
    with pytest.raises(ValidationError, match="reviews each situation once"):
        VeilleMeetingHeld(
            meeting_id=uuid4(), held_on="2023-05-10", territory="bretagne",
            reviewed=[{"situation_id": situation, "decision": "monitor"},
                      {"situation_id": situation, "decision": "close"}],
        )


def test_a_meeting_may_review_no_situation():
    """A practice-sharing meeting (DESIGN.md): recorded and published with an empty review list."""
    fields = dict(held_on="2023-05-10", territory="bretagne", reviewed=[])
    assert VeilleMeetingHeld(meeting_id=uuid4(), **fields).reviewed == []
    service, model = COMMANDS["record_meeting"]
    assert model(**fields).reviewed == []
    message = TypeAdapter(command_message_union(service)).validate_python(
        {"command": "record_meeting", "data": fields})
    assert message.data.reviewed == []
    envelope, data = decode(encode(make_event(VeilleMeetingHeld(meeting_id=uuid4(), **fields))))
    assert data.reviewed == [] and envelope.type == "veille.meeting_held"
    twice = [{"situation_id": (situation := uuid4()), "decision": "monitor"},
             {"situation_id": situation, "decision": "close"}]
    with pytest.raises(ValidationError, match="reviews each situation once"):
        model(**fields | {"reviewed": twice})


def body_of(path: str) -> dict:
    return json.loads((STORED / path).read_text())


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b"\xff\xfe not json", "undecodable"),
        (b"[1, 2]", "undecodable"),
        (json.dumps(body_of("household.enrolled.v1.json") | {"specversion": "0.3"}), "invalid_envelope"),
        (json.dumps(body_of("household.enrolled.v1.json") | {"subject": str(uuid4())}), "invalid_envelope"),
        (json.dumps(body_of("household.enrolled.v1.json") | {"source": "/alfi/veille"}), "invalid_envelope"),
        (json.dumps(body_of("household.enrolled.v1.json") | {"type": "household.adopted"}), "unknown_type"),
        (json.dumps(body_of("household.enrolled.v1.json")
                    | {"dataschema": "urn:alfi:schema:household.enrolled:v9"}), "unknown_version"),
        (json.dumps(body_of("household.enrolled.v1.json")
                    | {"data": body_of("household.enrolled.v1.json")["data"] | {"adults": "two"}}),
         "invalid_data"),
    ],
)
def test_decode_classifies_what_is_wrong(raw, kind):
    with pytest.raises(ContractError) as caught:
        decode(raw)
    assert caught.value.kind == kind


def test_decode_error_never_echoes_the_input():
    body = body_of("household.enrolled.v1.json")
    body["data"]["territory"] = "Madame D, 12 rue des Lilas"
    with pytest.raises(ContractError) as caught:
        decode(json.dumps(body))
    assert "territory" in caught.value.detail
    assert "Lilas" not in str(caught.value)


def test_command_messages_route_by_name_per_service():
    adapter = TypeAdapter(command_message_union("casework"))
    message = adapter.validate_python(
        {"command": "cancel_interview",
         "data": {"interview_id": str(uuid4()), "cancelled_on": "2023-02-03", "reason": "duplicate"}}
    )
    assert message.command == "cancel_interview"
    with pytest.raises(ValidationError):
        adapter.validate_python({"command": "enrol_household", "data": {}})  # intake's, not casework's
    with pytest.raises(ValidationError, match="cancelled_on"):
        adapter.validate_python({"command": "cancel_interview", "data": {"interview_id": str(uuid4()), "reason": "duplicate"}})


def test_create_commands_take_an_optional_client_id():
    for name in ("enrol_household", "record_interview", "record_workshop", "confirm_rehousing",
                 "escalate_situation", "record_meeting"):
        model = COMMANDS[name][1]
        id_fields = [f for f, info in model.model_fields.items() if f.endswith("_id") and not info.is_required()]
        assert id_fields, name


def test_topic_names():
    assert events_topic("intake") == "alfi.intake.events"
    assert dead_letter_topic("alfi.casework.commands") == "alfi.casework.commands.dlq"


def test_exported_schemas_match_the_models():
    drifted = [
        relative for relative, document in export.documents().items()
        if not (export.ROOT / relative).exists()
        or (export.ROOT / relative).read_text() != export.rendered(document)
    ]
    assert drifted == [], f"run `python -m alfi_contracts.export`; drifted: {drifted}"


def test_asyncapi_document_names_every_topic():
    document = json.loads((export.ROOT / "asyncapi.json").read_text())
    addresses = {c["address"] for c in document["channels"].values()}
    for service in ("intake", "casework", "veille"):
        assert {f"alfi.{service}.events", f"alfi.{service}.commands"} <= addresses
    assert document["asyncapi"].startswith("3.")


def test_worker_ids_and_slugs_are_never_free_text():
    pattern = re.compile(HouseholdEnrolled.model_json_schema()["properties"]["referent_worker_id"]["pattern"])
    assert pattern.match("sw-017") and not pattern.match("Jean Dupont")


def read_or_error(reader, raw):  # noqa: ANN001, ANN201
    try:
        return reader(raw)
    except ContractError as error:
        return error.kind


def decoded_as_read(raw):  # noqa: ANN001, ANN201
    """What `read` must give: `decode`'s envelope attributes and data fields, as dicts."""
    envelope, data = decode(raw)
    return envelope.model_dump(exclude={"data"}, exclude_unset=True), dict(data)


@pytest.mark.parametrize("path", stored_payloads(), ids=lambda p: p.stem)
def test_fast_read_agrees_with_decode(path: Path):
    raw = path.read_bytes()
    assert read(raw) == decoded_as_read(raw)


# Values that probe where JSON-mode validation (read's fast path) and Python-mode
# validation (decode) could part ways: dates, numbers, booleans, ids, vocabularies.
ODD_VALUES = [
    None, True, False, 0, 1, 1.0, 1.5, -1, 1703980800, "", "0", "1", "true", "yes", "on", "null",
    "2023-12-31", "2023-02-30", "2023-1-01", "1703980800", "2023-12-31T00:00:00", "２０２３-12-31",
    "20231231", "sw-017", "SW-017", "bretagne", "Bretagne", "budget", "BUDGET", "office",
    "7d1c3e4e-5f60-4a1b-9c2d-3e4f5a6b7c8d", "7D1C3E4E-5F60-4A1B-9C2D-3E4F5A6B7C8D",
    "7d1c3e4e5f604a1b9c2d3e4f5a6b7c8d", "urn:uuid:7d1c3e4e-5f60-4a1b-9c2d-3e4f5a6b7c8d",
    "2023-05-01T10:00:00Z", "2023-05-01T10:00:00", "2023-05-01", 1682935200,
    [], ["budget"], ["budget", "budget"], ["budget", "rights"], {}, {"situation_id": "x"},
]


def variants(body: dict) -> list[dict]:
    """The body with, in turn, each envelope attribute and data field set to each odd
    value, then removed, then an unexpected one added."""
    out = []
    for in_data in (False, True):
        for name in sorted(body["data"] if in_data else body):
            for value in [*ODD_VALUES, "<delete>"]:
                changed = json.loads(json.dumps(body))
                target = changed["data"] if in_data else changed
                if value == "<delete>":
                    del target[name]
                else:
                    target[name] = value
                out.append(changed)
        for value in ODD_VALUES:
            changed = json.loads(json.dumps(body))
            (changed["data"] if in_data else changed)["unexpected"] = value
            out.append(changed)
    return out


@pytest.mark.parametrize("path", stored_payloads(), ids=lambda p: p.stem)
def test_fast_read_accepts_only_what_decode_accepts_and_reads_it_the_same(path: Path):
    disagreements, accepted = [], 0
    for body in variants(json.loads(path.read_bytes())):
        raw = json.dumps(body).encode()
        expected = read_or_error(decoded_as_read, raw)
        accepted += not isinstance(expected, str)
        if read_or_error(read, raw) != expected:
            disagreements.append(body)
    assert accepted  # the variants include valid events, not only refused ones
    assert disagreements == []


def test_fast_read_refuses_what_decode_refuses():
    body = body_of("household.enrolled.v1.json")
    body["data"]["adults"] = 0
    with pytest.raises(ContractError) as caught:
        read(json.dumps(body))
    assert caught.value.kind == "invalid_data"
    body = body_of("household.enrolled.v1.json") | {"subject": str(uuid4())}
    with pytest.raises(ContractError) as caught:
        read(json.dumps(body))
    assert caught.value.kind == "invalid_envelope"
