"""The erasure's grace period, on the real PostgreSQL: an event the household's services
published just before its erasure, arriving at stats after it, still counts whole; once
stats has anonymised the household, later events of it leave no trace."""

from __future__ import annotations

from datetime import date
from uuid import uuid4

import asyncpg
import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from alfi_contracts import encode, make_event
from alfi_contracts import events as ev
from services.common import keyring
from services.common.migrations import migrate, sql_files
from services.common.service import SQL as COMMON_SQL
from services.stats import generations, reports
from services.stats.projector import Projector, finalise
from services.stats.service import DEFINITION
from tests.conftest import fresh_database

TP = TopicPartition("alfi.casework.events", 0)


def poll(*items: tuple[ev.EventData, bytes]) -> dict:
    records = []
    for offset, (data, key) in enumerate(items):
        event = make_event(data, seal=keyring.sealer(key) if key else None)
        records.append(ConsumerRecord(TP.topic, 0, offset, 0, 0, data.key, encode(event), None, 0, 0, []))
    return {TP: records}


@pytest.fixture
async def stats_db(server_database_url: str):
    async with fresh_database(server_database_url) as url:
        conn = await asyncpg.connect(url)
        try:
            await keyring.migrate_keyring(conn)
            await migrate(conn, generations.BASE, sql_files(COMMON_SQL, "platform_*.sql") + sql_files(DEFINITION.sql_dir))
            await generations.ensure_current(conn)
        finally:
            await conn.close()
        pool = await asyncpg.create_pool(url, min_size=1, max_size=3)
        try:
            yield pool
        finally:
            await pool.close()


async def apply(pool: asyncpg.Pool, projection: Projector, batches: dict) -> None:
    prepared = await projection.prepare(batches)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(f"SET LOCAL search_path TO {generations.search_path(1)}")
        await projection.apply(conn, prepared)


async def figures(pool: asyncpg.Pool) -> dict:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(f"SET LOCAL search_path TO {generations.search_path(1)}")
        return {"activity": await reports.activity(conn, 2024),
                "by_worker": await reports.breakdown(conn, 2024, "worker")}


async def test_a_late_event_counts_within_the_grace_period_and_none_after(stats_db):
    pool = stats_db
    household = uuid4()
    async with pool.acquire() as conn:
        await keyring.create_key(conn, household)
        key = await keyring.locked_key(conn, household)
    projection = Projector(generations.BASE, pool)
    enrolled = ev.HouseholdEnrolled(household_id=household, programme="fnavdl", territory="bretagne",
                                    referent_worker_id="sw-001", enrolled_on=date(2024, 1, 5), youth=False,
                                    dalo_priority=True, adults=1, children=0)
    interview = ev.InterviewHeld(interview_id=uuid4(), household_id=household, worker_id="sw-002",
                                 held_on=date(2024, 2, 1), mode="office", topics=["rights"], duration_minutes=30)
    await apply(pool, projection, poll((enrolled, key), (interview, key)))

    async with pool.acquire() as conn, conn.transaction():  # the erasure, with a grace period
        await keyring.destroy_key(conn, household, grace_seconds=3600)
    erased = ev.HouseholdPersonalDataErased(household_id=household, erased_on=date.today())
    # Sealed by casework just before the erasure, arriving after it: the key still opens it.
    late = ev.InterviewHeld(interview_id=uuid4(), household_id=household, worker_id="sw-003",
                            held_on=date(2024, 3, 1), mode="phone", topics=["budget"], duration_minutes=20)
    await apply(pool, projection, poll((erased, None), (late, key)))
    assert await finalise(pool, grace_seconds=3600) == 0  # not due: nothing moves
    within = await figures(pool)
    assert within["activity"]["interviews_held"] == 2 and within["activity"]["social_workers_active"] == 2

    assert await finalise(pool, grace_seconds=0) == 1  # due: anonymised
    assert await figures(pool) == within
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM stats_g1.interviews WHERE household_id = $1", household) == 0
        assert sorted(await conn.fetchval("SELECT array_agg(worker_id) FROM stats.anon_interviews")) == [
            "sw-002", "sw-003"]
        assert await keyring.sweep(conn) == 0  # its grace period is not over: the key stays
        await conn.execute("UPDATE keyring.household_keys SET destroy_after = now() WHERE household_id = $1",
                           household)
        assert await keyring.sweep(conn) == 1

    # After that, an event of the household (a duplicate, or one very late) leaves no row.
    later = ev.InterviewHeld(interview_id=uuid4(), household_id=household, worker_id="sw-004",
                             held_on=date(2024, 4, 1), mode="phone", topics=["budget"], duration_minutes=20)
    await apply(pool, projection, poll((later, key)))
    assert await figures(pool) == within
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM stats_g1.interviews WHERE household_id = $1", household) == 0


