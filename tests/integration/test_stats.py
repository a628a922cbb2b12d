"""stats on the real stack: each report definition on its edge dates, filters,
breakdowns that add up, poison events, rebuild.

Each test uses a year of its own before 2022, five years apart (tests also place events
the year before and after) and closes its households the year after: a household left
open is followed in every later year, and the other modules enrol open households in
2023, so only earlier years are untouched by what they put on the shared topics."""

from __future__ import annotations

import csv
import io
from datetime import date


from tests.integration import events as e
from tests.support import wait_until


async def report(platform, year: int, **params) -> dict:
    response = await platform.stats.get("/v1/reports/activity", params={"year": year, **params},
                                        headers=platform.auth("reports:read"))
    assert response.status_code == 200, response.text
    return response.json()


async def settle(platform, year: int, **expected) -> dict:
    """Wait until the year's figures show `expected`, then return the whole report."""
    async def matches() -> bool:
        got = await report(platform, year)
        return all(got[k] == v for k, v in expected.items())

    try:
        await wait_until(matches, timeout=60)
    except AssertionError:
        raise AssertionError(f"figures never showed {expected}: {await report(platform, year)}") from None
    return await report(platform, year)


async def test_definitions_on_edge_dates(platform):
    y = 1991
    before, inside, after = date(y - 1, 12, 31), date(y, 6, 1), date(y + 1, 1, 1)
    last_day, first_day = date(y, 12, 31), date(y, 1, 1)
    enrolled_last_day = e.household(last_day)
    closed_first_day = e.household(date(y - 1, 3, 1))
    closed_before = e.household(date(y - 1, 3, 1))
    enrolled_next_year = e.household(after)
    held = e.interview(closed_first_day.household_id, first_day, worker="sw-101")
    cancelled_one = e.interview(enrolled_last_day.household_id, last_day, worker="sw-102")
    prior_year = e.interview(closed_before.household_id, before, worker="sw-103")
    s_prior = e.escalated(closed_first_day.household_id, before)
    s_this = e.escalated(closed_first_day.household_id, inside)
    events = [
        enrolled_last_day, closed_first_day, e.closed(closed_first_day.household_id, first_day),
        closed_before, e.closed(closed_before.household_id, before), enrolled_next_year,
        held, cancelled_one, e.cancelled(cancelled_one.interview_id, enrolled_last_day.household_id, last_day),
        prior_year, s_prior, s_this,
        e.meeting(inside, [s_prior.situation_id, s_this.situation_id]),
        e.meeting(last_day, [s_prior.situation_id]),  # reviewed twice: counted once
        e.meeting(after, [s_this.situation_id]),
        e.workshop(first_day, 12), e.workshop(last_day, 8), e.workshop(before, 30),
        e.rehousing(enrolled_last_day.household_id, last_day, youth=True, dalo=True),
        e.rehousing(closed_first_day.household_id, inside, youth=True, dalo=False, landlord="cph-arcade-vyv"),
        e.rehousing(closed_before.household_id, before, youth=False, dalo=False),
        # closed the year after, so later tests' years do not follow them
        e.closed(enrolled_last_day.household_id, date(y + 1, 6, 1)),
        e.closed(enrolled_next_year.household_id, date(y + 1, 6, 1)),
    ]
    await e.publish(platform.bootstrap, events)
    expected = {
        "households_followed": 2, "interviews_held": 1, "social_workers_active": 1,
        "veille_meetings": 2, "situations_reviewed": 2, "situations_escalated": 1,
        "workshops_held": 2, "workshop_participants": 20,
        "rehousings": 2, "rehousings_dalo": 1, "rehousings_youth": 2,
    }
    assert await settle(platform, y, **expected) == {"year": y, **expected}


async def test_breakdowns_add_up_and_filters_follow_the_definition(platform):
    y = 2001
    a = e.household(date(y, 1, 10), programme="jeunes_ase", territory="ile-de-france", worker="sw-201")
    b = e.household(date(y, 2, 10), programme="mous", territory="bretagne", worker="sw-202")
    events = [a, b,
              e.interview(a.household_id, date(y, 1, 15), worker="sw-201"),
              e.interview(b.household_id, date(y, 2, 15), worker="sw-201"),  # one worker, two programmes
              e.interview(b.household_id, date(y, 3, 15), worker="sw-202"),
              e.workshop(date(y, 4, 1), 7, theme="energy_saving"),
              e.rehousing(a.household_id, date(y, 5, 1), youth=True, dalo=True),
              e.closed(a.household_id, date(y + 1, 1, 5)), e.closed(b.household_id, date(y + 1, 1, 5))]
    await e.publish(platform.bootstrap, events)
    headline = await settle(platform, y, households_followed=2, interviews_held=3, social_workers_active=2,
                            rehousings=1, workshops_held=1, workshop_participants=7)
    for by in ("programme", "territory", "month", "worker", "workshop_theme", "landlord"):
        response = await platform.stats.get("/v1/reports/activity/breakdown", params={"year": y, "by": by},
                                            headers=platform.auth("reports:read"))
        assert response.status_code == 200
        rows = response.json()["rows"]
        for figure, total in headline.items():
            if figure != "year":
                assert sum(r[figure] for r in rows) == total, (by, figure)
    mous = await report(platform, y, programme="mous")
    assert (mous["interviews_held"], mous["social_workers_active"], mous["households_followed"]) == (2, 2, 1)
    assert mous["workshops_held"] == 0  # a workshop belongs to no programme
    csv_response = await platform.stats.get("/v1/reports/activity/breakdown",
                                            params={"year": y, "by": "programme", "format": "csv-raw"},
                                            headers=platform.auth("reports:read"))
    assert csv_response.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(csv_response.text)))
    assert {r["programme"] for r in table} == {"jeunes_ase", "mous", ""}
    assert sum(int(r["interviews_held"]) for r in table) == 3


