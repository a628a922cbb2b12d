"""The services as real processes: a household's journey, and a kill -9 with events pending."""

from __future__ import annotations

import asyncio

import httpx

from alfi_contracts import decode
from tests.integration.platform import read_topic
from tests.integration.test_intake import enrolment
from tests.support import wait_until


async def test_household_journey_across_services(stack):
    household = enrolment()
    async with httpx.AsyncClient(headers=stack.auth, timeout=10) as http:
        enrolled = await http.post(f"{stack.url('intake')}/v1/households", json=household)
        assert enrolled.status_code == 201
        interview = {"household_id": household["household_id"], "worker_id": "sw-017", "held_on": "2023-02-02",
                     "mode": "office", "topics": ["housing"], "duration_minutes": 45}
        for _ in range(60):  # an upstream client honouring Retry-After
            response = await http.post(f"{stack.url('casework')}/v1/interviews", json=interview)
            if response.status_code != 409:
                break
            assert response.headers["retry-after"]
            await asyncio.sleep(0.5)
        assert response.status_code == 201
        metrics = await http.get(f"{stack.url('casework')}/metrics")
        assert metrics.status_code == 200
        assert household["household_id"] not in metrics.text  # no per-person id in any label


async def test_service_killed_with_events_pending_publishes_them_after_restart(stack, stoppable_kafka, kafka_bootstrap):
    households = [enrolment() for _ in range(10)]
    stoppable_kafka.stop()
    try:
        async with httpx.AsyncClient(headers=stack.auth, timeout=10) as http:
            for body in households:
                assert (await http.post(f"{stack.url('intake')}/v1/households", json=body)).status_code == 201
        stack.kill("intake")  # kill -9, events still in the outbox
    finally:
        stoppable_kafka.start()
    stack.start("intake")
    keys = {b["household_id"].encode() for b in households}

    async def arrived() -> bool:
        return len([r for r in await read_topic(kafka_bootstrap, "alfi.intake.events") if r.key in keys]) >= 10

    await wait_until(arrived, timeout=90)
    records = [r for r in await read_topic(kafka_bootstrap, "alfi.intake.events") if r.key in keys]
    assert len({decode(r.value)[0].id for r in records}) == len(records) == 10


async def test_several_workers_share_the_work_and_metrics_add_up(kafka_bootstrap, server_database_url, tmp_path):
    """intake with two worker processes: every request is answered and counted once in
    /metrics, whichever worker served it, and its events are published exactly once."""
    from bench.stack import service
    from tests.conftest import fresh_database

    async with fresh_database(server_database_url) as database_url:
        import asyncpg

        from services.common.auth import issue_token, migrate_auth

        conn = await asyncpg.connect(database_url)
        try:
            await migrate_auth(conn)
            token = await issue_token(conn, ["intake:write"], "workers")
        finally:
            await conn.close()
        env = {"DATABASE_URL": database_url, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "ALFI_WORKERS": "2",
               "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
        households = [enrolment() for _ in range(40)]
        with service("services.intake", 18031, env, tmp_path / "intake.log"):
            async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=10) as http:
                for body in households:
                    assert (await http.post("http://127.0.0.1:18031/v1/households", json=body)).status_code == 201
                metrics = (await http.get("http://127.0.0.1:18031/metrics")).text
            served = [line for line in metrics.splitlines()
                      if line.startswith("alfi_http_requests_total{") and 'route="/v1/households"' in line
                      and 'status="201"' in line]
            assert sum(float(line.rsplit(" ", 1)[1]) for line in served) == len(households)
            pids = {line.split('pid="')[1].split('"')[0] for line in metrics.splitlines() if 'pid="' in line}
            keys = {b["household_id"].encode() for b in households}

            async def published() -> bool:
                return len([r for r in await read_topic(kafka_bootstrap, "alfi.intake.events") if r.key in keys]) >= 40

            await wait_until(published, timeout=60)
        records = [r for r in await read_topic(kafka_bootstrap, "alfi.intake.events") if r.key in keys]
        assert len(records) == len({decode(r.value)[0].id for r in records}) == 40
        assert not pids  # aggregated across workers: no per-process series left in the exposition
        assert (tmp_path / "intake.log").read_text().count("Started server process") == 2
