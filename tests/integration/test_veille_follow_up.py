"""veille follow-up on the real stack (issue 14): a meeting's decisions become tracked
actions and re-reviews, the territory's agenda shows them as of a date until they are
done, and their events travel sealed.

Years 1930-1935 are this module's own (one test a year); its households are closed at
the end of each test. Agendas are compared on this module's households only: other
modules' situations may be open in the same territories."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from uuid import UUID, uuid4

import pytest

from alfi_contracts import decode
from alfi_contracts.commands import RecordMeeting
from alfi_contracts.privacy import SEALED
from services.common.errors import Conflict, Invalid
from services.common.keyring import KeyCache
from services.veille.rules import check_closing, check_meeting
from tests.integration.platform import read_topic
from tests.integration.test_casework_veille import enrolled
from tests.integration.test_delivery import send
from tests.integration.test_least_privilege import assert_forbidden, audit_rows, issued
from tests.support import wait_until

EVENTS = "alfi.veille.events"


async def escalated(platform, year: int, territory: str, on: str) -> tuple[str, str]:
    """A household of `territory` enrolled on 1 January and a situation escalated on `on`."""
    household = await enrolled(platform, territory=territory, enrolled_on=f"{year}-01-01")
    response = await platform.veille.post("/v1/situations", json={
        "household_id": household, "escalated_on": on, "severity": "serious", "reasons": ["rent_arrears"]},
        headers=platform.auth())
    assert response.status_code == 201, response.text
    return household, response.json()["situation_id"]


async def close(platform, year: int, households: list[str]) -> None:
    for household in households:
        response = await platform.intake.post(f"/v1/households/{household}/closure",
                                              json={"closed_on": f"{year}-12-31", "outcome": "ended"},
                                              headers=platform.auth())
        assert response.status_code == 200, response.text


async def agenda(platform, territory: str, on: str, households: list[str], headers=None, **params) -> dict:
    """The agenda's parts, kept to `households`' items."""
    response = await platform.veille.get("/v1/veille/agenda", params={"territory": territory, "on": on, **params},
                                         headers=headers or platform.auth("veille:read"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["territory"], body["on"]) == (territory, on)
    return {part: [item for item in body[part] if item["household_id"] in households]
            for part in ("unreviewed_situations", "re_reviews", "actions")}


def ids(items: list[dict], key: str) -> list[str]:
    return [item[key] for item in items]


async def post(platform, path: str, body: dict, status: int = 200, headers=None) -> dict:
    response = await platform.veille.post(path, json=body, headers=headers or platform.auth())
    assert response.status_code == status, response.text
    return response.json()


async def veille_events(platform, wanted: set[str]) -> list:
    """The events on alfi.veille.events that name one of `wanted` (meeting, situation or
    action ids), decoded with the households' keys (None once a key is destroyed)."""
    keys = KeyCache()
    found = []
    for record in await read_topic(platform.bootstrap, EVENTS):
        body = json.loads(record.value)
        if wanted & {str(v) for v in body["data"].values() if isinstance(v, str)}:
            async with platform.runtimes["intake"].pool.acquire() as conn:
                await keys.load(conn, [record.key.decode()])
            found.append((body, decode(record.value, keys.unsealer)[1]))
    return found


