"""A practice-sharing meeting: a veille meeting that reviews no situation is recorded
over HTTP and counted in the year's meetings, and reviews nothing."""

from __future__ import annotations

from uuid import uuid4

from tests.integration.test_stats import report, settle

YEAR = 1986  # a year no other test puts a meeting, a situation or a household in


async def test_a_meeting_reviewing_no_situation_is_recorded_and_counted(platform):
    before = await report(platform, YEAR)
    meeting = {"meeting_id": str(uuid4()), "held_on": f"{YEAR}-03-12", "territory": "bretagne", "reviewed": []}
    held = await platform.veille.post("/v1/meetings", json=meeting, headers=platform.auth())
    assert held.status_code == 201, held.text
    assert held.json()["reviewed"] == []
    replay = await platform.veille.post("/v1/meetings", json=meeting, headers=platform.auth())
    assert replay.status_code == 200

    figures = await settle(platform, YEAR, veille_meetings=before["veille_meetings"] + 1)
    assert figures["situations_reviewed"] == before["situations_reviewed"]
    for by, key in (("territory", "bretagne"), ("month", f"{YEAR}-03")):
        response = await platform.stats.get("/v1/reports/activity/breakdown", params={"year": YEAR, "by": by},
                                            headers=platform.auth("reports:read"))
        assert response.status_code == 200
        rows = response.json()["rows"]
        assert sum(r["veille_meetings"] for r in rows) == figures["veille_meetings"], by
        assert key in {str(r[by]) for r in rows if r["veille_meetings"]}, (by, rows)
