"""Erasure on the real stack: after it, no personal field of the household can be read
anywhere (database, outbox, Kafka history, a dead letter), a guessed replay learns
nothing, and no figure changes, before or after a rebuild."""

from __future__ import annotations

import json
from uuid import UUID, uuid4

import asyncpg

from alfi_contracts import EVENTS_BY_TYPE, decode
from alfi_contracts.privacy import SEALED, personal_fields
from services.common.keyring import KeyCache
from tests.integration.platform import produce, read_topic
from tests.support import wait_until

YEAR = 2013  # no other test writes this year
EVENT_TOPICS = ("alfi.intake.events", "alfi.casework.events", "alfi.veille.events")
DIMENSIONS = ("programme", "territory", "month", "worker", "workshop_theme", "landlord")


async def post(platform, service: str, path: str, body: dict, scope: str = "all") -> dict:
    response = await getattr(platform, service).post(path, json=body, headers=platform.auth(scope))
    assert response.status_code in (200, 201), response.text
    return response.json()


async def figures(platform) -> dict:
    """The year's headline figures and every breakdown, as the reports API gives them."""
    headers = platform.auth("reports:read")
    out = {"activity": (await platform.stats.get("/v1/reports/activity", params={"year": YEAR},
                                                 headers=headers)).json()}
    for by in DIMENSIONS:
        out[by] = (await platform.stats.get("/v1/reports/activity/breakdown", params={"year": YEAR, "by": by},
                                            headers=headers)).json()
    return out


async def a_year_of_accompaniment(platform) -> list[str]:
    """Three households of YEAR through the public APIs: interviews by two workers, a
    rehousing (DALO, youth), a closure, a situation reviewed in a meeting."""
    households = []
    for n, (programme, territory, youth, dalo) in enumerate(
            [("jeunes_ase", "bretagne", True, True), ("fnavdl", "bretagne", False, False),
             ("masp2", "normandie", False, True)]):
        body = {"household_id": str(uuid4()), "programme": programme, "territory": territory,
                "referent_worker_id": f"sw-90{n}", "enrolled_on": f"{YEAR}-0{n + 1}-10", "youth": youth,
                "dalo_priority": dalo, "adults": 2, "children": n}
        households.append((await post(platform, "intake", "/v1/households", body))["household_id"])
    first, second, third = households

    async def interview(household: str, on: str, worker: str) -> dict:
        body = {"household_id": household, "worker_id": worker, "held_on": on, "mode": "home_visit",
                "topics": ["health", "budget"], "duration_minutes": 45}
        async def recorded() -> bool:  # 409 until casework's replica has the household
            response = await platform.casework.post("/v1/interviews", json=body, headers=platform.auth())
            return response.status_code == 201
        await wait_until(recorded, timeout=30, interval=0.3)
        return body

    for household, on, worker in [(first, f"{YEAR}-03-02", "sw-900"), (first, f"{YEAR}-04-02", "sw-901"),
                                  (second, f"{YEAR}-05-03", "sw-901"), (third, f"{YEAR}-06-04", "sw-902")]:
        await interview(household, on, worker)
    await post(platform, "casework", "/v1/rehousings",
               {"household_id": first, "landlord": "antin-residences", "confirmed_on": f"{YEAR}-09-01"})
    await post(platform, "intake", f"/v1/households/{second}/closure",
               {"closed_on": f"{YEAR}-10-01", "outcome": "moved_away"})

    async def escalated() -> bool:
        response = await platform.veille.post("/v1/situations", json={
            "household_id": third, "escalated_on": f"{YEAR}-06-10", "severity": "serious",
            "reasons": ["violence", "child_protection"]}, headers=platform.auth())
        if response.status_code == 201:
            escalated.situation = response.json()["situation_id"]
        return response.status_code == 201
    await wait_until(escalated, timeout=30, interval=0.3)
    await post(platform, "veille", "/v1/meetings", {
        "held_on": f"{YEAR}-06-20", "territory": "normandie",
        "reviewed": [{"situation_id": escalated.situation, "decision": "urgent_action"}]})
    for household, on in ((first, f"{YEAR}-11-30"), (third, f"{YEAR}-12-20")):  # no later year counts them
        await post(platform, "intake", f"/v1/households/{household}/closure", {"closed_on": on, "outcome": "rehoused"})
    return households


async def dead_letter_a_copy(platform, household: str) -> tuple[bytes, bytes]:
    """Put a copy of the household's interview event that no reader accepts (an unknown
    schema version) on the topic: stats dead-letters it, sealed fields and all. Returns
    the original event and the dead letter."""
    record = next(r for r in await read_topic(platform.bootstrap, "alfi.casework.events")
                  if r.key == household.encode() and json.loads(r.value)["type"] == "interview.held")
    copy = json.loads(record.value)
    copy["id"] = str(uuid4())
    copy["dataschema"] = copy["dataschema"].replace(":v1", ":v999")
    value = json.dumps(copy).encode()
    await produce(platform.bootstrap, "alfi.casework.events", [value], key=household.encode())

    async def dead_lettered() -> bool:
        return any(r.value == value for r in await read_topic(platform.bootstrap, "alfi.casework.events.dlq"))
    await wait_until(dead_lettered, timeout=30)
    return record.value, value