async def test_decisions_are_on_the_agenda_until_done_and_their_events_travel_sealed(platform):
    year = 1930
    a, situation_a = await escalated(platform, year, "bretagne", f"{year}-01-10")
    b, situation_b = await escalated(platform, year, "normandie", f"{year}-01-12")
    mine = [a, b]

    before = await agenda(platform, "bretagne", f"{year}-01-20", mine)
    assert before["unreviewed_situations"] == [
        {"situation_id": situation_a, "household_id": a, "escalated_on": f"{year}-01-10", "waiting_days": 10}]
    assert before["actions"] == before["re_reviews"] == []
    assert ids((await agenda(platform, "normandie", f"{year}-01-20", mine))["unreviewed_situations"],
               "situation_id") == [situation_b]

    chosen = str(uuid4())
    meeting = {"meeting_id": str(uuid4()), "held_on": f"{year}-02-03", "territory": "bretagne", "reviewed": [
        {"situation_id": situation_a, "decision": "urgent_action", "re_review_on": f"{year}-04-01", "actions": [
            {"action_id": chosen, "kind": "home_visit", "owner_worker_id": "sw-017", "due_on": f"{year}-02-10"},
            {"kind": "landlord_contact", "owner_worker_id": "sw-018", "due_on": f"{year}-03-20"}]},
        {"situation_id": situation_b, "decision": "refer_partner", "actions": [
            {"kind": "partner_referral", "owner_worker_id": "sw-019", "due_on": f"{year}-02-20"}]}]}
    held = await post(platform, "/v1/meetings", meeting, 201)
    first, second = held["reviewed"][0]["actions"]
    assert first == {"action_id": chosen, "kind": "home_visit", "owner_worker_id": "sw-017",
                     "due_on": f"{year}-02-10"}
    assert held["reviewed"][0]["re_review_on"] == f"{year}-04-01" and held["reviewed"][1]["re_review_on"] is None
    generated = second["action_id"]
    action_b = held["reviewed"][1]["actions"][0]["action_id"]

    # Nothing of the meeting before it was held; after it, the situation is no longer unreviewed.
    assert (await agenda(platform, "bretagne", f"{year}-02-02", mine))["actions"] == []
    after = await agenda(platform, "bretagne", f"{year}-02-15", mine)
    assert after == {"unreviewed_situations": [], "re_reviews": [], "actions": [{
        "action_id": chosen, "situation_id": situation_a, "household_id": a, "kind": "home_visit",
        "owner_worker_id": "sw-017", "decided_on": f"{year}-02-03", "due_on": f"{year}-02-10",
        "waiting_days": 12, "days_overdue": 5, "overdue": True}]}  # the second is due after the horizon
    wider = await agenda(platform, "bretagne", f"{year}-02-15", mine, horizon_days=40)
    assert ids(wider["actions"], "action_id") == [chosen, generated]
    assert (wider["actions"][1]["days_overdue"], wider["actions"][1]["overdue"]) == (-33, False)
    assert ids((await agenda(platform, "normandie", f"{year}-02-15", mine))["actions"], "action_id") == [action_b]

    # The re-review: once due within the horizon, then overdue, until a later meeting reviews it.
    assert (await agenda(platform, "bretagne", f"{year}-03-03", mine))["re_reviews"] == []
    soon = await agenda(platform, "bretagne", f"{year}-03-10", mine)
    assert soon["re_reviews"] == [{"situation_id": situation_a, "household_id": a, "re_review_on": f"{year}-04-01",
                                   "days_overdue": -22, "overdue": False}]
    assert ids(soon["actions"], "action_id") == [chosen, generated]  # most overdue first
    assert (await agenda(platform, "bretagne", f"{year}-04-05", mine))["re_reviews"][0]["days_overdue"] == 4
    await post(platform, "/v1/meetings", {"held_on": f"{year}-04-08", "territory": "bretagne",
                                          "reviewed": [{"situation_id": situation_a, "decision": "monitor"}]}, 201)
    assert (await agenda(platform, "bretagne", f"{year}-04-10", mine))["re_reviews"] == []
    assert len((await agenda(platform, "bretagne", f"{year}-04-07", mine))["re_reviews"]) == 1  # as of then

    # Completing an action takes it off the agenda from its date; once only, not before it was decided.
    done = await post(platform, f"/v1/actions/{chosen}/completion", {"completed_on": f"{year}-02-20"})
    assert (done["completed_on"], done["household_id"], done["meeting_id"]) == (f"{year}-02-20", a,
                                                                                meeting["meeting_id"])
    assert ids((await agenda(platform, "bretagne", f"{year}-03-10", mine))["actions"], "action_id") == [generated]
    assert ids((await agenda(platform, "bretagne", f"{year}-02-15", mine))["actions"], "action_id") == [chosen]
    twice = await post(platform, f"/v1/actions/{chosen}/completion", {"completed_on": f"{year}-02-21"}, 409)
    assert f"already completed on {year}-02-20" in twice["detail"]
    early = await post(platform, f"/v1/actions/{generated}/completion", {"completed_on": f"{year}-02-02"}, 409)
    assert early["errors"][0]["field"] == "completed_on" and f"decided on {year}-02-03" in early["detail"]
    unknown = await post(platform, f"/v1/actions/{uuid4()}/completion", {"completed_on": f"{year}-02-20"}, 404)
    assert unknown["kind"] == "not_found"

    # The replayed meeting answers what was recorded, the generated id included, and emits nothing.
    replay = await platform.veille.post("/v1/meetings", json=meeting, headers=platform.auth())
    assert replay.status_code == 200 and replay.json() == held
    other = await post(platform, "/v1/meetings", meeting | {"reviewed": [meeting["reviewed"][1]]}, 409)
    assert other["kind"] == "conflict"

    cancelled = await post(platform, f"/v1/actions/{generated}/cancellation",
                           {"cancelled_on": f"{year}-03-01", "reason": "no_longer_needed"})
    assert (cancelled["cancelled_on"], cancelled["cancel_reason"]) == (f"{year}-03-01", "no_longer_needed")
    assert (await agenda(platform, "bretagne", f"{year}-03-10", mine))["actions"] == []
    again = await post(platform, f"/v1/actions/{generated}/cancellation",
                       {"cancelled_on": f"{year}-03-02", "reason": "other"}, 409)
    assert f"already cancelled on {year}-03-01" in again["detail"]
    assert "already cancelled" in (await post(platform, f"/v1/actions/{generated}/completion",
                                              {"completed_on": f"{year}-03-02"}, 409))["detail"]

    # On the bus: each decision once (the replay added none), sealed; completion and cancellation.
    wanted = {meeting["meeting_id"], chosen, generated}

    async def cancellation_published() -> bool:
        return any(body["type"] == "veille.action_cancelled" for body, _ in await veille_events(platform, wanted))

    await wait_until(cancellation_published, timeout=30)
    events = await veille_events(platform, wanted)
    types = [body["type"] for body, _ in events]
    assert sorted(types) == sorted(["veille.meeting_held", "veille.action_decided", "veille.action_decided",
                                    "veille.action_decided", "situation.re_review_scheduled",
                                    "veille.action_completed", "veille.action_cancelled"])
    decided = {str(data.action_id): (body, data) for body, data in events if body["type"] == "veille.action_decided"}
    body, data = decided[chosen]
    assert {"kind", "owner_worker_id"}.isdisjoint(body["data"]) and SEALED in body["data"]
    assert (data.kind, data.owner_worker_id, str(data.household_id), data.decided_on, data.due_on) == (
        "home_visit", "sw-017", a, date(year, 2, 3), date(year, 2, 10))
    assert str(decided[action_b][1].household_id) == b
    re_review = next(data for body, data in events if body["type"] == "situation.re_review_scheduled")
    assert (str(re_review.situation_id), re_review.scheduled_on, re_review.review_on) == (
        situation_a, date(year, 2, 3), date(year, 4, 1))
    cancellation = next(data for body, data in events if body["type"] == "veille.action_cancelled")
    assert (cancellation.reason, str(cancellation.household_id)) == ("no_longer_needed", a)
    await close(platform, year, mine)


