"""The follow-up of veille decisions and the data-quality report, on the real broker and
PostgreSQL: the projection of actions and re-reviews (a completion before its decision
included), the follow-up figures exact on a hand-made case and unchanged once the
household is erased, and each data-quality check counted on a hand-made case, with its
ids only for a token with reports:quality.

Years 1940-1945 are this module's own (see tests/integration/test_stats.py on years), and
so are its territories; every household is closed by 1945."""

from __future__ import annotations

import html
from datetime import date
from uuid import UUID, uuid4

from alfi_contracts import events as ev, make_event
from services.stats.generations import snapshot
from tests.integration import events as e
from tests.integration.test_least_privilege import issued
from tests.support import wait_until

Y = 1942
A, B = "suivi-a", "suivi-b"  # the follow-up case's territories
Q = "qualite-1944"  # the data-quality case's territory
ON = date(1944, 6, 30)


def decided(household: UUID, situation: UUID, on: date, due: date) -> ev.ActionDecided:
    return ev.ActionDecided(action_id=uuid4(), meeting_id=uuid4(), situation_id=situation, household_id=household,
                            decided_on=on, kind="home_visit", owner_worker_id="sw-940", due_on=due)


def completed(action: ev.ActionDecided, on: date) -> ev.ActionCompleted:
    return ev.ActionCompleted(action_id=action.action_id, household_id=action.household_id, completed_on=on)


def cancelled(action: ev.ActionDecided, on: date) -> ev.ActionCancelled:
    return ev.ActionCancelled(action_id=action.action_id, household_id=action.household_id, cancelled_on=on,
                              reason="no_longer_needed")


def resolved(situation: ev.SituationEscalated, on: date) -> ev.SituationResolved:
    return ev.SituationResolved(situation_id=situation.situation_id, household_id=situation.household_id,
                                resolved_on=on, outcome="stabilised")


async def stats_rows(platform, sql: str, *args) -> list:  # noqa: ANN001, ANN002
    async with snapshot(platform.runtimes["stats"].pool) as (conn, _):
        return await conn.fetch(sql, *args)


async def follow_up(platform, year: int, **params) -> dict:
    response = await platform.stats.get("/v1/reports/follow-up", params={"year": year, **params},
                                        headers=platform.auth("reports:read"))
    assert response.status_code == 200, response.text
    return response.json()


def values(document: dict) -> dict:
    return {f["figure"]: f["value"] for f in document["figures"]}


def split(document: dict, by: str) -> dict:
    return {r["value"]: r["figures"] for r in document[f"by_{by}"]}


async def enrolled_at_intake(platform, territory: str, on: date) -> UUID:
    """A household enrolled through intake's API, so that intake can erase it."""
    body = {"household_id": str(uuid4()), "programme": "fnavdl", "territory": territory,
            "referent_worker_id": "sw-940", "enrolled_on": on.isoformat(), "youth": False, "dalo_priority": False,
            "adults": 1, "children": 0}
    response = await platform.intake.post("/v1/households", json=body, headers=platform.auth())
    assert response.status_code == 201, response.text
    return UUID(body["household_id"])


