"""The retention clock on the real stack: intake learns contacts from casework's and
veille's events, lists the households without contact for the period, erases them
through the DELETE handler, once, and finishes after a crash mid-run.

Each test counts from a `today` of its own, long past, so that only its own households
are due (the other tests' households, from 2023 on, are not): a run erases every due
household of the session's database.
"""

from __future__ import annotations

import asyncio
from datetime import date
from uuid import UUID

import pytest
from prometheus_client import REGISTRY

from services.intake import retention
from services.intake.contacts import CONSUMER, TOPICS
from tests.integration.platform import read_topic
from tests.integration.test_casework_veille import enrolled, interview
from tests.support import wait_until

DAYS = 730


@pytest.fixture(scope="module")
async def intake(platform):
    """intake's runtime, its scheduled clock stopped: only the tests' own runs erase."""
    runtime = platform.runtimes["intake"]
    clock = runtime.extras.get("retention")
    if clock is not None:
        # Started with intake, among the tasks Runtime.stop cancels.
        await wait_until(lambda: clock.task in runtime.tasks)
        await clock.stop()
    return runtime


async def contacts_applied(platform, intake, households: set[str], events: int) -> None:
    """Wait until the `events` casework and veille published about these households are
    on their topics and applied by intake's contacts consumer."""
    mine: list = []

    async def published() -> bool:
        mine[:] = [r for topic in TOPICS for r in await read_topic(platform.bootstrap, topic)
                   if r.key and r.key.decode() in households]
        return len(mine) >= events

    await wait_until(published)

    async def applied() -> bool:
        rows = await intake.pool.fetch(
            "SELECT topic, partition, next_offset FROM consumer_positions WHERE consumer = $1", CONSUMER)
        positions = {(r["topic"], r["partition"]): r["next_offset"] for r in rows}
        return all(positions.get((r.topic, r.partition), 0) > r.offset for r in mine)

    await wait_until(applied)


async def household_view(platform, household: str) -> dict:
    response = await platform.intake.get(f"/v1/households/{household}", headers=platform.auth())
    assert response.status_code == 200
    return response.json()


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def mine(report: retention.Report, households: set[str]) -> dict[str, date]:
    return {str(d.household_id): d.last_contact_on for d in report.due if str(d.household_id) in households}


async def test_lists_then_erases_the_households_without_contact_for_the_period(platform, intake):
    post = dict(headers=platform.auth())
    quiet = await enrolled(platform, enrolled_on="2020-01-15")  # no contact since its enrolment
    seen_2021 = await enrolled(platform, enrolled_on="2020-01-15")
    recent = await enrolled(platform, enrolled_on="2020-01-15")
    closed = await enrolled(platform, enrolled_on="2020-01-15")
    escalated = await enrolled(platform, enrolled_on="2020-01-15")
    cancelled = await enrolled(platform, enrolled_on="2020-01-15")
    ours = {quiet, seen_2021, recent, closed, escalated, cancelled}

    assert (await platform.casework.post("/v1/interviews", json=interview(seen_2021, held_on="2021-03-10"),
                                         **post)).status_code == 201
    # Two months before the day the tests count from.
    assert (await platform.casework.post("/v1/interviews", json=interview(recent, held_on="2023-04-01"),
                                         **post)).status_code == 201
    assert (await platform.intake.post(f"/v1/households/{closed}/closure",
                                       json={"closed_on": "2022-01-10", "outcome": "ended"}, **post)).status_code == 200
    assert (await platform.veille.post("/v1/situations", json={
        "household_id": escalated, "escalated_on": "2022-11-02", "severity": "serious", "reasons": ["isolation"]},
        **post)).status_code == 201
    held = await platform.casework.post("/v1/interviews", json=interview(cancelled, held_on="2021-02-01"), **post)
    assert held.status_code == 201
    # Cancelled two years later: the cancellation is not a contact.
    assert (await platform.casework.post(f"/v1/interviews/{held.json()['interview_id']}/cancellation",
                                         json={"cancelled_on": "2023-05-20", "reason": "entered_in_error"},
                                         **post)).status_code == 200
    await contacts_applied(platform, intake, ours, events=5)
    contacts = {str(r["household_id"]): r["last_contact_on"] for r in await intake.pool.fetch(
        "SELECT * FROM contacts WHERE household_id = ANY($1::uuid[])", [UUID(h) for h in ours])}
    assert contacts == {seen_2021: date(2021, 3, 10), recent: date(2023, 4, 1), escalated: date(2022, 11, 2),
                        cancelled: date(2021, 2, 1)}

    today = date(2023, 6, 1)  # due: no contact since 2021-06-01
    expected = {quiet: date(2020, 1, 15), seen_2021: date(2021, 3, 10), cancelled: date(2021, 2, 1)}
    erased_before = metric("alfi_retention_erased_total")
    dry = await retention.run(intake.pool, intake.bus, days=DAYS, today=today, dry_run=True)
    assert mine(dry, ours) == expected
    assert [d.last_contact_on for d in dry.due] == sorted(d.last_contact_on for d in dry.due)  # oldest first
    assert (dry.erased, metric("alfi_retention_erased_total")) == (0, erased_before)
    assert metric("alfi_retention_due_households") == len(dry.due)
    assert all([(await household_view(platform, h))["erased_on"] is None for h in ours])

    real = await retention.run(intake.pool, intake.bus, days=DAYS, today=today)
    assert mine(real, ours) == expected
    assert (real.erased, real.failed, real.remaining) == (len(real.due), 0, 0)
    assert metric("alfi_retention_erased_total") == erased_before + real.erased
    assert metric("alfi_retention_due_households") == 0
    assert metric("alfi_retention_last_run_timestamp_seconds") > 0
    for household in ours:
        view = await household_view(platform, household)
        if household in expected:
            assert view["erased_on"] is not None and view["referent_worker_id"] is None
        else:
            assert view["erased_on"] is None and view["referent_worker_id"] == "sw-017"

    # The erasure went out as DELETE's does: casework's replica applies it.
    async def replicated() -> bool:
        erased = await platform.runtimes["casework"].pool.fetch(
            "SELECT household_id FROM households WHERE household_id = ANY($1::uuid[]) AND erased_on IS NOT NULL",
            [UUID(h) for h in ours])
        return {str(r["household_id"]) for r in erased} == set(expected)

    await wait_until(replicated)

    again = await retention.run(intake.pool, intake.bus, days=DAYS, today=today)
    assert mine(again, ours) == {} and again.erased == 0
    assert metric("alfi_retention_erased_total") == erased_before + real.erased