def assert_nothing_personal_readable(value: bytes, keys: KeyCache) -> None:
    """A stored event of an erased household: its personal fields are not in clear, and
    the sealed ones no longer open."""
    body = json.loads(value)
    model = EVENTS_BY_TYPE[body["type"]]
    personal = personal_fields(model)
    assert not set(personal) & set(body["data"]), f"{body['type']} carries personal fields in clear"
    if personal:
        assert SEALED in body["data"]
        household = body["data"]["household_id"]
        assert keys.unseal(household, body["data"][SEALED], b"") is None  # no key: nothing opens


async def test_erasure_leaves_nothing_readable_and_changes_no_figure(platform):
    from services.stats.rebuild import rebuild

    households = await a_year_of_accompaniment(platform)
    expected = {"households_followed": 3, "interviews_held": 4, "social_workers_active": 3,
                "rehousings": 1, "rehousings_dalo": 1, "rehousings_youth": 1, "situations_reviewed": 1}

    async def settled() -> bool:
        got = (await figures(platform))["activity"]
        return all(got[k] == v for k, v in expected.items())
    await wait_until(settled, timeout=60, interval=0.3)
    before = await figures(platform)
    original, letter = await dead_letter_a_copy(platform, households[0])

    # While the key exists, the sealed fields open (the test's check below can fail).
    keys = KeyCache()
    async with platform.runtimes["intake"].pool.acquire() as conn:
        await keys.load(conn, households)
    _, opened = decode(original, keys.unsealer)
    assert opened.topics == ["health", "budget"] and opened.worker_id == "sw-900"

    for household in households:
        response = await platform.intake.delete(f"/v1/households/{household}/personal-data",
                                                headers=platform.auth("intake:erase"))
        assert response.status_code == 200, response.text

    # Figures: unchanged once stats has applied the erasures.
    async def anonymised() -> bool:
        async with platform.runtimes["stats"].pool.acquire() as conn:
            return await conn.fetchval("SELECT count(*) FROM stats.anonymised_households"
                                       " WHERE household_id = ANY($1::uuid[])", households) == 3
    await wait_until(anonymised, timeout=60)
    assert await figures(platform) == before

    # Kafka: every event of theirs, and the dead letter, no longer opens.
    keys = KeyCache()
    async with platform.runtimes["intake"].pool.acquire() as conn:
        await keys.load(conn, households)
    ids = {h.encode() for h in households}
    seen = 0
    for topic in EVENT_TOPICS:
        for record in await read_topic(platform.bootstrap, topic):
            if record.key in ids:
                assert_nothing_personal_readable(record.value, keys)
                seen += 1
    assert seen >= 3 + 4 + 1 + 1 + 1 + 3  # enrolments, interviews, rehousing, closure, escalation, erasures
    letters = [r for r in await read_topic(platform.bootstrap, "alfi.casework.events.dlq") if r.value == letter]
    assert letters
    assert_nothing_personal_readable(letters[0].value, keys)
    _, redacted = decode(original, keys.unsealer)
    assert redacted.topics is None and redacted.worker_id is None and redacted.held_on.year == YEAR

    conn = await asyncpg.connect(platform.database_url)
    try:
        uuids = [UUID(h) for h in households]
        assert await conn.fetchval("SELECT count(*) FROM keyring.household_keys WHERE household_id = ANY($1)", uuids) == 0
        # Outboxes: the payloads are the bus's (same check), and nothing else is kept.
        for schema in ("intake", "casework", "veille"):
            for row in await conn.fetch(f"SELECT payload FROM {schema}.outbox WHERE key = ANY($1::bytea[])",
                                        list(ids)):
                assert_nothing_personal_readable(row["payload"], keys)
        # Write models and replicas: the personal columns are cleared, request hashes too.
        assert not await conn.fetch(
            "SELECT 1 FROM intake.households WHERE household_id = ANY($1) AND (referent_worker_id IS NOT NULL"
            " OR youth IS NOT NULL OR dalo_priority IS NOT NULL OR adults IS NOT NULL OR children IS NOT NULL"
            " OR closure_outcome IS NOT NULL OR request_hash IS NOT NULL)", uuids)
        assert not await conn.fetch(
            "SELECT 1 FROM casework.interviews WHERE household_id = ANY($1) AND (worker_id IS NOT NULL"
            " OR mode IS NOT NULL OR topics IS NOT NULL OR duration_minutes IS NOT NULL OR request_hash IS NOT NULL)",
            uuids)
        assert not await conn.fetch(
            "SELECT 1 FROM casework.rehousings WHERE household_id = ANY($1) AND (landlord IS NOT NULL"
            " OR youth IS NOT NULL OR dalo_priority IS NOT NULL OR request_hash IS NOT NULL)", uuids)
        assert not await conn.fetch(
            "SELECT 1 FROM veille.situations WHERE household_id = ANY($1) AND (severity IS NOT NULL"
            " OR reasons IS NOT NULL OR request_hash IS NOT NULL)", uuids)
        for schema in ("casework", "veille"):
            assert await conn.fetchval(
                f"SELECT count(*) FROM {schema}.households WHERE household_id = ANY($1)"
                " AND erased_on IS NOT NULL AND youth IS NULL AND dalo_priority IS NULL", uuids) == 3
        # stats: no row names them; what the figures need is under ids that name no one.
        generation = platform.runtimes["stats"].extras["generation"]
        for table in ("households", "interviews", "rehousings", "situations", "interview_details",
                      "situation_details", "closures"):
            assert await conn.fetchval(
                f"SELECT count(*) FROM stats_g{generation}.{table} WHERE household_id = ANY($1)", uuids) == 0
            assert await conn.fetchval(
                f"SELECT count(*) FROM stats.anon_{table} WHERE household_id = ANY($1)", uuids) == 0
    finally:
        await conn.close()

    # A guessed replay of an enrolment answers the same, right or wrong.
    answers = []
    for guess in (2, 7):
        body = {"household_id": households[0], "programme": "jeunes_ase", "territory": "bretagne",
                "referent_worker_id": "sw-900", "enrolled_on": f"{YEAR}-01-10", "youth": True,
                "dalo_priority": True, "adults": 2, "children": guess}
        response = await platform.intake.post("/v1/households", json=body, headers=platform.auth())
        answers.append((response.status_code, response.json()))
    assert answers[0] == answers[1] and answers[0][0] == 409

    # A rebuild from offset 0 (the keys are gone) gives the same figures.
    await rebuild(platform.runtimes["stats"].settings)
    assert await figures(platform) == before