async def test_follow_up_figures_exact_then_unchanged_by_an_erasure(platform):
    a = await enrolled_at_intake(platform, A, date(Y - 1, 9, 1))
    b = e.household(date(Y - 1, 9, 1), programme="mous", territory=B)
    hb = b.household_id
    s1, s2, s3 = (e.escalated(a, d) for d in (date(Y, 1, 10), date(Y, 2, 1), date(Y, 12, 1)))
    s4 = e.escalated(a, date(Y - 1, 12, 15))  # escalated the year before, first reviewed this year
    s5 = e.escalated(a, date(Y, 3, 1))  # never reviewed
    s6 = e.escalated(hb, date(Y, 5, 1))
    a1 = decided(a, s1.situation_id, date(Y, 2, 1), date(Y, 3, 1))  # completed on time
    a2 = decided(a, s1.situation_id, date(Y, 3, 1), date(Y, 4, 1))  # late
    a3 = decided(a, s2.situation_id, date(Y, 4, 1), date(Y, 5, 1))  # cancelled
    a4 = decided(a, s2.situation_id, date(Y, 6, 1), date(Y, 7, 1))  # open, overdue on 31 December
    a5 = decided(a, s2.situation_id, date(Y, 11, 1), date(Y + 1, 1, 15))  # on time, due next year
    a6 = decided(a, s2.situation_id, date(Y, 10, 1), date(Y, 11, 1))  # late: overdue on 31 December
    a7 = decided(a, s4.situation_id, date(Y - 1, 10, 1), date(Y - 1, 11, 1))  # the year before, still open
    a8 = decided(hb, s6.situation_id, date(Y, 5, 5), date(Y, 12, 31))  # due on 31 December: not overdue
    re_review = ev.ReReviewScheduled(situation_id=s1.situation_id, household_id=a, meeting_id=uuid4(),
                                     scheduled_on=date(Y, 1, 20), review_on=date(Y, 2, 20))

    # A completion applied before its decision is known: the decision fills the rest.
    await e.publish(platform.bootstrap, [completed(a1, date(Y, 2, 20))])

    async def completion_alone() -> bool:
        return bool(await stats_rows(platform, "SELECT 1 FROM actions WHERE action_id = $1 AND decided_on IS NULL"
                                               " AND completed_on IS NOT NULL", a1.action_id))
    await wait_until(completion_alone, timeout=60)

    await e.publish(platform.bootstrap, [
        b, s1, s2, s3, s4, s5, s6, a1, a2, a3, a4, a5, a6, a7, a8, re_review,
        completed(a2, date(Y, 5, 1)), cancelled(a3, date(Y, 4, 10)), completed(a5, date(Y + 1, 1, 10)),
        completed(a6, date(Y + 1, 2, 1)),
        e.meeting(date(Y, 1, 20), [s1.situation_id, s4.situation_id], territory=A),
        e.meeting(date(Y, 2, 20), [s1.situation_id, s2.situation_id], territory=A),
        e.meeting(date(Y, 5, 11), [s6.situation_id], territory=B),
        e.meeting(date(Y + 1, 1, 5), [s3.situation_id], territory=A),
        resolved(s1, date(Y, 3, 22)), resolved(s2, date(Y, 6, 1)), resolved(s4, date(Y, 2, 19)),
        e.closed(hb, date(Y + 1, 12, 31)),
    ])
    expected_a = {"actions_decided": 6, "actions_completed_on_time": 2, "actions_completed_late": 2,
                  "actions_cancelled": 1, "actions_open": 1, "actions_overdue": 3,
                  "median_days_to_first_review": 19,  # 10, 19, 35 days
                  "median_days_to_resolution": 61}  # 61, 101, 30 days

    async def settled() -> bool:
        return values(await follow_up(platform, Y, territory=A)) == expected_a
    try:
        await wait_until(settled, timeout=60)
    except AssertionError:
        raise AssertionError(values(await follow_up(platform, Y, territory=A))) from None

    document = await follow_up(platform, Y, territory=A)
    assert document["territory"] == A and document["previous_year"] == Y - 1
    before = {f["figure"]: f["previous"] for f in document["figures"]}
    assert before["actions_decided"] == 1 and before["actions_open"] == 1 and before["actions_overdue"] == 1
    assert before["median_days_to_first_review"] == 36  # s4: escalated the year before, reviewed in Y
    assert before["median_days_to_resolution"] is None
    assert all(len(f["definition"]) > 30 for f in document["figures"])

    async def both_territories() -> dict:
        whole = await follow_up(platform, Y)
        return {t: split(whole, "territory").get(t) for t in (A, B)}
    by_territory = await both_territories()
    assert by_territory[A] == expected_a
    assert by_territory[B] == {"actions_decided": 1, "actions_completed_on_time": 0, "actions_completed_late": 0,
                               "actions_cancelled": 0, "actions_open": 1, "actions_overdue": 0,
                               "median_days_to_first_review": 10, "median_days_to_resolution": None}
    mous = values(await follow_up(platform, Y, programme="mous", territory=B))
    assert mous["actions_decided"] == 1 and mous["median_days_to_first_review"] == 10
    assert values(await follow_up(platform, Y, programme="mous", territory=A))["actions_decided"] == 0

    # The bilan carries the same part, and its page shows it.
    bilan = await platform.stats.get("/v1/reports/bilan", params={"year": Y, "territory": A},
                                     headers=platform.auth("reports:read"))
    assert bilan.status_code == 200, bilan.text
    assert bilan.json()["follow_up"] == document
    page = html.unescape((await platform.stats.get(f"/reports/{Y}", params={"territory": A},
                                                   headers=platform.auth("reports:read"))).text)
    for words in ("Suivi des décisions de la veille sociale", "Actions en retard au 31 décembre",
                  "Suivi des actions par territoire", "Délais de la veille sociale par dispositif",
                  "<th scope='row'>suivi-a</th><td>6</td><td>2</td><td>2</td><td>1</td><td>1</td><td>3</td><td>1</td>"):
        assert words in page, words
    assert await stats_rows(platform, "SELECT 1 FROM re_reviews WHERE situation_id = $1 AND household_id = $2"
                                      " AND review_on = $3", s1.situation_id, a, date(Y, 2, 20))

    # Erased through intake: the figures are the same from the anonymous residue.
    response = await platform.intake.post(f"/v1/households/{a}/closure", json={
        "closed_on": f"{Y + 1}-12-31", "outcome": "rehoused"}, headers=platform.auth())
    assert response.status_code in (200, 201), response.text
    response = await platform.intake.delete(f"/v1/households/{a}/personal-data", headers=platform.auth("intake:erase"))
    assert response.status_code == 200, response.text

    async def anonymised() -> bool:
        return bool(await stats_rows(platform, "SELECT 1 FROM stats.anonymised_households WHERE household_id = $1", a))
    await wait_until(anonymised, timeout=60)
    assert not await stats_rows(platform, "SELECT 1 FROM actions WHERE household_id = $1"
                                          " UNION ALL SELECT 1 FROM re_reviews WHERE household_id = $1", a)
    assert await follow_up(platform, Y, territory=A) == document
    assert (await both_territories())[A] == expected_a
    residue = await stats_rows(platform, "SELECT a.* FROM stats.anon_actions a JOIN stats.anon_households h"
                                         " USING (household_id) WHERE h.territory = $1", A)
    assert len(residue) == 7 and all(r["meeting_id"] is None for r in residue)  # a meeting would lead back
    assert not {r["action_id"] for r in residue} & {x.action_id for x in (a1, a2, a3, a4, a5, a6, a7)}
    rereviews = await stats_rows(platform, "SELECT r.* FROM stats.anon_re_reviews r JOIN stats.anon_households h"
                                           " USING (household_id) WHERE h.territory = $1", A)
    assert len(rereviews) == 1 and rereviews[0]["situation_id"] != s1.situation_id
    assert rereviews[0]["meeting_id"] != re_review.meeting_id and rereviews[0]["review_on"] == date(Y, 2, 20)