async def test_a_rebuild_switching_while_households_are_anonymised_counts_each_once(stats_db):
    """The new generation read the erasure; the live one anonymised the household before the
    switch; or anonymised none of them yet: after the switch each figure counts it once."""
    pool = stats_db
    projection = Projector(generations.BASE, pool)
    households, batches = [], []
    for n in range(3):
        household = uuid4()
        async with pool.acquire() as conn:
            await keyring.create_key(conn, household)
            key = await keyring.locked_key(conn, household)
        households.append(household)
        batches.append(poll(
            (ev.HouseholdEnrolled(household_id=household, programme="fnavdl", territory="bretagne",
                                  referent_worker_id=f"sw-00{n}", enrolled_on=date(2024, 1, 5), youth=False,
                                  dalo_priority=True, adults=1, children=0), key),
            (ev.InterviewHeld(interview_id=uuid4(), household_id=household, worker_id=f"sw-01{n}",
                              held_on=date(2024, 2, 1), mode="office", topics=["rights"], duration_minutes=30), key),
            (ev.HouseholdPersonalDataErased(household_id=household, erased_on=date.today()), None)))
    for batch in batches:
        await apply(pool, projection, batch)  # generation 1, the live one
    before = await figures(pool)
    async with pool.acquire() as conn:
        await generations.prepare(conn, 2, fresh=True)
    for batch in batches:  # generation 2 (a rebuild) reads it all, erasures included
        prepared = await projection.prepare(batch)
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(f"SET LOCAL search_path TO {generations.search_path(2)}")
            await projection.apply(conn, prepared)
    # The live generation anonymises the first household before the switch; the others
    # are due at the switch (grace 0), which anonymises them from generation 1.
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(f"SET LOCAL search_path TO {generations.search_path(1)}")
        from services.stats.projector import anonymise, forget
        await anonymise(conn, households[:1])
        await forget(conn, households[:1])
    async with pool.acquire() as conn, conn.transaction():
        await generations.switch(conn, 2, previous=1, grace_seconds=0)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(f"SET LOCAL search_path TO {generations.search_path(2)}")
        after = {"activity": await reports.activity(conn, 2024), "by_worker": await reports.breakdown(conn, 2024, "worker")}
        assert await conn.fetchval("SELECT count(*) FROM households WHERE household_id = ANY($1)", households) == 0
        assert await conn.fetchval("SELECT count(*) FROM erasures WHERE household_id = ANY($1)", households) == 3
    assert after == before and before["activity"]["households_followed"] == 3


async def test_households_enrolled_before_keys_existed_get_one_at_start(stats_db):
    async with stats_db.acquire() as conn:
        await conn.execute("CREATE TABLE legacy_households (household_id uuid PRIMARY KEY, erased_on date)")
        active, erased = uuid4(), uuid4()
        await conn.executemany("INSERT INTO legacy_households VALUES ($1, $2)",
                               [(active, None), (erased, date(2024, 1, 1))])
        assert await keyring.backfill(conn, "legacy_households") == 1
        assert await keyring.backfill(conn, "legacy_households") == 0  # idempotent
        assert len(await keyring.locked_key(conn, active)) == 32
        with pytest.raises(keyring.Erased):
            await keyring.create_key(conn, erased)  # never again for an erased household
