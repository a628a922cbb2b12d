"""Property: whatever the duplication, interleaving across topics and batch split, the
projection on the real PostgreSQL gives the figures of a plain in-memory fold."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import asyncpg
import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from hypothesis import HealthCheck, given, settings, strategies as st

from alfi_contracts import encode, make_event
from services.common.migrations import migrate, sql_files
from services.common.service import SQL as COMMON_SQL
from services.stats import generations, reports
from services.stats.service import DEFINITION
from services.stats.projector import Projector
from tests.conftest import fresh_database
from tests.integration import events as e
from tests.reference import bilan

YEAR = 2023
generation_numbers = itertools.count(900)
days = st.integers(min_value=-120, max_value=480).map(lambda n: date(YEAR, 1, 1) + timedelta(days=n))
uuids = st.uuids(version=4)


@st.composite
def worlds(draw) -> list:
    events = []
    households = []
    for _ in range(draw(st.integers(1, 6))):
        h = e.household(draw(days), programme=draw(st.sampled_from(["fnavdl", "mous", "jeunes_ase"])),
                        worker=draw(st.sampled_from(["sw-001", "sw-002", "sw-003"])), household_id=draw(uuids))
        households.append(h)
        events.append(h)
        if draw(st.booleans()):
            events.append(e.closed(h.household_id, h.enrolled_on + timedelta(days=draw(st.integers(0, 400)))))
    situations = []
    for _ in range(draw(st.integers(0, 8))):
        h = draw(st.sampled_from(households))
        i = e.interview(h.household_id, draw(days), worker=draw(st.sampled_from(["sw-001", "sw-002", "sw-004"])),
                        interview_id=draw(uuids))
        events.append(i)
        if draw(st.booleans()):
            events.append(e.cancelled(i.interview_id, h.household_id, i.held_on))
    for _ in range(draw(st.integers(0, 4))):
        s = e.escalated(draw(st.sampled_from(households)).household_id, draw(days), situation_id=draw(uuids))
        situations.append(s)
        events.append(s)
    for _ in range(draw(st.integers(0, 3))):
        if situations:
            reviewed = draw(st.lists(st.sampled_from([s.situation_id for s in situations]), min_size=1,
                                     max_size=3, unique=True))
            events.append(e.meeting(draw(days), reviewed))
    for _ in range(draw(st.integers(0, 3))):
        events.append(e.workshop(draw(days), draw(st.integers(0, 20))))
    for h in draw(st.lists(st.sampled_from(households), max_size=3, unique_by=lambda h: h.household_id)):
        events.append(e.rehousing(h.household_id, draw(days), youth=draw(st.booleans()), dalo=draw(st.booleans())))
    return events


def records(envelopes: list[tuple]) -> list[tuple[TopicPartition, ConsumerRecord]]:
    out = []
    offsets: dict[TopicPartition, int] = {}
    for event, data in envelopes:
        tp = TopicPartition(f"alfi.{data.service}.events", 0)
        offset = offsets[tp] = offsets.get(tp, -1) + 1
        out.append((tp, ConsumerRecord(tp.topic, 0, offset, 0, 0, data.key, encode(event), None, 0, 0, [])))
    return out


@pytest.fixture(scope="module")
async def own_database(server_database_url: str):
    """A database of this module's own: the figures also read the anonymous residue of
    erased households (stats.anon_*), which other tests' erasures fill in theirs."""
    async with fresh_database(server_database_url) as url:
        yield url


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(world=worlds(), data=st.data())
def test_projection_equals_in_memory_fold(world, data, own_database, event_loop_runner):
    database_url = own_database
    envelopes = [(make_event(d), d) for d in world]
    delivered = data.draw(st.permutations(envelopes + data.draw(st.lists(st.sampled_from(envelopes), max_size=10))))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(delivered)), max_size=4)))
    polls = [delivered[a:b] for a, b in zip([0, *cuts], [*cuts, len(delivered)], strict=True)]
    figures = event_loop_runner(project(database_url, polls))
    assert figures == bilan(world, YEAR)


async def project(database_url: str, polls: list[list[tuple]]) -> dict:
    conn = await asyncpg.connect(database_url)
    generation = next(generation_numbers)
    try:
        # The base schema as stats migrates it: its anon_* tables are what the views read.
        await migrate(conn, generations.BASE, sql_files(COMMON_SQL, "platform_*.sql") + sql_files(DEFINITION.sql_dir))
        await generations.prepare(conn, generation, fresh=True)
        projection = Projector(generations.BASE)
        for poll in polls:
            batches: dict = {}
            for tp, record in records(poll):
                batches.setdefault(tp, []).append(record)
            async with conn.transaction():
                await conn.execute(f"SET LOCAL search_path TO {generations.search_path(generation)}")
                await projection.apply(conn, await projection.prepare(batches))
        async with conn.transaction():
            await conn.execute(f"SET LOCAL search_path TO {generations.search_path(generation)}")
            result = await reports.activity(conn, YEAR)
        await conn.execute(f'DROP SCHEMA "{generations.schema_of(generation)}" CASCADE')
        return {k: v for k, v in result.items() if k != "year"}
    finally:
        await conn.close()
