"""A real Prometheus server scrapes the four services: every target is up, the key
series exist, and they move when the demo runs through them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import fresh_database
from tests.e2e.conftest import _stack
from demo.__main__ import send
from demo.dataset import build
from tests.support import wait_until

PORTS = {"intake": 18021, "casework": 18022, "veille": 18023, "stats": 18024}
PROMETHEUS_PORT = 19090
RULES = Path(__file__).resolve().parents[2] / "deploy/prometheus/alerts.yml"


@pytest.fixture(scope="module")
async def watched(kafka_bootstrap, server_database_url, tmp_path_factory):
    binary = shutil.which("prometheus")
    assert binary, "prometheus is missing: `make install` installs Debian's prometheus package"
    async with fresh_database(server_database_url) as database_url:
        async for stack in _stack(kafka_bootstrap, database_url, tmp_path_factory, PORTS, start=tuple(PORTS)):
            work = tmp_path_factory.mktemp("prometheus")
            (work / "alerts.yml").write_text(RULES.read_text())
            targets = "\n".join(
                f'      - targets: ["127.0.0.1:{port}"]\n        labels: {{service: {name}}}'
                for name, port in PORTS.items())
            (work / "prometheus.yml").write_text(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [alerts.yml]\n"
                f"scrape_configs:\n  - job_name: alfi\n    static_configs:\n{targets}\n")
            process = subprocess.Popen(
                [binary, f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={work / 'data'}",
                 f"--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}"],
                stdout=subprocess.DEVNULL, stderr=(work / "prometheus.log").open("wb"))
            try:
                yield stack
            finally:
                process.terminate()
                process.wait(timeout=30)


async def query(expression: str) -> list[dict]:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"http://127.0.0.1:{PROMETHEUS_PORT}/api/v1/query", params={"query": expression})
    response.raise_for_status()
    return response.json()["data"]["result"]


async def value(expression: str) -> float:
    result = await query(expression)
    return float(result[0]["value"][1]) if result else 0.0


async def test_every_target_is_up_and_the_key_series_move(watched):
    async def all_up() -> bool:
        with_up = await query('up{job="alfi"} == 1')
        return {r["metric"]["service"] for r in with_up} == set(PORTS)

    try:
        await wait_until(lambda: _quietly(all_up), timeout=60, interval=0.5)
    except AssertionError:
        async with httpx.AsyncClient() as http:
            targets = (await http.get(f"http://127.0.0.1:{PROMETHEUS_PORT}/api/v1/targets")).json()
        raise AssertionError([(t["labels"]["service"], t["health"], t["lastError"])
                              for t in targets["data"]["activeTargets"]]) from None

    before = await value('sum(alfi_commands_total{outcome="accepted"})')
    dataset = build()
    commands = sum(len(phase) for phase in dataset.phases.values())
    assert await send(dataset, {name: watched.url(name) for name in PORTS}, watched.token) == []  # the demo
    answers: list = []  # stats may still be applying the demo: a slow answer is retried, and told
    async with httpx.AsyncClient(headers=watched.auth, timeout=30) as http:
        async def answered() -> bool:
            try:
                status = (await http.get(f"{watched.url('stats')}/v1/reports/activity", params={"year": 2023})
                          ).status_code
            except httpx.TransportError as error:
                status = type(error).__name__
            answers.append(status)
            return status == 200

        try:
            await wait_until(answered, timeout=90, interval=1)
        except AssertionError:
            raise AssertionError(f"/v1/reports/activity never answered 200: {answers}") from None

    async def moved() -> bool:
        return (await value('sum(alfi_commands_total{outcome="accepted"})') >= before + commands
                and await value('sum(alfi_outbox_published_events_total)') >= commands
                and await value('sum(alfi_consumer_applied_events_total{consumer="projector"})') >= commands
                and await value('count(alfi_projection_last_event_timestamp_seconds)') == 3)

    await wait_until(lambda: _quietly(moved), timeout=60, interval=0.5)
    for series in ("alfi_outbox_backlog_events", "alfi_outbox_oldest_pending_age_seconds",
                   "alfi_consumer_lag_messages", "alfi_http_request_duration_seconds_bucket",
                   'alfi_http_requests_total{route="/v1/reports/activity", status="200"}',
                   # FastStream's middleware on the relays' publishes
                   'faststream_published_messages_total{app_name="alfi-intake"}',
                   "faststream_published_messages_duration_seconds_bucket"):
        async def scraped(series: str = series) -> bool:  # the next scrape after the read above
            return bool(await query(series))

        try:
            await wait_until(lambda: _quietly(scraped), timeout=30, interval=0.5)
        except AssertionError:
            raise AssertionError(f"{series} is not scraped") from None
    rules = (await _rules())["groups"][0]["rules"]
    assert {r["name"] for r in rules} >= {"AlfiServiceDown", "AlfiDeadLetter"}
    assert all(r["health"] == "ok" for r in rules)


async def _quietly(predicate) -> bool:
    try:
        return await predicate()
    except httpx.HTTPError:
        return False  # Prometheus is still starting


async def _rules() -> dict:
    async with httpx.AsyncClient() as http:
        return (await http.get(f"http://127.0.0.1:{PROMETHEUS_PORT}/api/v1/rules")).json()["data"]