async def test_a_territory_bound_token_reads_and_acts_in_its_territories_only(platform):
    year = 1931
    a, situation_a = await escalated(platform, year, "bretagne", f"{year}-03-02")
    b, situation_b = await escalated(platform, year, "normandie", f"{year}-03-02")
    held = await post(platform, "/v1/meetings", {"held_on": f"{year}-03-09", "territory": "bretagne", "reviewed": [
        {"situation_id": s, "decision": "monitor", "actions": [
            {"kind": "case_conference", "owner_worker_id": "sw-020", "due_on": f"{year}-03-30"}]}
        for s in (situation_a, situation_b)]}, 201)
    action_a, action_b = (review["actions"][0]["action_id"] for review in held["reviewed"])
    headers, label = await issued(platform, ["veille:read", "veille:write"], territories=["bretagne"])

    response = await platform.veille.get("/v1/veille/agenda", params={"territory": "normandie", "on": f"{year}-03-20"},
                                         headers=headers)
    assert_forbidden(response, "forbidden_territory", "bretagne")
    ours = await agenda(platform, "bretagne", f"{year}-03-20", [a, b], headers=headers)
    assert ids(ours["actions"], "action_id") == [action_a]
    forbidden = await platform.veille.post(f"/v1/actions/{action_b}/completion",
                                           json={"completed_on": f"{year}-03-21"}, headers=headers)
    assert_forbidden(forbidden, "forbidden_territory", "bretagne", "normandie")
    await post(platform, f"/v1/actions/{action_a}/completion", {"completed_on": f"{year}-03-21"}, headers=headers)
    # A meeting of its territory cannot decide actions for another territory's situation.
    other = await platform.veille.post("/v1/meetings", headers=headers, json={
        "held_on": f"{year}-03-23", "territory": "bretagne", "reviewed": [{"situation_id": situation_b,
            "decision": "monitor", "actions": [{"kind": "other", "owner_worker_id": "sw-020",
                                                "due_on": f"{year}-04-30"}]}]})
    assert_forbidden(other, "forbidden_territory", "normandie")

    writer = await platform.veille.get("/v1/veille/agenda", params={"territory": "bretagne", "on": f"{year}-03-20"},
                                       headers=platform.auth("veille:write"))
    assert writer.status_code == 403 and "veille:read" in writer.json()["detail"]
    audited = [(r["action"], r["outcome"], r["object_id"]) for r in await audit_rows(platform, actor=label)]
    assert ("read_agenda", "rejected:forbidden_territory", f"agenda:normandie:{year}-03-20:horizon_days=28") in audited
    assert ("read_agenda", "accepted", f"agenda:bretagne:{year}-03-20:horizon_days=28") in audited
    assert ("complete_action", "rejected:forbidden_territory") in {(r[0], r[1]) for r in audited}
    await close(platform, year, [a, b])