def _unreadable(data: ev.EventData) -> tuple:
    """`data` sealed under a key stats does not have: its personal fields read as unknown."""
    return make_event(data, seal=lambda *_: "v1." + "A" * 40), data


async def test_data_quality_counts_each_check_and_lists_ids_only_with_the_scope(platform):
    on = ON
    active, gone, never = "sw-941", "sw-942", "sw-943"
    q1 = e.household(date(1944, 1, 1), programme="fnavdl", territory=Q, worker=active)
    q2 = e.household(date(1944, 1, 10), programme="fnavdl", territory=Q, worker=active)  # last interview 90 days ago
    q3 = e.household(date(1944, 4, 15), programme="mous", territory=Q, worker=gone)  # enrolled < 90 days ago
    q4 = e.household(date(1944, 1, 1), programme="mous", territory=Q, worker=active)  # never interviewed
    q5 = e.household(date(1944, 1, 1), programme="mous", territory=Q, worker=active)  # closed on the day
    q6 = e.household(date(1943, 1, 1), programme="mous", territory=Q, worker=active)  # closure outcome unknown
    q7 = e.household(date(1944, 1, 1), programme="mous", territory=Q, worker=never)
    q8 = e.household(date(1944, 1, 1), programme="mous", territory=Q, worker=active)  # its interview cancelled
    q9 = e.household(date(1944, 1, 1), programme="mous", territory=Q, worker=active)  # erased: left out
    ids = {n: h.household_id for n, h in enumerate((q1, q2, q3, q4, q5, q6, q7, q8, q9), start=1)}
    dropped = e.interview(ids[8], date(1944, 6, 15), worker=active)
    situations = {n: e.escalated(ids[h], d) for n, (h, d) in {
        1: (1, date(1944, 4, 1)),  # never reviewed
        2: (1, date(1944, 4, 1)),  # reviewed after the day
        3: (2, date(1944, 4, 1)),  # reviewed
        4: (2, date(1944, 5, 15)),  # escalated < 60 days before
        5: (4, date(1944, 3, 1)),  # resolved before the day
        6: (4, date(1944, 3, 1)),  # resolved after it
        7: (9, date(1944, 3, 1)),  # its household erased
    }.items()}
    await e.publish(platform.bootstrap, [
        q1, q2, q3, q4, q5, q6, q7, q8, q9,
        e.interview(ids[1], date(1944, 5, 1), worker=active), e.interview(ids[2], date(1944, 4, 1), worker=active),
        e.interview(ids[7], date(1944, 6, 1), worker=active), dropped, e.cancelled(dropped.interview_id, ids[8], on),
        e.closed(ids[5], on, outcome="ended"), _unreadable(e.closed(ids[6], date(1944, 3, 1))),
        *situations.values(),
        e.meeting(date(1944, 7, 5), [situations[2].situation_id], territory=Q),
        e.meeting(date(1944, 6, 1), [situations[3].situation_id], territory=Q),
        resolved(situations[5], date(1944, 6, 1)), resolved(situations[6], date(1944, 7, 1)),
        ev.HouseholdPersonalDataErased(household_id=ids[9], erased_on=date(1944, 6, 1)),
        *(e.closed(ids[n], date(1945, 6, 30)) for n in (1, 2, 3, 4, 7, 8, 9)),
    ])
    expected = {"no_recent_interview": {ids[2], ids[4], ids[8]}, "closure_outcome_unknown": {ids[6]},
                "referent_inactive": {ids[3], ids[7]},
                "situation_not_reviewed": {situations[n].situation_id for n in (1, 2, 6)}}
    headers, _ = await issued(platform, ["reports:read", "reports:quality"])
    params = {"on": on.isoformat(), "territory": Q}

    async def report(**extra) -> dict:  # noqa: ANN003
        response = await platform.stats.get("/v1/reports/data-quality", params={**params, **extra}, headers=headers)
        assert response.status_code == 200, response.text
        return response.json()

    async def settled() -> bool:
        got = await report(ids="true")
        return {c["check"]: {UUID(i) for i in c["ids"]} for c in got["checks"]} == expected
    try:
        await wait_until(settled, timeout=60)
    except AssertionError:
        raise AssertionError(await report(ids="true")) from None

    counted = await report()
    assert {c["check"]: c["count"] for c in counted["checks"]} == {k: len(v) for k, v in expected.items()}
    assert all(c["ids"] is None for c in counted["checks"])
    assert {c["check"]: c["threshold_days"] for c in counted["checks"]} == {
        "no_recent_interview": 90, "closure_outcome_unknown": None, "referent_inactive": 90,
        "situation_not_reviewed": 60}
    assert "normalement 0" in counted["checks"][1]["definition"]
    assert {r["value"]: r["counts"] for r in counted["by_programme"]} == {
        "fnavdl": {"no_recent_interview": 1, "closure_outcome_unknown": 0, "referent_inactive": 0,
                   "situation_not_reviewed": 2},
        "mous": {"no_recent_interview": 2, "closure_outcome_unknown": 1, "referent_inactive": 2,
                 "situation_not_reviewed": 1}}
    assert counted["by_territory"] == [{"value": Q, "counts": {k: len(v) for k, v in expected.items()}}]
    # A day earlier, q2's interview of 1 April is within the 90 days, and q5 is still open.
    earlier = await report(on="1944-06-29", ids="true")
    assert {UUID(i) for i in earlier["checks"][0]["ids"]} == {ids[4], ids[5], ids[8]}

    # The ids need reports:quality; a plain reports:read token gets the counts only.
    refused = await platform.stats.get("/v1/reports/data-quality", params={**params, "ids": "true"},
                                       headers=platform.auth("reports:read"))
    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    plain = await platform.stats.get("/v1/reports/data-quality", params=params, headers=platform.auth("reports:read"))
    assert plain.status_code == 200 and plain.json() == counted
    bound, _ = await issued(platform, ["reports:read"], territories=["bretagne"])
    assert (await platform.stats.get("/v1/reports/data-quality", params=params, headers=bound)).status_code == 403

    french = await platform.stats.get("/v1/reports/data-quality", params={**params, "format": "csv"}, headers=headers)
    lines = french.content.decode("utf-8-sig").splitlines()
    assert lines[0] == ("Ventilation;Valeur;Accompagnements ouverts sans entretien récent;Accompagnements clôturés"
                        " sans issue connue;Ménages dont le référent n'a plus d'activité;Situations signalées jamais"
                        " examinées en veille sociale")
    assert "Programme;MOUS;2;1;2;1" in lines and f"Territoire;{Q};3;1;2;3" in lines and "Total;;3;1;2;3" in lines
    listed = await platform.stats.get("/v1/reports/data-quality", params={**params, "format": "csv", "ids": "true"},
                                      headers=headers)
    assert len(listed.content.decode("utf-8-sig").splitlines()) == 1 + 9

    page = await platform.stats.get("/reports/1944/quality", params=params, headers=platform.auth("reports:read"))
    assert page.status_code == 200, page.text
    text = html.unescape(page.text)
    assert "Qualité des données au 30 juin 1944" in text and "90 jours" in text
    assert f"<th scope='row'>{Q}</th><td>3</td><td>1</td><td>2</td><td>3</td>" in text
    assert (await platform.stats.get("/reports/1944/quality", params={"on": "1945-01-01"},
                                     headers=platform.auth("reports:read"))).status_code == 422