async def test_unknown_year_is_an_empty_report_and_bad_parameters_are_named(platform):
    empty = await report(platform, 1950)  # before any event: nothing followed yet
    assert empty["year"] == 1950 and empty["households_followed"] == 0
    bad = await platform.stats.get("/v1/reports/activity/breakdown", params={"year": 2023, "by": "colour"},
                                   headers=platform.auth("reports:read"))
    assert bad.status_code == 422 and "by" in bad.json()["detail"]
    bad_year = await platform.stats.get("/v1/reports/activity", params={"year": "deux-mille"},
                                        headers=platform.auth("reports:read"))
    assert bad_year.status_code == 422 and "year" in bad_year.json()["detail"]
    no_scope = await platform.stats.get("/v1/reports/activity", params={"year": 2023},
                                        headers=platform.auth("intake:read"))
    assert no_scope.status_code == 403


async def test_html_report_with_svg_charts(platform):
    y = 2011
    h = e.household(date(y, 3, 1), programme="pension_de_famille")
    await e.publish(platform.bootstrap, [h, e.interview(h.household_id, date(y, 3, 2)),
                                         e.closed(h.household_id, date(y + 1, 1, 5))])
    await settle(platform, y, interviews_held=1)
    page = await platform.stats.get(f"/reports/{y}", headers=platform.auth("reports:read"))
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.text.count("<svg") == 2 and "Pensions de famille" in page.text and f"mars {y}" in page.text
    assert "<script" not in page.text


async def test_status_shows_positions_and_freshness(platform):
    status = await platform.stats.get("/v1/projections/status", headers=platform.auth("reports:read"))
    assert status.status_code == 200
    body = status.json()
    assert body["generation"] >= 1
    assert {p["topic"] for p in body["partitions"]} >= {"alfi.intake.events"}
    assert all(p["lag"] is None or p["lag"] >= 0 for p in body["partitions"])


async def test_poison_events_go_to_the_dead_letter_topic_and_the_stream_goes_on(platform):
    from aiokafka import AIOKafkaProducer

    from tests.integration.platform import read_topic

    y = 1996
    h = e.household(date(y, 2, 1))
    poison = [b"\x00not json", b'{"specversion": "1.0", "type": "household.adopted"}']
    producer = AIOKafkaProducer(bootstrap_servers=platform.bootstrap, acks="all")
    await producer.start()
    try:
        for value in poison:
            await producer.send_and_wait("alfi.intake.events", value, key=h.key)
    finally:
        await producer.stop()
    await e.publish(platform.bootstrap, [h, e.closed(h.household_id, date(y + 1, 1, 5))])
    await settle(platform, y, households_followed=1)  # the events after the poison were applied

    async def kinds() -> set[bytes]:
        # Every consumer of the topic (stats, and the replicas in casework and veille)
        # dead-letters what it cannot read: wait for both kinds, not for a count.
        return {dict(r.headers)["alfi-error-kind"]
                for r in await read_topic(platform.bootstrap, "alfi.intake.events.dlq") if r.value in poison}

    async def both() -> bool:
        return await kinds() == {b"undecodable", b"invalid_envelope"}

    await wait_until(both)