class CrashingBus:
    """The real bus, but the process dies as the second erasure starts: the first one
    has committed, the second's transaction rolls back."""

    def __init__(self, bus) -> None:  # noqa: ANN001
        self.bus = bus
        self.calls = 0

    async def run(self, conn, name, command, context):  # noqa: ANN001, ANN201
        self.calls += 1
        if self.calls == 2:
            asyncio.current_task().cancel()
            await asyncio.sleep(0)
        return await self.bus.run(conn, name, command, context)


async def test_a_run_stopped_mid_way_is_finished_by_the_next(platform, intake):
    ours = {await enrolled(platform, enrolled_on="2019-01-10") for _ in range(3)}
    today = date(2021, 3, 1)  # due: no contact since 2019-03-02

    crashing = asyncio.create_task(retention.run(intake.pool, CrashingBus(intake.bus), days=DAYS, today=today))
    with pytest.raises(asyncio.CancelledError):
        await crashing
    erased = {h for h in ours if (await household_view(platform, h))["erased_on"] is not None}
    assert len(erased) == 1

    # The lock went with the crashed run: the next one takes the rest.
    finished = await retention.run(intake.pool, intake.bus, days=DAYS, today=today)
    assert not finished.locked_out
    assert set(mine(finished, ours)) == ours - erased
    assert finished.erased >= 2 and finished.failed == 0
    assert all([(await household_view(platform, h))["erased_on"] is not None for h in ours])


async def test_one_run_at_a_time(platform, intake, db):
    household = await enrolled(platform, enrolled_on="2018-01-10")
    today = date(2020, 3, 1)
    await db.execute("SELECT pg_advisory_lock(hashtext($1))", retention.LOCK)  # another instance's run
    try:
        blocked = await retention.run(intake.pool, intake.bus, days=DAYS, today=today)
        assert blocked.locked_out and blocked.erased == 0
        assert (await household_view(platform, household))["erased_on"] is None
        listing = await retention.run(intake.pool, intake.bus, days=DAYS, today=today, dry_run=True)
        assert household in mine(listing, {household})  # a dry run only reads: no lock needed
    finally:
        await db.execute("SELECT pg_advisory_unlock(hashtext($1))", retention.LOCK)
    done = await retention.run(intake.pool, intake.bus, days=DAYS, today=today)
    assert household in mine(done, {household}) and done.erased >= 1
    assert (await household_view(platform, household))["erased_on"] is not None


async def test_by_hand(platform, intake, database_url, monkeypatch, capsys):
    household = await enrolled(platform, enrolled_on="2017-01-10")
    monkeypatch.setenv("DATABASE_URL", database_url)
    by_hand = ["--days", "730", "--today", "2019-03-01"]  # due: no contact since 2017-03-02

    assert await asyncio.to_thread(retention.main, [*by_hand, "--dry-run"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert f"{household} 2017-01-10" in listed
    assert listed[-1].endswith("(730 days before 2019-03-01): dry run, nothing erased")
    assert (await household_view(platform, household))["erased_on"] is None

    assert await asyncio.to_thread(retention.main, by_hand) == 0
    erased = capsys.readouterr().out.splitlines()
    assert f"{household} 2017-01-10" in erased and ", 0 failed" in erased[-1]
    assert (await household_view(platform, household))["erased_on"] is not None