async def test_published_outbox_rows_are_purged_after_the_outbox_retention(platform):
    from services.common.migrations import migrate, sql_files
    from services.common.outbox import OutboxRelay
    from services.common.service import SQL as COMMON_SQL

    schema = "purge_test"  # an outbox no running relay publishes from
    conn = await asyncpg.connect(platform.database_url)
    try:
        await migrate(conn, schema, sql_files(COMMON_SQL, "platform_*.sql"))
        ids = {}
        for name, published, refused in (("old", "now() - interval '2 minutes'", "NULL"),
                                         ("recent", "now()", "NULL"), ("pending", "NULL", "NULL"),
                                         ("refused", "NULL", "now() - interval '2 minutes'")):
            kind = "'too_large'" if refused != "NULL" else "NULL"
            ids[name] = await conn.fetchval(
                f"INSERT INTO {schema}.outbox (event_id, topic, key, payload, published_at, refused_at, refusal_kind)"
                f" VALUES ($1, 'alfi.test.purge', 'k', 'v', {published}, {refused}, {kind}) RETURNING id", uuid4())
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(platform.database_url, min_size=1, max_size=1,
                                     server_settings={"search_path": schema})
    try:
        relay = OutboxRelay(pool, schema, platform.bootstrap, "test-purge", retention_seconds=60)
        assert await relay.purge() == 1
        left = {r["id"] for r in await pool.fetch("SELECT id FROM outbox")}
    finally:
        await pool.close()
    assert left == {ids["recent"], ids["pending"], ids["refused"]}


async def test_an_erasure_is_not_accepted_from_a_command_topic(platform):
    """A command topic carries no caller identity to check intake:erase against."""
    body = {"household_id": str(uuid4()), "programme": "mous", "territory": "bretagne",
            "referent_worker_id": "sw-001", "enrolled_on": f"{YEAR}-02-01", "youth": False,
            "dalo_priority": False, "adults": 1, "children": 0}
    household = (await post(platform, "intake", "/v1/households", body))["household_id"]
    value = json.dumps({"command": "erase_personal_data", "data": {"household_id": household}}).encode()
    await produce(platform.bootstrap, "alfi.intake.commands", [value], key=household.encode())

    async def refused() -> list:
        return [r for r in await read_topic(platform.bootstrap, "alfi.intake.commands.dlq") if r.value == value]
    await wait_until(refused, timeout=30)
    headers = dict((await refused())[0].headers)
    assert headers["alfi-error-kind"] == b"invalid" and b"erase_personal_data" not in headers["alfi-error-detail"]
    got = await platform.intake.get(f"/v1/households/{household}", headers=platform.auth("intake:read"))
    assert got.json()["erased_on"] is None
    await post(platform, "intake", f"/v1/households/{household}/closure",
               {"closed_on": f"{YEAR}-03-01", "outcome": "ended"})  # no later year counts it
