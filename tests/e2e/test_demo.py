"""The demo end to end: a realistic 2022-2024 through the public HTTP APIs gives the 2023
bilan exactly, even when stats is killed with -9 while working through its backlog."""

from __future__ import annotations

import asyncio
import os

import httpx
import pytest

from demo.__main__ import bilan, send
from demo.dataset import BILAN_2023, build
from tests import infra
from tests.conftest import fresh_database
from tests.e2e.conftest import _stack
from tests.support import wait_until

PORTS = {"intake": 18011, "casework": 18012, "veille": 18013, "stats": 18014}


@pytest.fixture(scope="module")
async def demo_stack(server_database_url: str, tmp_path_factory):
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        pytest.skip("the exact bilan needs empty topics: a broker of its own from the local launcher")
    with infra.own_local_kafka(19392) as kafka:
        async with fresh_database(server_database_url) as database_url:
            async for running in _stack(kafka.bootstrap, database_url, tmp_path_factory, PORTS,
                                        start=("intake", "casework", "veille")):
                yield running


async def test_demo_reproduces_the_bilan_across_a_kill_9_of_stats(demo_stack):
    base = {service: demo_stack.url(service) for service in PORTS}
    refusals = await send(build(), base, demo_stack.token)
    assert refusals == []

    # Live, not ready: stats is ready only once it has caught up with its backlog
    # (about 40,000 events), and the kill must come before that.
    demo_stack.start("stats", until="/health/live")
    async with httpx.AsyncClient(headers=demo_stack.auth) as http:
        async def part_way() -> bool:
            status = (await http.get(f"{base['stats']}/v1/projections/status")).json()
            applied = sum(p["position"] for p in status["partitions"])
            return applied > 0 and any(p["lag"] for p in status["partitions"])

        await wait_until(part_way, timeout=60, interval=0.05)
    demo_stack.kill("stats")  # kill -9, mid-way through the backlog
    demo_stack.start("stats", until="/health/live")

    report = await asyncio.wait_for(bilan(base, demo_stack.token, timeout=240), 300)
    assert {figure: report[figure] for figure in BILAN_2023} == BILAN_2023


async def test_stats_is_ready_only_once_caught_up(demo_stack):
    """After the demo above, a restarted stats answers 503 on /health/ready until it has
    read its topics to the end, then 200."""
    demo_stack.kill("stats")
    demo_stack.start("stats", until="/health/live")
    async with httpx.AsyncClient() as http:
        first = (await http.get(f"{demo_stack.url('stats')}/health/ready")).json()
        assert "caught_up" in first["checks"]

        async def ready() -> bool:
            return (await http.get(f"{demo_stack.url('stats')}/health/ready")).status_code == 200

        await wait_until(ready, timeout=60)
