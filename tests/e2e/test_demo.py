"""The demo end to end: a realistic 2022-2024 through the public HTTP APIs gives the 2023
bilan exactly, even when stats is killed with -9 while working through its backlog; and
its data-quality report lists exactly what a direct count over the demo's commands finds."""

from __future__ import annotations

from __future__ import annotations

import asyncio
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from statistics import median

import httpx
import pytest

from demo.__main__ import bilan, send
from prometheus_client.parser import text_string_to_metric_families

from demo.dataset import BILAN_2023, TERRITORIES, Dataset, build
from services.stats.bilan import FOLLOW_UP_COUNTS, FOLLOW_UP_MEDIANS
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


@dataclass
class Sent:
    """What the demo's commands say, read directly from them (not from the services)."""

    households: dict = field(default_factory=dict)  # id -> enrolment body
    closures: dict = field(default_factory=dict)  # household id -> closure body
    erased: set = field(default_factory=set)
    interviews: dict = field(default_factory=dict)  # id -> body
    cancelled: set = field(default_factory=set)  # interview ids
    situations: dict = field(default_factory=dict)  # id -> escalation body
    resolved: dict = field(default_factory=dict)  # situation id -> date
    first_review: dict = field(default_factory=dict)  # situation id -> its first meeting's date

    @classmethod
    def of(cls, dataset: Dataset) -> Sent:
        sent = cls()
        for commands in dataset.phases.values():
            for _, method, path, body in commands:
                parts = path.strip("/").split("/")  # v1, collection, id, sub-resource
                if path == "/v1/households":
                    sent.households[body["household_id"]] = body
                elif parts[1] == "households" and parts[-1] == "closure":
                    sent.closures[parts[2]] = body
                elif parts[1] == "households" and method == "DELETE":
                    sent.erased.add(parts[2])
                elif path == "/v1/interviews":
                    sent.interviews[body["interview_id"]] = body
                elif parts[1] == "interviews" and parts[-1] == "cancellation":
                    sent.cancelled.add(parts[2])
                elif path == "/v1/situations":
                    sent.situations[body["situation_id"]] = body
                elif parts[1] == "situations" and parts[-1] == "resolution":
                    sent.resolved[parts[2]] = date.fromisoformat(body["resolved_on"])
                elif path == "/v1/meetings":
                    held = date.fromisoformat(body["held_on"])
                    for review in body["reviewed"]:
                        situation = review["situation_id"]
                        sent.first_review[situation] = min(sent.first_review.get(situation, held), held)
        return sent


def expected_quality(dataset: Dataset, on: date, interview_days: int = 90, referent_days: int = 90,
                     review_days: int = 60) -> dict[str, dict[str, tuple[str, str]]]:
    """check -> id -> (programme, territory) of every record the data-quality report should
    list as of `on` (services/stats/quality.py's definitions, default thresholds), counted
    directly over the demo's commands: enrolments, closures, erasures, interviews and their
    cancellations, escalations, resolutions and meetings (the demo changes no referent)."""
    sent, day = Sent.of(dataset), date.fromisoformat
    held = [(b["household_id"], b["worker_id"], day(b["held_on"])) for i, b in sent.interviews.items()
            if i not in sent.cancelled]
    interviewed = {h for h, _, d in held if on - timedelta(interview_days) < d <= on}
    active = {w for _, w, d in held if on - timedelta(referent_days) < d <= on}
    live = {h: b for h, b in sent.households.items() if h not in sent.erased}
    closed = {h: day(sent.closures[h]["closed_on"]) for h in live if h in sent.closures}
    open_ = [h for h, b in live.items() if day(b["enrolled_on"]) <= on and (h not in closed or closed[h] > on)]

    def where(household: str) -> tuple[str, str]:
        return live[household]["programme"], live[household]["territory"]

    return {
        "no_recent_interview": {h: where(h) for h in open_ if h not in interviewed
                                and day(live[h]["enrolled_on"]) <= on - timedelta(interview_days)},
        "closure_outcome_unknown": {h: where(h) for h, d in closed.items()
                                    if d <= on and not sent.closures[h].get("outcome")},
        "referent_inactive": {h: where(h) for h in open_ if live[h]["referent_worker_id"] not in active},
        "situation_not_reviewed": {
            s: where(b["household_id"]) for s, b in sent.situations.items()
            if b["household_id"] in live and day(b["escalated_on"]) <= on - timedelta(review_days)
            and not (s in sent.resolved and sent.resolved[s] <= on)
            and not (s in sent.first_review and sent.first_review[s] <= on)},
    }


