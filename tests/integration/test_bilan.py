"""The bilan as published, on the real broker and PostgreSQL: its sections beside the year
before (JSON and the printable page), the funders' view, the browser links, and the
external audience's suppressed figures, attacked.

Years 1952-1953 and 1955 are this module's own (see tests/integration/test_stats.py on
years); every household is closed by the year after."""

from __future__ import annotations

import html
from datetime import date

import asyncpg
import pytest

from services.stats.reports import FIGURES
from tests.integration import events as e
from tests.integration.test_least_privilege import issued
from tests.integration.test_stats import settle
from tests.unit.test_suppression import recover

N, BEFORE = 1953, 1952


def section(document: dict, name: str) -> dict:
    found = next(s for s in document["sections"] if s["id"] == name)
    return {"rows": {r["value"]: r["figures"] for r in found["rows"]}, "total": found["total"]["figures"],
            "previous": {r["value"]: r["previous"] for r in found["rows"]}}


@pytest.fixture(scope="module")
async def published_years(platform):
    h1 = e.household(date(BEFORE, 2, 1), programme="fnavdl", territory="bretagne")
    h2 = e.household(date(N, 1, 10), programme="fnavdl", territory="bretagne", dalo=True)
    h3 = e.household(date(BEFORE, 11, 1), programme="jeunes_ase", territory="normandie", youth=True)
    ids = [h.household_id for h in (h1, h2, h3)]
    s1 = e.escalated(ids[1], date(N, 4, 1), severity="critical", reasons=("violence", "health"))
    s2 = e.escalated(ids[2], date(N, 5, 1), severity="concern", reasons=("isolation",))
    dropped = e.interview(ids[1], date(N, 2, 2), mode="video", minutes=300)
    await e.publish(platform.bootstrap, [
        h1, h2, h3,
        e.interview(ids[0], date(BEFORE, 3, 1), mode="office", topics=("housing",), minutes=60),
        e.closed(ids[0], date(BEFORE, 12, 1), outcome="rehoused"),
        e.interview(ids[1], date(N, 2, 1), mode="home_visit", topics=("housing", "budget"), minutes=45),
        e.interview(ids[1], date(N, 3, 1), mode="phone", topics=("rights",), minutes=45),
        e.interview(ids[2], date(N, 3, 5), mode="office", topics=("housing",), minutes=90),
        dropped, e.cancelled(dropped.interview_id, ids[1], date(N, 2, 3)),
        e.workshop(date(N, 4, 1), 8, theme="budget"), e.workshop(date(N, 5, 1), 5, theme="energy_saving"),
        s1, s2,
        e.meeting(date(N, 6, 1), [s1.situation_id], decision="urgent_action"),
        e.meeting(date(N, 7, 1), [s2.situation_id], territory="normandie"),
        e.meeting(date(N, 9, 1), []),  # practice sharing: no situation reviewed
        e.rehousing(ids[1], date(N, 8, 1), youth=False, dalo=True, landlord="antin-residences"),
        e.rehousing(ids[2], date(N, 10, 1), youth=True, dalo=False, landlord="hlm-normandie"),
        e.closed(ids[1], date(N, 9, 15), outcome="rehoused"),  # 248 days
        e.closed(ids[2], date(N, 12, 1), outcome="handed_over"),  # 395 days
    ])
    await settle(platform, N, households_followed=2, interviews_held=3, veille_meetings=3, rehousings=2,
                 situations_reviewed=2)
    await settle(platform, BEFORE, households_followed=2, interviews_held=1)
    return ids


async def bilan(platform, **params) -> dict:
    response = await platform.stats.get("/v1/reports/bilan", params={"year": N, **params},
                                        headers=platform.auth("reports:read"))
    assert response.status_code == 200, response.text
    return response.json()


