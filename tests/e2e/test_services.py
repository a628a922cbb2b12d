"""The services as real processes: a household's journey, and a kill -9 with events pending."""

from __future__ import annotations

import asyncio

import httpx
import pytest

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


async def test_service_killed_with_events_pending_publishes_them_after_restart(stack, kafka, kafka_bootstrap):
    if kafka.local is None:
        pytest.skip("needs a broker this test session started and may stop (KAFKA_BOOTSTRAP_SERVERS is set)")
    households = [enrolment() for _ in range(10)]
    kafka.stop()
    try:
        async with httpx.AsyncClient(headers=stack.auth, timeout=10) as http:
            for body in households:
                assert (await http.post(f"{stack.url('intake')}/v1/households", json=body)).status_code == 201
        stack.kill("intake")  # kill -9, events still in the outbox
    finally:
        kafka.start()
    stack.start("intake")
    keys = {b["household_id"].encode() for b in households}

    async def arrived() -> bool:
        return len([r for r in await read_topic(kafka_bootstrap, "alfi.intake.events") if r.key in keys]) >= 10

    await wait_until(arrived, timeout=90)
    records = [r for r in await read_topic(kafka_bootstrap, "alfi.intake.events") if r.key in keys]
    assert len({decode(r.value)[0].id for r in records}) == len(records) == 10
