"""Least privilege on the real stack: scopes, territories, workers, expiry, revocation, audit."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import timedelta
from uuid import UUID, uuid4

import asyncpg

from services.common.auth import digest, issue_token, token_id
from tests.integration.test_casework_veille import enrolled, interview
from tests.integration.test_delivery import send
from tests.integration.test_intake import enrolment
from tests.support import wait_until

CLOSURE = {"closed_on": "2023-05-01", "outcome": "ended"}


async def issued(platform, scopes: list[str], **binding) -> tuple[dict[str, str], str]:
    """A new token's Authorization header and its label (unique: audit rows are found by it)."""
    label = binding.pop("label", f"test {uuid4().hex[:8]}")
    conn = await asyncpg.connect(platform.database_url)
    try:
        token = await issue_token(conn, scopes, label, **binding)
    finally:
        await conn.close()
    return {"Authorization": f"Bearer {token}"}, label


def assert_forbidden(response, kind: str, *named: str) -> dict:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["kind"] == kind
    assert all(name in problem["detail"] for name in named), problem["detail"]
    return problem


async def cli(platform, module: str, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, *args, env=dict(os.environ, DATABASE_URL=platform.database_url),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    return process.returncode, out.decode(), err.decode()


async def audit_rows(platform, **where) -> list[dict]:
    (column, value), = where.items()
    rows = await platform.runtimes["intake"].pool.fetch(
        f"SELECT * FROM audit.events WHERE {column} = $1 ORDER BY id", UUID(value) if column == "household_id" else value)
    return [dict(r) for r in rows]


async def test_erasure_needs_the_erase_scope(platform):
    household = enrolment()
    await platform.intake.post("/v1/households", json=household, headers=platform.auth())
    url = f"/v1/households/{household['household_id']}/personal-data"
    writer = await platform.intake.delete(url, headers=platform.auth("intake:write"))
    assert writer.status_code == 403 and "intake:erase" in writer.json()["detail"]
    eraser = await platform.intake.delete(url, headers=platform.auth("intake:erase"))
    assert eraser.status_code == 200 and eraser.json()["erased_on"] is not None
    rows = await audit_rows(platform, household_id=household["household_id"])
    assert [(r["actor"], r["action"], r["outcome"]) for r in rows] == [
        ("tests", "enrol_household", "accepted"),
        ("tests intake:write", "DELETE /v1/households/{household_id}/personal-data", "rejected:forbidden_scope"),
        ("tests intake:erase", "erase_personal_data", "accepted")]


async def test_a_territory_bound_token_enrols_only_in_its_territories(platform):
    headers, _ = await issued(platform, ["intake:write", "intake:read"], territories=["bretagne"])
    elsewhere = enrolment(territory="normandie", referent_worker_id="sw-444")
    refused = await platform.intake.post("/v1/households", json=elsewhere, headers=headers)
    problem = assert_forbidden(refused, "forbidden_territory", "bretagne", "normandie")
    assert elsewhere["household_id"] not in refused.text and "sw-444" not in refused.text
    assert problem["title"] == "Forbidden"
    unknown = await platform.intake.get(f"/v1/households/{elsewhere['household_id']}", headers=platform.auth())
    assert unknown.status_code == 404  # nothing was recorded
    assert (await platform.intake.post("/v1/households", json=enrolment(), headers=headers)).status_code == 201


async def test_a_household_of_another_territory_can_be_neither_changed_nor_read(platform):
    household = enrolment(territory="normandie")
    await platform.intake.post("/v1/households", json=household, headers=platform.auth())
    headers, _ = await issued(platform, ["intake:write", "intake:read", "intake:erase"], territories=["bretagne"])
    url = f"/v1/households/{household['household_id']}"
    assert_forbidden(await platform.intake.get(url, headers=headers), "forbidden_territory", "normandie")
    assert_forbidden(await platform.intake.post(f"{url}/closure", json=CLOSURE, headers=headers),
                     "forbidden_territory")
    referent = {"referent_worker_id": "sw-002", "changed_on": "2023-05-01"}
    assert_forbidden(await platform.intake.post(f"{url}/referent", json=referent, headers=headers),
                     "forbidden_territory")
    assert_forbidden(await platform.intake.delete(f"{url}/personal-data", headers=headers), "forbidden_territory")
    unchanged = (await platform.intake.get(url, headers=platform.auth())).json()
    assert unchanged["closed_on"] is None and unchanged["erased_on"] is None
    assert unchanged["referent_worker_id"] == household["referent_worker_id"]
    # An unknown household is still a 404 to a bound token: no territory to refuse.
    assert (await platform.intake.post(f"/v1/households/{uuid4()}/closure", json=CLOSURE,
                                       headers=headers)).status_code == 404


async def test_casework_and_veille_refuse_households_of_other_territories(platform):
    household = await enrolled(platform, territory="normandie")

    async def territory_replicated() -> bool:
        return await platform.runtimes["casework"].pool.fetchval(
            "SELECT territory FROM households WHERE household_id = $1", household) == "normandie"

    await wait_until(territory_replicated)
    casework, _ = await issued(platform, ["casework:write"], territories=["bretagne"])
    assert_forbidden(await platform.casework.post("/v1/interviews", json=interview(household), headers=casework),
                     "forbidden_territory", "bretagne", "normandie")
    rehousing = {"household_id": household, "landlord": "antin-residences", "confirmed_on": "2023-10-16"}
    assert_forbidden(await platform.casework.post("/v1/rehousings", json=rehousing, headers=casework),
                     "forbidden_territory")
    workshop = {"residence": "fjt-rennes", "territory": "normandie", "theme": "budget",
                "held_on": "2023-03-03", "participants": 8}
    assert_forbidden(await platform.casework.post("/v1/workshops", json=workshop, headers=casework),
                     "forbidden_territory")
    held = await platform.casework.post("/v1/interviews", json=interview(household), headers=platform.auth())
    cancel = {"cancelled_on": "2023-02-03", "reason": "entered_in_error"}
    assert_forbidden(await platform.casework.post(f"/v1/interviews/{held.json()['interview_id']}/cancellation",
                                                  json=cancel, headers=casework), "forbidden_territory")

    veille, _ = await issued(platform, ["veille:write"], territories=["bretagne"])
    escalation = {"household_id": household, "escalated_on": "2023-05-02", "severity": "serious",
                  "reasons": ["rent_arrears"]}
    assert_forbidden(await platform.veille.post("/v1/situations", json=escalation, headers=veille),
                     "forbidden_territory")
    situation = await platform.veille.post("/v1/situations", json=escalation, headers=platform.auth())
    assert situation.status_code == 201
    resolution = {"resolved_on": "2023-06-01", "outcome": "stabilised"}
    assert_forbidden(await platform.veille.post(f"/v1/situations/{situation.json()['situation_id']}/resolution",
                                                json=resolution, headers=veille), "forbidden_territory")
    meeting = {"held_on": "2023-06-02", "territory": "normandie",
               "reviewed": [{"situation_id": situation.json()["situation_id"], "decision": "monitor"}]}
    assert_forbidden(await platform.veille.post("/v1/meetings", json=meeting, headers=veille), "forbidden_territory")
    # A meeting of its own territory cannot review (nor probe) another territory's situation.
    assert_forbidden(await platform.veille.post("/v1/meetings", json=meeting | {"territory": "bretagne"},
                                                headers=veille), "forbidden_territory", "normandie")


async def test_a_field_tool_records_interviews_only_under_its_worker(platform):
    household = await enrolled(platform, territory="bretagne")
    await wait_until(lambda: platform.runtimes["casework"].pool.fetchval(
        "SELECT territory IS NOT NULL FROM households WHERE household_id = $1", household))
    tablet, _ = await issued(platform, ["casework:write"], territories=["bretagne"], worker_id="sw-017")
    other = await platform.casework.post("/v1/interviews", json=interview(household, worker_id="sw-018"),
                                         headers=tablet)
    refused = assert_forbidden(other, "forbidden_worker")
    assert "sw-017" not in refused["detail"] and "sw-018" not in refused["detail"]  # no worker id named
    assert other.json()["errors"][0]["field"] == "worker_id"
    mine = await platform.casework.post("/v1/interviews", json=interview(household), headers=tablet)
    assert mine.status_code == 201
    cancel = {"cancelled_on": "2023-02-03", "reason": "duplicate"}
    colleague = await platform.casework.post("/v1/interviews", json=interview(household, worker_id="sw-020"),
                                             headers=platform.auth())
    assert_forbidden(await platform.casework.post(f"/v1/interviews/{colleague.json()['interview_id']}/cancellation",
                                                  json=cancel, headers=tablet), "forbidden_worker")
    assert (await platform.casework.post(f"/v1/interviews/{mine.json()['interview_id']}/cancellation",
                                         json=cancel, headers=tablet)).status_code == 200


async def test_a_territory_bound_token_reads_figures_of_its_territories_only(platform):
    headers, label = await issued(platform, ["reports:read"], territories=["bretagne", "normandie"])
    for path in ("/v1/reports/activity?year=2023", "/v1/reports/activity/breakdown?year=2023&by=month",
                 "/reports/2023"):
        assert_forbidden(await platform.stats.get(path, headers=headers), "forbidden_territory",
                         "bretagne, normandie", "territory=")
        separator = "&" if "?" in path else "?"
        assert_forbidden(await platform.stats.get(f"{path}{separator}territory=occitanie", headers=headers),
                         "forbidden_territory")
        allowed = await platform.stats.get(f"{path}{separator}territory=normandie", headers=headers)
        assert allowed.status_code == 200, allowed.text
    assert (await platform.stats.get("/v1/projections/status", headers=headers)).status_code == 200
    rows = await audit_rows(platform, actor=label)
    assert [(r["service"], r["action"]) for r in rows] == [("stats", "read_report")] * 9
    assert [r["outcome"] for r in rows[:3]] == ["rejected:forbidden_territory"] * 2 + ["accepted"]
    assert rows[2]["object_id"] == "activity:2023:territory=normandie"


async def test_expired_and_revoked_tokens_answer_401(platform):
    short, _ = await issued(platform, ["intake:read"], ttl=timedelta(seconds=1))
    url = f"/v1/households/{uuid4()}"
    assert (await platform.intake.get(url, headers=short)).status_code == 404  # valid for now
    await wait_until(lambda: _status_is(platform.intake.get(url, headers=short), 401), timeout=5)
    expired = await platform.intake.get(url, headers=short)
    assert "expired" in expired.json()["detail"] and expired.headers["www-authenticate"].startswith("Bearer")

    headers, label = await issued(platform, ["intake:read"])
    assert (await platform.intake.get(url, headers=headers)).status_code == 404
    code, out, err = await cli(platform, "services.common.auth", "revoke", label)
    assert code == 0, err
    assert (await platform.intake.get(url, headers=headers)).status_code == 401
    code, _, err = await cli(platform, "services.common.auth", "revoke", label)
    assert code == 2 and "no valid token" in err


async def _status_is(response, status: int) -> bool:
    return (await response).status_code == status


async def test_the_token_list_names_tokens_by_id_never_by_secret(platform):
    label = f"tablet {uuid4().hex[:6]}"
    conn = await asyncpg.connect(platform.database_url)
    try:
        token = await issue_token(conn, ["casework:write"], label, timedelta(days=30), ["bretagne"], "sw-017")
        twin = await issue_token(conn, ["casework:write"], label)
    finally:
        await conn.close()
    code, out, _ = await cli(platform, "services.common.auth", "list")
    assert code == 0
    line = next(line for line in out.splitlines() if line.startswith(token_id(digest(token))))
    assert label in line and "casework:write" in line and "bretagne" in line and "sw-017" in line
    assert "valid" in line
    assert token not in out and twin not in out and digest(token).hex() not in out
    code, _, err = await cli(platform, "services.common.auth", "revoke", label)
    assert code == 2 and "2 valid tokens" in err  # a label held twice names neither
    code, out, _ = await cli(platform, "services.common.auth", "revoke", token_id(digest(twin)))
    assert code == 0 and token_id(digest(twin)) in out
    still = {"Authorization": f"Bearer {token}"}
    household = await enrolled(platform)
    assert (await platform.casework.post("/v1/interviews", json=interview(household), headers=still)).status_code != 401
    revoked = {"Authorization": f"Bearer {twin}"}
    assert (await platform.casework.post("/v1/interviews", json=interview(household), headers=revoked)).status_code == 401
    # Issuing and revoking are audited: by whom, which token (its id), never the secret.
    conn = await asyncpg.connect(platform.database_url)
    try:
        rows = await conn.fetch("SELECT actor, action, object_id FROM audit.events WHERE service = 'auth'"
                                " AND object_id = ANY($1) ORDER BY at", [token_id(digest(token)), token_id(digest(twin))])
    finally:
        await conn.close()
    assert [(r["action"], r["object_id"]) for r in rows] == [
        ("issue_token", token_id(digest(token))), ("issue_token", token_id(digest(twin))),
        ("revoke_token", token_id(digest(twin)))]
    assert rows[-1]["actor"].startswith("cli:") and rows[0]["actor"] == "code"


async def test_the_cli_issues_with_a_ttl_and_bindings(platform):
    label = f"cli {uuid4().hex[:6]}"
    code, out, err = await cli(platform, "services.common.auth", "issue", "--scopes", "reports:read",
                               "--label", label, "--territories", "bretagne,normandie", "--ttl", "12h")
    assert code == 0, err
    token = out.strip()
    assert token.startswith("alfi_") and token_id(digest(token)) in err and "12h" in err
    row = await platform.runtimes["intake"].pool.fetchrow(
        "SELECT territories, worker_id, expires_at - created_at AS lifetime FROM auth.tokens WHERE label = $1", label)
    assert row["territories"] == ["bretagne", "normandie"] and row["worker_id"] is None
    assert timedelta(hours=11, minutes=59) < row["lifetime"] <= timedelta(hours=12, seconds=5)
    code, _, err = await cli(platform, "services.common.auth", "issue", "--scopes", "all", "--ttl", "1w")
    assert code == 2 and "ttl" in err
    code, out, _ = await cli(platform, "services.common.auth", "issue", "--scopes", "all", "--label", label + "x")
    lifetime = await platform.runtimes["intake"].pool.fetchval(
        "SELECT expires_at - created_at FROM auth.tokens WHERE label = $1", label + "x")
    assert code == 0 and timedelta(days=89) < lifetime <= timedelta(days=90, seconds=5)  # the default


async def test_commands_and_reads_are_audited_without_their_content(platform):
    headers, label = await issued(platform, ["intake:write", "intake:read"], territories=["bretagne"])
    household = enrolment(referent_worker_id="sw-321", children=4)
    assert (await platform.intake.post("/v1/households", json=household, headers=headers)).status_code == 201
    url = f"/v1/households/{household['household_id']}"
    assert (await platform.intake.post(f"{url}/closure", json=CLOSURE | {"closed_on": "2022-01-01"},
                                       headers=headers)).status_code == 409
    assert (await platform.intake.get(url, headers=headers)).status_code == 200
    elsewhere = enrolment(territory="normandie")
    assert (await platform.intake.post("/v1/households", json=elsewhere, headers=headers)).status_code == 403

    rows = await audit_rows(platform, actor=label)
    assert [(r["action"], r["outcome"]) for r in rows] == [
        ("enrol_household", "accepted"), ("close_accompaniment", "rejected:conflict"),
        ("read_household", "accepted"), ("enrol_household", "rejected:forbidden_territory")]
    assert {str(r["household_id"]) for r in rows} == {household["household_id"], elsewhere["household_id"]}
    assert {r["service"] for r in rows} == {"intake"} and len({r["token_id"] for r in rows}) == 1
    columns = {r["column_name"] for r in await platform.runtimes["intake"].pool.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'audit' AND table_name = 'events'")}
    assert columns == {"id", "at", "actor", "token_id", "service", "action", "household_id", "object_id",
                       "outcome", "correlation_id"}
    assert not any("sw-321" in str(v) or "pension_de_famille" in str(v) for r in rows for v in r.values())

    code, out, _ = await cli(platform, "services.common.audit", "--household", household["household_id"])
    assert code == 0 and "enrol_household" in out and "read_household" in out and "rejected:conflict" in out
    code, out, _ = await cli(platform, "services.common.audit", "--label", label, "--since", "2020-01-01",
                             "--limit", "1")
    assert code == 0 and len(out.splitlines()) == 2 and "rejected:forbidden_territory" in out
    code, out, _ = await cli(platform, "services.common.audit", "purge")
    assert code == 0 and "older than 400 days" in out
    assert len(await audit_rows(platform, actor=label)) == 4  # recent rows are kept


async def test_bus_commands_are_audited_under_their_topic(platform):
    interview_id = str(uuid4())
    household = await enrolled(platform)
    await send(platform.bootstrap, "alfi.casework.commands", [
        json.dumps({"command": "record_interview", "data": interview(household, interview_id=interview_id)}).encode(),
        json.dumps({"command": "cancel_interview", "data": {
            "interview_id": str(uuid4()), "cancelled_on": "2023-02-03", "reason": "duplicate"}}).encode(),
    ])

    async def audited() -> list[dict]:
        return await audit_rows(platform, actor="kafka:alfi.casework.commands")

    await wait_until(lambda: _has_object(audited, interview_id))
    rows = [r for r in await audited() if r["household_id"] is not None and str(r["household_id"]) == household]
    assert [(r["action"], r["outcome"], r["object_id"], r["token_id"]) for r in rows] == [
        ("record_interview", "accepted", interview_id, None)]
    await wait_until(lambda: _has_outcome(audited, "rejected:not_found"))


async def _has_object(fetch, object_id: str) -> bool:
    return any(r["object_id"] == object_id for r in await fetch())


async def _has_outcome(fetch, outcome: str) -> bool:
    return any(r["outcome"] == outcome and r["action"] == "cancel_interview" for r in await fetch())