async def test_the_agenda_opens_as_a_french_csv(platform):
    year = 1932
    household, situation = await escalated(platform, year, "hauts-de-france", f"{year}-05-02")
    other, waiting = await escalated(platform, year, "hauts-de-france", f"{year}-05-20")
    await post(platform, "/v1/meetings", {"held_on": f"{year}-05-10", "territory": "hauts-de-france", "reviewed": [
        {"situation_id": situation, "decision": "urgent_action", "re_review_on": f"{year}-06-01", "actions": [
            {"kind": "emergency_support", "owner_worker_id": "sw-021", "due_on": f"{year}-05-24"}]}]}, 201)
    response = await platform.veille.get("/v1/veille/agenda", params={
        "territory": "hauts-de-france", "on": f"{year}-05-27", "format": "csv"}, headers=platform.auth("veille:read"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="agenda-veille-hauts-de-france-{year}-05-27.csv"')
    assert response.content.startswith(b"\xef\xbb\xbf")
    text = response.content.decode("utf-8-sig")
    assert "\r\n" in text and "\n" not in text.replace("\r\n", "")
    header, *rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))
    assert header[:3] == ["Rubrique", "Situation", "Ménage"] and "Échéance" in header
    ours = {row[1]: dict(zip(header, row, strict=True)) for row in rows if row[1] in (situation, waiting)}
    assert ours[waiting]["Rubrique"] == "Situation jamais examinée"
    assert ours[waiting]["Signalée le"] == f"20/05/{year}" and ours[waiting]["Jours d'attente"] == "7"
    action = next(dict(zip(header, row, strict=True)) for row in rows if row[1] == situation
                  and row[0] == "Action décidée")
    assert (action["Type d'action"], action["Responsable de l'action"], action["Échéance"], action["En retard"],
            action["Jours de retard (négatif : à venir)"]) == (
        "Aide d'urgence", "sw-021", f"24/05/{year}", "oui", "3")
    re_review = next(dict(zip(header, row, strict=True)) for row in rows if row[1] == situation
                     and row[0] == "Réexamen prévu")
    assert (re_review["À réexaminer à partir du"], re_review["En retard"], re_review["Type d'action"]) == (
        f"01/06/{year}", "non", "")
    await close(platform, year, [household, other])