async def test_the_bilan_s_sections_beside_the_year_before(platform, published_years):
    document = await bilan(platform)
    assert document["previous_year"] == BEFORE
    headline = {h["figure"]: h for h in document["headline"]}
    assert headline["households_followed"] | {} == {
        "figure": "households_followed", "label": "Ménages suivis", "value": 2, "previous": 2, "change": 0,
        "change_percent": 0.0}
    assert (headline["interviews_held"]["value"], headline["interviews_held"]["previous"],
            headline["interviews_held"]["change_percent"]) == (3, 1, 200.0)
    assert headline["veille_meetings"]["value"] == 3  # the practice-sharing meeting counts

    mode = section(document, "interviews_by_mode")
    assert mode["rows"] == {"home_visit": {"interviews": 1, "hours": 0.8}, "phone": {"interviews": 1, "hours": 0.8},
                            "office": {"interviews": 1, "hours": 1.5}}
    assert mode["total"] == {"interviews": 3, "hours": 3.0}  # the cancelled video interview is not there
    assert mode["previous"]["office"] == {"interviews": 1, "hours": 1.0}
    topics = section(document, "interviews_by_topic")
    assert topics["rows"] == {"budget": {"interviews": 1}, "housing": {"interviews": 2}, "rights": {"interviews": 1}}
    assert topics["total"] == {"interviews": 3}  # each interview once, whatever its topics
    assert section(document, "workshops_by_theme")["rows"] == {
        "budget": {"workshops": 1, "participants": 8}, "energy_saving": {"workshops": 1, "participants": 5}}
    assert section(document, "situations_by_severity")["rows"] == {"concern": {"situations": 1},
                                                                   "critical": {"situations": 1}}
    reasons = section(document, "situations_by_reason")
    assert reasons["rows"] == {"health": {"situations": 1}, "isolation": {"situations": 1},
                               "violence": {"situations": 1}}
    assert reasons["total"] == {"situations": 2}
    assert section(document, "review_decisions")["rows"] == {"monitor": {"decisions": 1},
                                                             "urgent_action": {"decisions": 1}}
    assert section(document, "rehousings_by_landlord")["rows"] == {
        "antin-residences": {"rehousings": 1, "dalo": 1, "youth": 0},
        "hlm-normandie": {"rehousings": 1, "dalo": 0, "youth": 1}}
    closures = section(document, "closures_by_outcome")
    assert closures["rows"] == {"handed_over": {"closures": 1, "median_days": 395},
                                "rehoused": {"closures": 1, "median_days": 248}}
    assert closures["total"] == {"closures": 2, "median_days": 321.5}
    assert closures["previous"]["rehoused"] == {"closures": 1, "median_days": 304}
    by_territory = {r["value"]: r for r in document["by_territory"]}
    assert by_territory["normandie"]["figures"]["households_followed"] == 1
    assert by_territory["bretagne"]["previous"]["households_followed"] == 1
    assert document["data_as_of"]["topics"]["alfi.intake.events"]["last_event_time"]

    fnavdl = await bilan(platform, programme="fnavdl")
    assert section(fnavdl, "interviews_by_mode")["total"] == {"interviews": 2, "hours": 1.5}
    assert section(fnavdl, "workshops_by_theme")["rows"] == {}  # a workshop has no programme
    normandie = await bilan(platform, territory="normandie")
    assert section(normandie, "review_decisions")["rows"] == {"monitor": {"decisions": 1}}


async def test_the_funders_view_defines_every_figure(platform, published_years):
    response = await platform.stats.get("/v1/reports/funder", params={"year": N, "programme": "fnavdl"},
                                        headers=platform.auth("reports:read"))
    assert response.status_code == 200, response.text
    figures = {f["figure"]: f for f in response.json()["figures"]}
    assert {k: f["value"] for k, f in figures.items()} == {
        "households_accompanied": 1, "households_rehoused": 1, "rehousing_rate": 100.0, "interviews_held": 2,
        "accompaniment_hours": 1.5, "rehousings_dalo": 1, "rehousings_youth": 0, "closures": 1,
        "median_days": 248}
    assert figures["households_accompanied"]["previous"] == 1 and figures["households_rehoused"]["previous"] == 0
    assert figures["rehousing_rate"]["previous"] == 0.0 and figures["accompaniment_hours"]["previous"] == 1.0
    assert all(len(f["definition"]) > 30 for f in figures.values())
    page = await platform.stats.get(f"/reports/{N}/funders/fnavdl", headers=platform.auth("reports:read"))
    assert page.status_code == 200
    assert "Taux de relogement (%)" in page.text and "<td>100</td>" in page.text
    assert "Somme des durées déclarées" in page.text


async def test_a_link_opens_the_page_in_a_browser_without_a_token(platform, published_years):
    headers, label = await issued(platform, ["reports:read"])
    minted = await platform.stats.post("/v1/reports/links", json={"year": N, "expires_in_minutes": 30},
                                       headers=headers)
    assert minted.status_code == 201, minted.text
    url = minted.json()["url"]
    assert url.startswith(f"/reports/{N}?link=rl_")

    assert (await platform.stats.get(f"/reports/{N}")).status_code == 401  # no token, no link
    opened = await platform.stats.get(url)
    assert opened.status_code == 303 and opened.headers["location"] == f"/reports/{N}"
    cookie = opened.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and f"Path=/reports/{N}" in cookie
    secret = url.split("link=")[1]
    browser = {"Cookie": f"alfi_report_link={secret}"}
    page = await platform.stats.get(f"/reports/{N}", params={"territory": "bretagne"}, headers=browser)
    assert page.status_code == 200, page.text
    assert page.headers["cache-control"] == "no-store" and page.headers["referrer-policy"] == "no-referrer"
    for words in ("Bilan 1953 de l'accompagnement social — territoire bretagne", "Données arrêtées au",
                  "Entretiens selon leur forme", "Visite à domicile", "Thèmes abordés en entretien",
                  "Ateliers collectifs selon leur thème", "Situations signalées selon leur gravité",
                  "Motifs des situations signalées", "Décisions prises en veille sociale", "Action urgente",
                  "Relogements selon le bailleur", "Accompagnements clôturés selon leur issue", "Par dispositif",
                  "Par territoire", ">1952<", "Évolution", "@page { size: A4"):
        assert words in html.unescape(page.text), words
    assert "février 1953" in page.text  # interviews per month, French month names
    assert (await platform.stats.get(f"/reports/{N}/funders/fnavdl", headers=browser)).status_code == 200
    # For its year only, reads only, and never again once expired or its token revoked.
    assert (await platform.stats.get(f"/reports/{BEFORE}", params={"link": secret})).status_code == 401
    assert (await platform.stats.get("/v1/reports/activity", params={"year": N}, headers=browser)).status_code == 401
    conn = await asyncpg.connect(platform.database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM audit.events WHERE actor = $1 AND action = 'read_report'",
                                   f"{label} (link)") >= 2
        await conn.execute("UPDATE auth.report_links SET expires_at = now() - interval '1 second'")
        assert (await platform.stats.get(f"/reports/{N}", headers=browser)).status_code == 401
        await conn.execute("UPDATE auth.report_links SET expires_at = now() + interval '1 hour'")
        assert (await platform.stats.get(f"/reports/{N}", headers=browser)).status_code == 200
        await conn.execute("UPDATE auth.tokens SET revoked_at = now() WHERE label = $1", label)
        assert (await platform.stats.get(f"/reports/{N}", headers=browser)).status_code == 401
    finally:
        await conn.close()


