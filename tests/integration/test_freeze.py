"""Frozen bilans on the real stack: a closed year is frozen once, with the offsets and the
generation its figures were computed at and their hash; recomputing at those offsets
gives the same hash, however many events came since; a tampered record does not verify;
a topic that lost its first records cannot be recomputed from.

Years 1977 and 1978 are this module's own (see tests/integration/test_stats.py on
years); its households are closed the year after."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import asyncpg
import pytest

from services.common.auth import issue_token
from services.common.errors import NotFound
from services.common.settings import ServiceSettings
from services.stats.freeze import HistoryMissing, digest, verify
from tests.conftest import fresh_database
from tests.integration import events as e
from tests.integration.test_stats import report, settle
from tests.support import wait_until

Y = 1977
EVENT_TOPICS = {"alfi.intake.events", "alfi.casework.events", "alfi.veille.events"}
ROOT = Path(__file__).parents[2]


async def freeze(platform, year: int, scope: str = "reports:freeze"):  # noqa: ANN201
    """POST the freeze, waiting while the projections are behind the topics (409 projection_behind)."""
    async def answered() -> bool:
        freeze.response = await platform.stats.post(f"/v1/reports/frozen/{year}", headers=platform.auth(scope))
        return freeze.response.status_code != 409 or freeze.response.json()["kind"] != "projection_behind"

    await wait_until(answered, timeout=30, interval=0.3)
    return freeze.response


def settings_of(platform) -> ServiceSettings:
    return platform.runtimes["stats"].settings


async def test_a_frozen_year_is_recomputed_at_its_offsets_whatever_came_since(platform):
    a = e.household(date(Y, 2, 1), programme="fnavdl", territory="bretagne", worker="sw-771")
    b = e.household(date(Y, 5, 3), programme="jeunes_ase", territory="normandie", worker="sw-772")
    situation = e.escalated(b.household_id, date(Y, 6, 1))
    await e.publish(platform.bootstrap, [
        a, b, e.interview(a.household_id, date(Y, 3, 1), worker="sw-771"),
        e.interview(b.household_id, date(Y, 7, 9), worker="sw-772"),
        situation, e.meeting(date(Y, 6, 20), [situation.situation_id], territory="normandie"),
        e.closed(a.household_id, date(Y + 1, 1, 5)), e.closed(b.household_id, date(Y + 1, 1, 5)),
    ])
    await settle(platform, Y, interviews_held=2, situations_escalated=1, veille_meetings=1, situations_reviewed=1)

    # Only a token for every territory, with the scope, freezes; only a past year.
    assert (await platform.stats.post(f"/v1/reports/frozen/{Y}", headers=platform.auth("reports:read"))
            ).status_code == 403
    async with platform.runtimes["stats"].pool.acquire() as conn:
        bound = await issue_token(conn, ["reports:freeze", "reports:read"], "tests bretagne", territories=["bretagne"])
    for method in ("post", "get"):
        refused = await getattr(platform.stats, method)(f"/v1/reports/frozen/{Y}",
                                                        headers={"Authorization": f"Bearer {bound}"})
        assert refused.status_code == 403 and refused.json()["kind"] == "forbidden_territory", refused.text
    this_year = await platform.stats.post(f"/v1/reports/frozen/{date.today().year}",
                                          headers=platform.auth("reports:freeze"))
    assert this_year.status_code == 409 and this_year.json()["kind"] == "year_not_closed", this_year.text

    response = await freeze(platform, Y)
    assert response.status_code == 201, response.text
    record = response.json()
    assert record["year"] == Y and record["frozen_by"] == "tests reports:freeze"
    assert set(record["offsets"]) >= EVENT_TOPICS
    assert all(offset >= 0 for partitions in record["offsets"].values() for offset in partitions.values())
    assert sum(record["offsets"]["alfi.veille.events"].values()) >= 2
    assert record["figures"]["activity"] == await report(platform, Y)
    assert [row["interviews_held"] for row in record["figures"]["breakdowns"]["worker"]
            if row["worker"] in ("sw-771", "sw-772")] == [1, 1]
    assert record["sha256"] == digest(record["figures"])

    read = platform.auth("reports:read")
    assert (await platform.stats.get(f"/v1/reports/frozen/{Y}", headers=read)).json() == record
    listed = (await platform.stats.get("/v1/reports/frozen", headers=read)).json()["years"]
    assert [{**r, "figures": record["figures"]} for r in listed if r["year"] == Y] == [record]
    assert (await platform.stats.get("/v1/reports/frozen/1900", headers=read)).status_code == 404

    again = await freeze(platform, Y)
    assert again.status_code == 409 and again.json()["kind"] == "already_frozen", again.text
    assert (await platform.stats.get(f"/v1/reports/frozen/{Y}", headers=read)).json() == record

    async with platform.runtimes["stats"].pool.acquire() as conn:
        audited = await conn.fetch("SELECT action, outcome FROM audit.events WHERE object_id = $1", f"frozen:{Y}")
    assert {("freeze_report", "accepted"), ("freeze_report", "rejected:already_frozen"),
            ("read_report", "accepted")} <= {tuple(r) for r in audited}

    verified = await verify(settings_of(platform), Y)
    assert verified["equal"] and verified["recomputed"] == record["sha256"], verified["differences"]

    # One more event of the frozen year: the live figures change, the frozen ones do not,
    # and recomputing at the recorded offsets still gives them.
    await e.publish(platform.bootstrap, [e.interview(a.household_id, date(Y, 11, 2), worker="sw-773")])
    await settle(platform, Y, interviews_held=3)
    assert (await platform.stats.get(f"/v1/reports/frozen/{Y}", headers=read)).json() == record
    verified = await verify(settings_of(platform), Y)
    assert verified["equal"] and verified["recomputed"] == record["sha256"], verified["differences"]
    assert verified["figures"]["activity"]["interviews_held"] == 2
    late = await freeze(platform, Y)
    assert late.status_code == 409 and late.json()["kind"] == "already_frozen"
    assert (await report(platform, Y))["interviews_held"] == 3
    async with platform.runtimes["stats"].pool.acquire() as conn:  # the scratch schemas are gone
        assert not await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'stats_verify_%'")


async def test_a_tampered_record_does_not_verify(platform):
    year = Y + 1
    household = e.household(date(year, 4, 1), worker="sw-781")
    await e.publish(platform.bootstrap, [
        household, e.interview(household.household_id, date(year, 4, 2), worker="sw-781"),
        e.closed(household.household_id, date(year + 1, 1, 5))])
    await settle(platform, year, interviews_held=1)
    response = await freeze(platform, year)
    assert response.status_code == 201, response.text
    original = response.json()["sha256"]
    async with platform.runtimes["stats"].pool.acquire() as conn:
        await conn.execute("UPDATE stats.frozen_years SET sha256 = repeat('0', 64) WHERE year = $1", year)

    verified = await verify(settings_of(platform), year)
    assert not verified["equal"]
    assert verified["stored"] == "0" * 64 and verified["recomputed"] == original

    # The command line says so too, both hashes printed, and exits 1.
    env = {**os.environ, "DATABASE_URL": platform.database_url, "KAFKA_BOOTSTRAP_SERVERS": platform.bootstrap}
    cli = subprocess.run([sys.executable, "-m", "services.stats.freeze", "verify", str(year)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 1, cli.stderr
    assert "0" * 64 in cli.stdout and original in cli.stdout and "DIFFERENT" in cli.stdout

    # The figures served edited, the hash left as it was: caught too.
    async with platform.runtimes["stats"].pool.acquire() as conn:
        await conn.execute("UPDATE stats.frozen_years SET sha256 = $2,"
                           " figures = jsonb_set(figures, '{activity,interviews_held}', '99') WHERE year = $1",
                           year, original)
    verified = await verify(settings_of(platform), year)
    assert not verified["equal"] and not verified["record_intact"]
    assert verified["recomputed"] == original and verified["differences"] == ["activity.interviews_held"]


async def test_a_topic_that_lost_its_first_records_cannot_be_recomputed(kafka_bootstrap, server_database_url):
    topic = await e.topic_without_its_first_record(kafka_bootstrap, Y)
    async with fresh_database(server_database_url) as url:
        settings = ServiceSettings(service="stats", database_url=url, kafka_bootstrap_servers=kafka_bootstrap)
        with pytest.raises(NotFound, match="not frozen"):
            await verify(settings, Y)  # (migrates the base schema)
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(
                "INSERT INTO stats.frozen_years (year, generation, offsets, figures, sha256, frozen_by)"
                " VALUES ($1, 1, $2::jsonb, '{}', repeat('0', 64), 'tests')", Y, f'{{"{topic}": {{"0": 3}}}}')
        finally:
            await conn.close()
        with pytest.raises(HistoryMissing, match=rf"{topic}\[0\] holds 1\.\.3"):
            await verify(settings, Y)
        conn = await asyncpg.connect(url)
        try:
            assert not await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'stats_verify_%'")
        finally:
            await conn.close()