async def test_follow_up_dates_and_ids_are_checked_before_anything_is_recorded(platform):
    year = 1933
    household, situation = await escalated(platform, year, "bretagne", f"{year}-02-01")
    action = {"kind": "rights_application", "owner_worker_id": "sw-022", "due_on": f"{year}-02-20"}
    meeting = {"meeting_id": str(uuid4()), "held_on": f"{year}-02-10", "territory": "bretagne",
               "reviewed": [{"situation_id": situation, "decision": "monitor", "actions": [action]}]}

    def reviewed(**changes) -> dict:
        return meeting | {"reviewed": [meeting["reviewed"][0] | changes]}

    late = await post(platform, "/v1/meetings", reviewed(actions=[action, action | {"due_on": f"{year}-02-09"}]), 422)
    assert late["errors"][0]["field"] == "/reviewed/0/actions/1/due_on"
    same_day = await post(platform, "/v1/meetings", reviewed(re_review_on=f"{year}-02-10"), 422)
    assert same_day["errors"][0]["field"] == "/reviewed/0/re_review_on"
    chosen = str(uuid4())
    twice = await post(platform, "/v1/meetings", reviewed(actions=[action | {"action_id": chosen}] * 2), 422)
    assert twice["errors"][0]["field"] == "/reviewed/0/actions/1/action_id"
    await post(platform, "/v1/meetings", reviewed(actions=[action | {"action_id": chosen}],
                                                  re_review_on=f"{year}-03-10"), 201)
    taken = await post(platform, "/v1/meetings", {**reviewed(actions=[action | {"action_id": chosen}]),
                                                  "meeting_id": str(uuid4()), "held_on": f"{year}-02-12"}, 409)
    assert taken["errors"][0]["field"] == "/reviewed/0/actions/0/action_id"
    assert await platform.runtimes["veille"].pool.fetchval(
        "SELECT count(*) FROM actions WHERE situation_id = $1", UUID(situation)) == 1
    await close(platform, year, [household])


async def test_actions_are_completed_and_cancelled_from_the_commands_topic(platform):
    year = 1934
    household, situation = await escalated(platform, year, "normandie", f"{year}-06-01")
    held = await post(platform, "/v1/meetings", {"held_on": f"{year}-06-05", "territory": "normandie", "reviewed": [
        {"situation_id": situation, "decision": "refer_partner", "actions": [
            {"kind": "partner_referral", "owner_worker_id": "sw-023", "due_on": f"{year}-06-30"},
            {"kind": "home_visit", "owner_worker_id": "sw-023", "due_on": f"{year}-06-30"}]}]}, 201)
    first, second = (a["action_id"] for a in held["reviewed"][0]["actions"])
    unknown = json.dumps({"command": "cancel_action", "data": {
        "action_id": str(uuid4()), "cancelled_on": f"{year}-06-10", "reason": "other"}}).encode()
    await send(platform.bootstrap, "alfi.veille.commands", [
        json.dumps({"command": "complete_action", "data": {
            "action_id": first, "completed_on": f"{year}-06-20"}}).encode(),
        json.dumps({"command": "cancel_action", "data": {
            "action_id": second, "cancelled_on": f"{year}-06-21", "reason": "situation_resolved"}}).encode(),
        unknown])

    async def closed() -> bool:
        return (await agenda(platform, "normandie", f"{year}-06-25", [household]))["actions"] == []

    await wait_until(closed, timeout=30)
    assert (await agenda(platform, "normandie", f"{year}-06-20", [household]))["actions"][0]["action_id"] == second

    async def dead_lettered() -> list:
        return [r for r in await read_topic(platform.bootstrap, "alfi.veille.commands.dlq") if r.value == unknown]

    await wait_until(dead_lettered, timeout=30)
    letter = {k: v.decode() for k, v in (await dead_lettered())[0].headers}
    assert letter["alfi-error-kind"] == "not_found"
    await close(platform, year, [household])


