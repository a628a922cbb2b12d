"""casework and veille over HTTP: the household replica and their rules."""

from __future__ import annotations

from uuid import uuid4

from tests.support import wait_until
from tests.integration.test_intake import enrolment


async def enrolled(platform, **overrides) -> str:
    """Enrol a household at intake and wait until casework and veille have replicated it."""
    body = enrolment(**overrides)
    assert (await platform.intake.post("/v1/households", json=body, headers=platform.auth())).status_code == 201
    household = body["household_id"]

    async def replicated() -> bool:
        counts = []
        for name in ("casework", "veille"):
            counts.append(await platform.runtimes[name].pool.fetchval(
                "SELECT count(*) FROM households WHERE household_id = $1", household))
        return counts == [1, 1]

    await wait_until(replicated)
    return household


def interview(household: str, **overrides) -> dict:
    return {"household_id": household, "worker_id": "sw-017", "held_on": "2023-02-02",
            "mode": "home_visit", "topics": ["rights", "childcare"], "duration_minutes": 60} | overrides


async def test_unknown_household_answers_409_with_retry_after(platform):
    response = await platform.casework.post("/v1/interviews", json=interview(str(uuid4())), headers=platform.auth())
    assert response.status_code == 409
    assert int(response.headers["retry-after"]) > 0
    assert response.json()["kind"] == "household_not_yet_known"
    escalation = {"household_id": str(uuid4()), "escalated_on": "2023-05-02", "severity": "serious",
                  "reasons": ["rent_arrears"]}
    assert (await platform.veille.post("/v1/situations", json=escalation, headers=platform.auth())).status_code == 409


async def test_interview_rules(platform):
    household = await enrolled(platform, enrolled_on="2023-01-09")
    before = await platform.casework.post("/v1/interviews", json=interview(household, held_on="2023-01-08"),
                                          headers=platform.auth())
    assert before.status_code == 409 and "before the household's enrolment" in before.json()["detail"]
    held = await platform.casework.post("/v1/interviews", json=interview(household), headers=platform.auth())
    assert held.status_code == 201
    interview_id = held.json()["interview_id"]
    url = f"/v1/interviews/{interview_id}/cancellation"
    cancel = {"cancelled_on": "2023-02-03", "reason": "entered_in_error"}
    assert (await platform.casework.post(url, json=cancel, headers=platform.auth())).status_code == 200
    again = await platform.casework.post(url, json=cancel, headers=platform.auth())
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]
    unknown = await platform.casework.post(f"/v1/interviews/{uuid4()}/cancellation", json=cancel, headers=platform.auth())
    assert unknown.status_code == 404


async def test_interview_after_closure_is_refused(platform):
    household = await enrolled(platform, enrolled_on="2023-01-09")
    await platform.intake.post(f"/v1/households/{household}/closure",
                               json={"closed_on": "2023-03-31", "outcome": "ended"}, headers=platform.auth())

    async def closed_in_replica() -> bool:
        return await platform.runtimes["casework"].pool.fetchval(
            "SELECT closed_on IS NOT NULL FROM households WHERE household_id = $1", household)

    await wait_until(closed_in_replica)
    late = await platform.casework.post("/v1/interviews", json=interview(household, held_on="2023-04-01"),
                                        headers=platform.auth())
    assert late.status_code == 409 and "closed" in late.json()["detail"]
    on_the_day = await platform.casework.post("/v1/interviews", json=interview(household, held_on="2023-03-31"),
                                              headers=platform.auth())
    assert on_the_day.status_code == 201


async def test_rehoused_at_most_once_with_flags_from_enrolment(platform):
    household = await enrolled(platform, youth=True, dalo_priority=True, programme="jeunes_ase")
    body = {"household_id": household, "landlord": "antin-residences", "confirmed_on": "2023-10-16"}
    first = await platform.casework.post("/v1/rehousings", json=body, headers=platform.auth())
    assert first.status_code == 201
    assert (first.json()["youth"], first.json()["dalo_priority"]) == (True, True)
    replay = await platform.casework.post(
        "/v1/rehousings", json=body | {"rehousing_id": first.json()["rehousing_id"]}, headers=platform.auth())
    assert replay.status_code == 200 and replay.json() == first.json()  # a retry with the id it was given
    second = await platform.casework.post("/v1/rehousings", json=body | {"landlord": "cph-arcade-vyv"},
                                          headers=platform.auth())
    assert second.status_code == 409 and "already rehoused" in second.json()["detail"]


async def test_workshop_idempotent_under_client_id(platform):
    body = {"workshop_id": str(uuid4()), "residence": "rja-rennes", "territory": "bretagne",
            "theme": "budget", "held_on": "2023-04-12", "participants": 9}
    first = await platform.casework.post("/v1/workshops", json=body, headers=platform.auth())
    replay = await platform.casework.post("/v1/workshops", json=body, headers=platform.auth())
    assert (first.status_code, replay.status_code) == (201, 200)
    other = await platform.casework.post("/v1/workshops", json=body | {"participants": 10}, headers=platform.auth())
    assert other.status_code == 409
    scope = await platform.casework.post("/v1/workshops", json=body, headers=platform.auth("veille:write"))
    assert scope.status_code == 403


async def test_veille_rules(platform):
    household = await enrolled(platform, enrolled_on="2023-01-09")
    escalated = await platform.veille.post(
        "/v1/situations", json={"household_id": household, "escalated_on": "2023-05-02", "severity": "serious",
                                "reasons": ["rent_arrears", "isolation"]}, headers=platform.auth())
    assert escalated.status_code == 201
    situation = escalated.json()["situation_id"]
    meeting = {"held_on": "2023-05-01", "territory": "bretagne",
               "reviewed": [{"situation_id": situation, "decision": "monitor"}]}
    early = await platform.veille.post("/v1/meetings", json=meeting, headers=platform.auth())
    assert early.status_code == 409 and early.json()["errors"][0]["field"] == "/reviewed/0/situation_id"
    unknown = await platform.veille.post(
        "/v1/meetings", json=meeting | {"reviewed": [{"situation_id": str(uuid4()), "decision": "monitor"}]},
        headers=platform.auth())
    assert unknown.status_code == 422
    held = await platform.veille.post("/v1/meetings", json=meeting | {"held_on": "2023-05-10"}, headers=platform.auth())
    assert held.status_code == 201
    url = f"/v1/situations/{situation}/resolution"
    before = await platform.veille.post(url, json={"resolved_on": "2023-05-01", "outcome": "stabilised"},
                                        headers=platform.auth())
    assert before.status_code == 409
    resolved = await platform.veille.post(url, json={"resolved_on": "2023-11-20", "outcome": "stabilised"},
                                          headers=platform.auth())
    assert resolved.status_code == 200
    twice = await platform.veille.post(url, json={"resolved_on": "2023-11-21", "outcome": "other"},
                                       headers=platform.auth())
    assert twice.status_code == 409
    after = await platform.veille.post("/v1/meetings", json=meeting | {"held_on": "2023-12-01"}, headers=platform.auth())
    assert after.status_code == 409 and "resolved" in after.json()["detail"]
