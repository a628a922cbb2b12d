"""intake over HTTP on the real stack: rules, error statuses, idempotence, events."""

from __future__ import annotations

import json
from uuid import uuid4

from alfi_contracts import decode
from tests.support import wait_until
from tests.integration.platform import read_topic


def enrolment(**overrides) -> dict:
    return {
        "household_id": str(uuid4()), "programme": "pension_de_famille", "territory": "bretagne",
        "referent_worker_id": "sw-017", "enrolled_on": "2023-01-09", "youth": False,
        "dalo_priority": False, "adults": 1, "children": 2,
    } | overrides


async def test_enrol_then_read(platform):
    body = enrolment()
    created = await platform.intake.post("/v1/households", json=body, headers=platform.auth())
    assert created.status_code == 201
    got = await platform.intake.get(f"/v1/households/{body['household_id']}", headers=platform.auth("intake:read"))
    assert got.status_code == 200
    assert got.json()["programme"] == "pension_de_famille" and got.json()["closed_on"] is None


async def test_enrol_without_id_gets_one(platform):
    created = await platform.intake.post("/v1/households", json=enrolment(household_id=None), headers=platform.auth())
    assert created.status_code == 201
    assert len(created.json()["household_id"]) == 36


async def test_replayed_create_returns_the_original_and_other_content_conflicts(platform):
    body = enrolment()
    first = await platform.intake.post("/v1/households", json=body, headers=platform.auth())
    again = await platform.intake.post("/v1/households", json=body, headers=platform.auth())
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    other = await platform.intake.post("/v1/households", json=body | {"children": 3}, headers=platform.auth())
    assert other.status_code == 409
    assert other.headers["content-type"] == "application/problem+json"
    assert "household_id" in other.json()["detail"]


async def test_auth_errors(platform):
    body = enrolment()
    assert (await platform.intake.post("/v1/households", json=body)).status_code == 401
    bad = await platform.intake.post("/v1/households", json=body, headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and bad.headers["www-authenticate"].startswith("Bearer")
    forbidden = await platform.intake.post("/v1/households", json=body, headers=platform.auth("reports:read"))
    assert forbidden.status_code == 403 and "intake:write" in forbidden.json()["detail"]
    reader = await platform.intake.post("/v1/households", json=body, headers=platform.auth("intake:read"))
    assert reader.status_code == 403


async def test_bad_input_names_the_fields_without_echoing_them(platform):
    response = await platform.intake.post(
        "/v1/households", json=enrolment(programme="hotel", referent_worker_id="Madame D", nom="Dupont"),
        headers=platform.auth())
    assert response.status_code == 422
    problem = response.json()
    assert {"/programme", "/referent_worker_id", "/"} <= {e["field"] for e in problem["errors"]}
    assert {"field": "/", "message": "1 unknown field"} in problem["errors"]  # counted, never named
    assert "/programme" in problem["detail"] and "1 unknown field at /" in problem["detail"]
    assert "Madame D" not in response.text and "Dupont" not in response.text and "nom" not in response.text


async def test_oversized_body_is_refused(platform):
    response = await platform.intake.post(
        "/v1/households", content=json.dumps(enrolment() | {"pad": "x" * 70_000}),
        headers=platform.auth() | {"content-type": "application/json"})
    assert response.status_code == 413


async def test_unknown_household_is_404(platform):
    response = await platform.intake.post(
        f"/v1/households/{uuid4()}/closure", json={"closed_on": "2023-05-01", "outcome": "ended"},
        headers=platform.auth())
    assert response.status_code == 404


async def test_closure_rules(platform):
    body = enrolment(enrolled_on="2023-03-01")
    await platform.intake.post("/v1/households", json=body, headers=platform.auth())
    url = f"/v1/households/{body['household_id']}/closure"
    early = await platform.intake.post(url, json={"closed_on": "2023-02-28", "outcome": "ended"}, headers=platform.auth())
    assert early.status_code == 409 and "before the enrolment" in early.json()["detail"]
    ok = await platform.intake.post(url, json={"closed_on": "2023-03-01", "outcome": "rehoused"}, headers=platform.auth())
    assert ok.status_code == 200 and ok.json()["closed_on"] == "2023-03-01"
    again = await platform.intake.post(url, json={"closed_on": "2023-04-01", "outcome": "ended"}, headers=platform.auth())
    assert again.status_code == 409
    referent = await platform.intake.post(f"/v1/households/{body['household_id']}/referent",
                                          json={"referent_worker_id": "sw-002", "changed_on": "2023-05-01"},
                                          headers=platform.auth())
    assert referent.status_code == 409


async def test_erasure_removes_composition_and_blocks_further_commands(platform):
    body = enrolment()
    await platform.intake.post("/v1/households", json=body, headers=platform.auth())
    erased = await platform.intake.delete(f"/v1/households/{body['household_id']}/personal-data", headers=platform.auth())
    assert erased.status_code == 200
    assert erased.json()["adults"] is None and erased.json()["referent_worker_id"] is None
    after = await platform.intake.post(f"/v1/households/{body['household_id']}/closure",
                                       json={"closed_on": "2023-05-01", "outcome": "ended"}, headers=platform.auth())
    assert after.status_code == 409


async def test_events_reach_kafka_in_order_with_correlation(platform):
    body = enrolment()
    household = body["household_id"]
    headers = platform.auth() | {"X-Correlation-ID": "field-tool-42"}
    await platform.intake.post("/v1/households", json=body, headers=headers)
    await platform.intake.post(f"/v1/households/{household}/referent",
                               json={"referent_worker_id": "sw-004", "changed_on": "2023-06-01"}, headers=headers)
    await platform.intake.post(f"/v1/households/{household}/closure",
                               json={"closed_on": "2023-09-29", "outcome": "handed_over"}, headers=headers)

    async def mine():
        records = await read_topic(platform.bootstrap, "alfi.intake.events")
        return [r for r in records if r.key == household.encode()]

    await wait_until(lambda: _len_is(mine, 3))
    records = await mine()
    events = [decode(r.value)[0] for r in records]
    assert [e.type for e in events] == [
        "household.enrolled", "household.referent_changed", "household.accompaniment_closed"]
    assert {e.correlationid for e in events} == {"field-tool-42"}
    assert len({e.causationid for e in events}) == 3
    assert all(dict(r.headers)["content-type"] == b"application/cloudevents+json" for r in records)


async def _len_is(fetch, n: int) -> bool:
    return len(await fetch()) >= n
