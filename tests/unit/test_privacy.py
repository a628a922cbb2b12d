"""Classified contracts and sealed personal fields (alfi_contracts.privacy, keyring)."""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated
from uuid import uuid4

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel

from alfi_contracts import EVENT_TYPES, ContractError, decode, encode, make_event
from alfi_contracts import events as ev
from alfi_contracts.commands import COMMAND_MESSAGES, COMMANDS
from alfi_contracts.envelope import read
from alfi_contracts.export import documents
from alfi_contracts.privacy import CLASS_KEY, PERSONAL, SEALED, personal_fields, unclassified
from services.common import keyring

HOUSEHOLD = uuid4()
KEY = AESGCM.generate_key(256)


def unseal_with(key: bytes | None):  # noqa: ANN201
    def unseal(household: str, sealed: str, associated: bytes):  # noqa: ANN202
        return None if key is None else keyring.open_sealed(key, sealed, associated)
    return unseal


def interview(**overrides) -> ev.InterviewHeld:  # noqa: ANN003
    return ev.InterviewHeld(**{
        "interview_id": uuid4(), "household_id": HOUSEHOLD, "worker_id": "sw-017", "held_on": date(2024, 3, 1),
        "mode": "home_visit", "topics": ["health", "budget"], "duration_minutes": 45} | overrides)


@pytest.mark.parametrize("model", [*EVENT_TYPES, *COMMAND_MESSAGES.values(), *(m for _, m in COMMANDS.values())],
                         ids=lambda m: m.__name__)
def test_every_field_has_a_class(model: type[BaseModel]):
    assert unclassified(model) == []


def test_a_field_without_class_is_found():
    class Nested(BaseModel):
        fine: Annotated[int, PERSONAL]
        forgotten: int

    class Outer(BaseModel):
        inner: Annotated[list[Nested], PERSONAL]
        bare: str

    assert unclassified(Outer) == ["inner.forgotten", "bare"]


def test_exported_schemas_carry_the_classes():
    for path, schema in documents().items():
        if path.startswith("schemas/events/"):
            assert all(CLASS_KEY in p for p in schema["properties"].values()), path
            if schema.get("x-alfi-sealed-fields"):
                assert SEALED in schema["required"]
                assert not set(schema["x-alfi-sealed-fields"]) & set(schema["properties"])
    assert "x-alfi-class" in json.dumps(documents()["asyncapi.json"])


def test_what_is_personal():
    assert personal_fields(ev.HouseholdEnrolled) == (
        "referent_worker_id", "youth", "dalo_priority", "adults", "children")
    assert personal_fields(ev.SituationEscalated) == ("severity", "reasons")
    assert personal_fields(ev.WorkshopHeld) == () and personal_fields(ev.VeilleMeetingHeld) == ()


def test_sealed_event_carries_no_personal_field_in_clear_and_opens_with_the_key():
    data = interview()
    raw = encode(make_event(data, seal=keyring.sealer(KEY)))
    wire = json.loads(raw)["data"]
    assert set(wire) == {"interview_id", "household_id", "held_on", SEALED}
    for value in ("sw-017", "home_visit", "health"):
        assert value.encode() not in raw
    envelope, opened = decode(raw, unseal_with(KEY))
    assert opened == data
    assert read(raw, unseal_with(KEY)) == (envelope.model_dump(exclude={"data"}, exclude_unset=True), dict(opened))


def test_without_the_key_personal_fields_read_as_none():
    data = interview()
    raw = encode(make_event(data, seal=keyring.sealer(KEY)))
    _, redacted = decode(raw, unseal_with(None))
    assert (redacted.worker_id, redacted.mode, redacted.topics, redacted.duration_minutes) == (None,) * 4
    assert (redacted.interview_id, redacted.household_id, redacted.held_on) == (
        data.interview_id, data.household_id, data.held_on)
    _, fields = read(raw, unseal_with(None))
    assert fields["worker_id"] is None and fields["held_on"] == data.held_on
    _, without = read(raw)  # no unsealer at all: the same
    assert without == fields