async def test_a_link_of_a_territory_bound_token_reads_only_its_territory(platform, published_years):
    headers, _ = await issued(platform, ["reports:read"], territories=["normandie"])
    url = (await platform.stats.post("/v1/reports/links", json={"year": N}, headers=headers)).json()["url"]
    browser = {"Cookie": f"alfi_report_link={url.split('link=')[1]}"}
    assert (await platform.stats.get(f"/reports/{N}", headers=browser)).status_code == 403
    page = await platform.stats.get(f"/reports/{N}", params={"territory": "normandie"}, headers=browser)
    assert page.status_code == 200
    assert "<option value='bretagne'" not in page.text  # the filter offers its territories only


async def test_published_figures_withhold_small_counts_beyond_recovery(platform):
    y = 1955
    sizes = {"fnavdl": 12, "jeunes_ase": 7, "mous": 3}
    households = [e.household(date(y, 3, 1), programme=p) for p, n in sizes.items() for _ in range(n)]
    await e.publish(platform.bootstrap, [*households, *(e.closed(h.household_id, date(y + 1, 1, 5))
                                                        for h in households)])
    await settle(platform, y, households_followed=22)

    assert (await platform.stats.get("/v1/reports/published", params={"year": y, "by": "programme"},
                                     headers=platform.auth("reports:read"))).status_code == 403
    assert (await platform.stats.get("/v1/reports/published", params={"year": y, "by": "worker"},
                                     headers=platform.auth("reports:publish"))).status_code == 422
    response = await platform.stats.get("/v1/reports/published", params={"year": y, "by": "programme"},
                                        headers=platform.auth("reports:publish"))
    assert response.status_code == 200, response.text
    body = response.json()
    rows = {r["programme"]: r for r in body["rows"]}
    assert rows["fnavdl"]["households_followed"] == 12 and body["totals"]["households_followed"] == 22
    assert rows["mous"]["households_followed"] is None  # 3: withheld
    assert rows["jeunes_ase"]["households_followed"] is None  # 7: withheld with it, or 3 = 22 - 12 - 7
    # The attack: every count of the published table as a variable, whole numbers, every
    # equation and inequality the figures obey; no withheld count is pinned or told small.
    intervals = recover(body["rows"], body["totals"], FIGURES)
    assert intervals
    for (place, figure), (low, high) in intervals.items():
        assert low <= 0 and high >= 5, (place, figure, low, high)

    french = await platform.stats.get("/v1/reports/published", params={"year": y, "by": "programme", "format": "csv"},
                                      headers=platform.auth("reports:publish"))
    lines = french.content.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("Programme;Ménages suivis;")
    assert any(line.startswith("MOUS;s;") for line in lines)


async def test_a_frozen_year_s_page_shows_the_frozen_figures(platform, published_years):
    """Runs last in this module: it adds an interview to 1953 after freezing it."""
    frozen = await platform.stats.post(f"/v1/reports/frozen/{N}", headers=platform.auth("reports:freeze"))
    assert frozen.status_code == 201, frozen.text
    assert frozen.json()["figures"]["bilan"]["headline"][1]["value"] == 3  # interviews_held, as frozen
    await e.publish(platform.bootstrap, [e.interview(published_years[1], date(N, 11, 2), mode="phone")])
    await settle(platform, N, interviews_held=4)
    page = html.unescape((await platform.stats.get(f"/reports/{N}", headers=platform.auth("reports:read"))).text)
    assert f"Bilan {N} figé le" in page and "sont ceux figés" in page
    assert "<th scope='row'>Entretiens réalisés</th><td>3</td>" in page
    filtered = html.unescape((await platform.stats.get(f"/reports/{N}", params={"territory": "bretagne"},
                                                       headers=platform.auth("reports:read"))).text)
    assert "sont ceux d'aujourd'hui" in filtered
    assert "<th scope='row'>Entretiens réalisés</th><td>3</td>" in filtered  # bretagne: 2 + the new one