async def test_erasure_clears_actions_and_leaves_nothing_to_follow_up(platform):
    year = 1935
    household, situation = await escalated(platform, year, "bretagne", f"{year}-02-01")
    meeting = {"meeting_id": str(uuid4()), "held_on": f"{year}-02-10", "territory": "bretagne", "reviewed": [
        {"situation_id": situation, "decision": "monitor", "re_review_on": f"{year}-03-10", "actions": [
            {"kind": "home_visit", "owner_worker_id": "sw-024", "due_on": f"{year}-02-20"}]}]}
    held = await post(platform, "/v1/meetings", meeting, 201)
    action = held["reviewed"][0]["actions"][0]["action_id"]
    await post(platform, f"/v1/actions/{action}/cancellation", {"cancelled_on": f"{year}-02-11", "reason": "other"})
    await close(platform, year, [household])
    response = await platform.intake.delete(f"/v1/households/{household}/personal-data",
                                            headers=platform.auth("intake:erase"))
    assert response.status_code == 200, response.text
    pool = platform.runtimes["veille"].pool

    async def erased() -> bool:
        return await pool.fetchval("SELECT erased_on IS NOT NULL FROM households WHERE household_id = $1",
                                   UUID(household))

    await wait_until(erased, timeout=30)
    row = await pool.fetchrow("SELECT * FROM actions WHERE action_id = $1", UUID(action))
    assert (row["kind"], row["owner_worker_id"], row["cancel_reason"]) == (None, None, None)
    assert row["cancelled_on"] == date(year, 2, 11)  # dates are kept
    assert await pool.fetchval("SELECT request_hash FROM meetings WHERE meeting_id = $1",
                               UUID(meeting["meeting_id"])) is None
    refused = await post(platform, f"/v1/actions/{action}/completion", {"completed_on": f"{year}-02-12"}, 409)
    assert "erased" in refused["detail"]
    assert await agenda(platform, "bretagne", f"{year}-03-20", [household]) == {
        "unreviewed_situations": [], "re_reviews": [], "actions": []}
    # A guessed replay of the meeting confirms nothing.
    assert (await post(platform, "/v1/meetings", meeting, 409))["kind"] == "conflict"


# The rules over plain values (services/veille/rules.py).

def test_meeting_rules_name_the_offending_field():
    situation = uuid4()
    known = {situation: {"escalated_on": date(1930, 1, 2), "resolved_on": None, "erased_on": None}}

    def meeting(**review) -> RecordMeeting:
        return RecordMeeting(held_on="1930-01-10", territory="bretagne",
                             reviewed=[{"situation_id": situation, "decision": "monitor"} | review])

    check_meeting(meeting(re_review_on="1930-01-11", actions=[
        {"kind": "other", "owner_worker_id": "sw-001", "due_on": "1930-01-10"}]), known)
    with pytest.raises(Invalid) as invalid:
        check_meeting(meeting(re_review_on="1930-01-09"), known)
    assert invalid.value.field == "/reviewed/0/re_review_on"
    with pytest.raises(Conflict) as conflict:
        check_meeting(meeting(), {situation: known[situation] | {"escalated_on": date(1930, 1, 11)}})
    assert conflict.value.field == "/reviewed/0/situation_id"


def test_an_action_closes_once_and_not_before_it_was_decided():
    action = {"action_id": uuid4(), "decided_on": date(1930, 2, 3), "completed_on": None, "cancelled_on": None}
    check_closing(action, date(1930, 2, 3), "completed_on")
    with pytest.raises(Conflict, match="before the action was decided"):
        check_closing(action, date(1930, 2, 2), "cancelled_on")
    with pytest.raises(Conflict, match="already cancelled on 1930-02-04"):
        check_closing(action | {"cancelled_on": date(1930, 2, 4)}, date(1930, 2, 5), "completed_on")