@pytest.mark.parametrize("tamper", ["flip", "moved", "other_key"])
def test_a_sealed_value_that_does_not_authenticate_is_invalid_data(tamper: str):
    event = make_event(interview(), seal=keyring.sealer(KEY))
    body = json.loads(encode(event))
    key = KEY
    if tamper == "flip":
        sealed = body["data"][SEALED]
        body["data"][SEALED] = sealed[:-4] + ("AAAA" if sealed[-4:] != "AAAA" else "BBBB")
    elif tamper == "moved":  # the same sealed value in another event
        body["id"] = str(uuid4())
    else:
        key = AESGCM.generate_key(256)
    for reader in (decode, read):
        with pytest.raises(ContractError) as caught:
            reader(json.dumps(body), unseal_with(key))
        assert caught.value.kind == "invalid_data"


def test_sealed_personal_fields_are_validated_like_clear_ones():
    event = make_event(interview(), seal=lambda _d, associated, _p: keyring.seal(
        KEY, associated, {"worker_id": "Madame Dupont", "mode": "office", "topics": ["rights"],
                          "duration_minutes": 30}))
    for reader in (decode, read):
        with pytest.raises(ContractError) as caught:
            reader(encode(event), unseal_with(KEY))
        assert caught.value.kind == "invalid_data" and "Dupont" not in caught.value.detail


def test_events_without_personal_fields_are_not_sealed():
    workshop = ev.WorkshopHeld(workshop_id=uuid4(), residence="antin-residences", territory="bretagne",
                               theme="budget", held_on=date(2024, 1, 1), participants=5)
    assert SEALED not in json.loads(encode(make_event(workshop, seal=keyring.sealer(KEY))))["data"]


async def test_key_cache_gives_none_for_a_destroyed_key():
    class Rows:
        async def fetch(self, _sql: str, ids: list) -> list[dict]:
            return [{"household_id": HOUSEHOLD, "key": KEY}] if HOUSEHOLD in ids else []

    cache = keyring.KeyCache()
    other = uuid4()
    await cache.load(Rows(), [str(HOUSEHOLD), str(other), "not-a-uuid"])
    raw = encode(make_event(interview(), seal=keyring.sealer(KEY)))
    assert decode(raw, cache.unsealer)[1].worker_id == "sw-017"
    assert decode(encode(make_event(interview(household_id=other), seal=keyring.sealer(KEY))),
                  cache.unsealer)[1].worker_id is None
    cache.forget(str(HOUSEHOLD))
    assert decode(raw, cache.unsealer)[1].worker_id is None


async def test_the_key_cache_keeps_a_bounded_number_of_ciphers_and_drops_a_destroyed_key():
    keys = {uuid4(): bytes([i]) * 32 for i in range(3)}

    class Rows:
        destroyed: set = set()

        async def fetch(self, _sql: str, ids: list) -> list[dict]:
            return [{"household_id": h, "key": keys[h]} for h in ids if h in keys and h not in self.destroyed]

    rows = Rows()
    cache = keyring.KeyCache(ttl=0.0, ciphers=2)
    await cache.load(rows, [str(h) for h in keys])
    events = {h: encode(make_event(interview(household_id=h), seal=keyring.sealer(k))) for h, k in keys.items()}
    for _ in range(2):  # every household opens, though only two ciphers are kept at a time
        assert all(decode(raw, cache.unsealer)[1].worker_id == "sw-017" for raw in events.values())
        assert len(cache._ciphers) == 2
    gone = list(keys)[-1]  # the last opened: its cipher is kept
    assert gone in cache._ciphers
    rows.destroyed.add(gone)
    await cache.load(rows, [str(gone)])  # the entry expired (ttl 0): read again, destroyed
    assert decode(events[gone], cache.unsealer)[1].worker_id is None


def test_sealed_and_clear_personal_fields_together_are_refused():
    body = json.loads(encode(make_event(interview(), seal=keyring.sealer(KEY))))
    body["data"]["worker_id"] = "sw-999"  # would read as the household's once the key is gone
    for reader in (decode, read):
        with pytest.raises(ContractError) as caught:
            reader(json.dumps(body), unseal_with(None))
        assert caught.value.kind == "invalid_data"
    workshop = ev.WorkshopHeld(workshop_id=uuid4(), residence="antin-residences", territory="bretagne",
                               theme="budget", held_on=date(2024, 1, 1), participants=5)
    body = json.loads(encode(make_event(workshop)))
    body["data"][SEALED] = json.loads(encode(make_event(interview(), seal=keyring.sealer(KEY))))["data"][SEALED]
    with pytest.raises(ContractError):
        decode(json.dumps(body))