def expected_follow_up(dataset: Dataset, year: int) -> dict[str | None, dict[str, int | float | None]]:
    """territory (None: all) -> follow-up figure of `year` (bilan.follow_up's definitions),
    from the demo's actions (Dataset.actions) and its escalations, meetings and resolutions;
    erased households count, as in every figure."""
    sent, end = Sent.of(dataset), date(year, 12, 31)
    territory_of = {h: b["territory"] for h, b in sent.households.items()}
    facts: dict[str | None, Counter] = {}
    delays: dict[str | None, dict[str, list[int]]] = {}
    for action in dataset.actions():
        counted = []
        if action.decided_on.year == year:
            done = action.completed_on is not None and (action.cancelled_on is None
                                                        or action.completed_on <= action.cancelled_on)
            counted = ["actions_decided", "actions_completed_on_time" if done and action.completed_on <= action.due_on
                       else "actions_completed_late" if done else "actions_cancelled" if action.cancelled_on
                       else "actions_open"]
        if (action.decided_on <= end and action.due_on < end and not (action.completed_on and action.completed_on <= end)
                and not (action.cancelled_on and action.cancelled_on <= end)):
            counted.append("actions_overdue")
        for where in (None, action.territory):
            facts.setdefault(where, Counter()).update(counted)
    for situation, body in sent.situations.items():
        first = sent.first_review.get(situation)
        measured = []
        if first and date.fromisoformat(body["escalated_on"]).year == year:
            measured.append(("median_days_to_first_review", (first - date.fromisoformat(body["escalated_on"])).days))
        if first and first.year == year and situation in sent.resolved:
            measured.append(("median_days_to_resolution", (sent.resolved[situation] - first).days))
        for where in (None, territory_of[body["household_id"]]):
            for figure, days in measured:
                delays.setdefault(where, {}).setdefault(figure, []).append(days)
    out = {}
    for where in set(facts) | set(delays):
        figures = {f: facts.get(where, Counter())[f] for f in FOLLOW_UP_COUNTS}
        for figure in FOLLOW_UP_MEDIANS:
            days = delays.get(where, {}).get(figure)
            middle = median(days) if days else None
            figures[figure] = None if middle is None else int(middle) if float(middle).is_integer() else round(middle, 1)
        out[where] = figures
    return out


def counted_by(expected: dict[str, dict[str, tuple[str, str]]], position: int) -> dict[str, dict[str, int]]:
    """value (programme: 0, territory: 1) -> check -> count, as the report's rows give them."""
    counts: dict[str, Counter] = {}
    for check, found in expected.items():
        for where in found.values():
            counts.setdefault(where[position], Counter())[check] += 1
    return {value: {check: counts[value][check] for check in expected} for value in counts}


async def test_the_data_quality_report_matches_a_count_over_the_demo_s_commands(demo_stack):
    """After the tests above (the demo sent, stats caught up): every check's ids and counts
    as of two days, and the Prometheus gauges as of today."""
    dataset = build()
    async with httpx.AsyncClient(headers=demo_stack.auth, timeout=60) as http:
        for on in (date(2023, 12, 31), date(2024, 6, 30)):
            expected = expected_quality(dataset, on)
            response = await http.get(f"{demo_stack.url('stats')}/v1/reports/data-quality",
                                      params={"on": on.isoformat(), "ids": "true"})
            assert response.status_code == 200, response.text
            report = response.json()
            assert {c["check"]: set(c["ids"]) for c in report["checks"]} == {
                check: set(found) for check, found in expected.items()}, on
            assert {c["check"]: c["count"] for c in report["checks"]} == {k: len(v) for k, v in expected.items()}
            assert {r["value"]: r["counts"] for r in report["by_programme"]} == counted_by(expected, 0)
            assert {r["value"]: r["counts"] for r in report["by_territory"]} == counted_by(expected, 1)

        # stats counts them as of today every minute for Prometheus.
        today = {check: len(found) for check, found in expected_quality(dataset, date.today()).items()}

        async def gauges() -> bool:
            text = (await http.get(f"{demo_stack.url('stats')}/metrics")).text
            found = {s.labels["check"]: s.value for family in text_string_to_metric_families(text)
                     if family.name == "alfi_data_quality_issues" for s in family.samples}
            return found == today

        await wait_until(gauges, timeout=120, interval=2)


async def test_the_follow_up_figures_match_a_count_over_the_demo_s_commands(demo_stack):
    """The 2023 follow-up (and 2022 beside it), in all and by territory, as counted from the
    demo's actions, escalations, meetings and resolutions."""
    dataset = build()
    async with httpx.AsyncClient(headers=demo_stack.auth, timeout=60) as http:
        response = await http.get(f"{demo_stack.url('stats')}/v1/reports/follow-up", params={"year": 2023})
    assert response.status_code == 200, response.text
    document = response.json()
    now, before = expected_follow_up(dataset, 2023), expected_follow_up(dataset, 2022)
    assert now[None]["actions_decided"] > 100 and now[None]["actions_overdue"] > 0  # the demo decides actions
    assert {f["figure"]: f["value"] for f in document["figures"]} == now[None]
    assert {f["figure"]: f["previous"] for f in document["figures"]} == before[None]
    empty = {**dict.fromkeys(FOLLOW_UP_COUNTS, 0), **dict.fromkeys(FOLLOW_UP_MEDIANS)}
    rows = {r["value"]: r for r in document["by_territory"]}
    for territory in TERRITORIES:
        row = rows.get(territory, {"figures": empty, "previous": empty})
        assert row["figures"] == now.get(territory, empty), territory
        assert row["previous"] == before.get(territory, empty), territory