async def test_rebuild_from_offset_zero_equals_the_live_projection(platform):
    from services.stats.generations import schema_of
    from services.stats.rebuild import rebuild

    y = 2006
    h = e.household(date(y, 1, 5))
    events = [h, e.interview(h.household_id, date(y, 1, 6)), e.workshop(date(y, 2, 1), 4),
              e.closed(h.household_id, date(y + 1, 1, 5))]
    await e.publish(platform.bootstrap, events)
    await settle(platform, y, households_followed=1, interviews_held=1, workshops_held=1)
    years = (1991, 2001, 2011, 1996, 2006, 2016)
    live = [await report(platform, year) for year in years]
    runtime = platform.runtimes["stats"]
    before = runtime.extras["generation"]

    async def indexes(generation: int) -> set[str]:
        async with runtime.pool.acquire() as conn:
            return {r["indexname"] for r in await conn.fetch(
                "SELECT indexname FROM pg_indexes WHERE schemaname = $1", schema_of(generation))}

    old_indexes = await indexes(before)
    result = await rebuild(runtime.settings)
    assert result["generation"] == before + 1 and result["events"] > 0
    assert [await report(platform, year) for year in years] == live  # the API reads the new generation
    # Indexes deferred during the fill exist after the switch; the old generation is gone.
    assert await indexes(before + 1) == old_indexes and "interviews_held_on" in old_indexes
    async with runtime.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname ~ '^stats_g[0-9]+$'") == 1
    status = await platform.stats.get("/v1/projections/status", headers=platform.auth("reports:read"))
    assert status.json()["generation"] == before + 1
    # The live projector follows the switch and keeps applying new events.
    later = e.household(date(y, 6, 1))
    await e.publish(platform.bootstrap, [later, e.closed(later.household_id, date(y + 1, 1, 5))])
    await settle(platform, y, households_followed=2)
    assert runtime.extras["generation"] == before + 1


async def projection_rows(runtime, generation: int) -> dict[str, list]:
    """Every row of every projection table of a generation, sorted (freshness without its
    applied_at: when, not what)."""
    from services.stats.generations import schema_of
    from services.stats.projector import UPSERTS

    rows = {}
    async with runtime.pool.acquire() as conn:
        for table, (columns, _, _) in UPSERTS.items():
            found = await conn.fetch(f"SELECT {', '.join(columns)} FROM {schema_of(generation)}.{table}")
            rows[table] = sorted((tuple(map(str, r.values())) for r in found))
    return rows


async def test_a_rebuild_in_several_processes_gives_exactly_the_projection_of_one(platform):
    """Two worker processes share the partitions (by number): the projection they build
    equals, row for row, the one a single process builds from the same events."""
    from services.stats.rebuild import rebuild

    y = 1983
    households = [e.household(date(y, 1, 1 + i)) for i in range(12)]
    events = [*households, *(e.interview(h.household_id, date(y, 2, 1 + i)) for i, h in enumerate(households)),
              e.workshop(date(y, 3, 1), 7),  # all closed within the year: no later year counts them
              *(e.closed(h.household_id, date(y, 12, 1)) for h in households)]
    await e.publish(platform.bootstrap, events)
    await settle(platform, y, households_followed=12, interviews_held=12)
    runtime = platform.runtimes["stats"]
    single = await rebuild(runtime.settings, workers=1)
    one = await projection_rows(runtime, single["generation"])
    assert len(one["interviews"]) >= 12
    several = await rebuild(runtime.settings, workers=2)
    assert several["generation"] == single["generation"] + 1 and several["workers"] == 2
    assert several["events"] == single["events"]
    assert await projection_rows(runtime, several["generation"]) == one
    got = await report(platform, y)  # and the API reads the new generation
    assert (got["households_followed"], got["interviews_held"], got["workshops_held"]) == (12, 12, 1)
    # The live projector follows the switch and goes on from the workers' positions.
    later = e.household(date(y, 6, 1))
    await e.publish(platform.bootstrap, [later, e.closed(later.household_id, date(y, 12, 1))])
    await settle(platform, y, households_followed=13)


async def test_reconciling_forgets_a_review_whose_situation_was_erased_by_a_concurrent_transaction(platform):
    """Two consumers sharing the partitions may apply a meeting's review and its situation's
    erasure at once, neither seeing the other's row: the switch (and each anonymisation
    round) deletes such reviews."""
    from uuid import uuid4

    from services.stats import generations

    runtime = platform.runtimes["stats"]
    scratch = 9_999
    async with runtime.pool.acquire() as conn:
        await generations.prepare(conn, scratch, fresh=True)
        try:
            async with conn.transaction():
                await conn.execute(f"SET LOCAL search_path TO {generations.search_path(scratch)}")
                meeting, erased, kept = uuid4(), uuid4(), uuid4()
                await conn.execute("INSERT INTO reviews (meeting_id, situation_id, decision)"
                                   " VALUES ($1, $2, 'monitor'), ($1, $3, 'monitor')", meeting, erased, kept)
                await conn.execute("INSERT INTO erased_situations (situation_id) VALUES ($1)", erased)
                await generations.reconcile_anonymised(conn)
                assert [r["situation_id"] for r in await conn.fetch("SELECT situation_id FROM reviews")] == [kept]
        finally:
            await conn.execute(f'DROP SCHEMA "{generations.schema_of(scratch)}" CASCADE')
