"""Send the demo dataset through the services' public HTTP APIs, wait for stats to catch
up, and print the 2023 bilan from the reports API beside the published figures, and the
2023 veille follow-up the commands decided (actions, re-reviews).

Phases go in PHASES' order, each to the end before the next (its commands concurrently):
a phase's commands may need an earlier phase's (the follow-up phase completes and
cancels the actions the meetings decided). Each command names its service and path.

    make demo        (the stack running from `make run`)

Addresses: ALFI_INTAKE_URL, ALFI_CASEWORK_URL, ALFI_VEILLE_URL, ALFI_STATS_URL (default
the local ports); token: ALFI_TOKEN, else .local/dev-token written by `make run`.
Exit 1 when a command was refused or a figure differs.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp

from demo.dataset import BILAN_2023, PHASES, Dataset, build

REPO = Path(__file__).resolve().parents[1]
DEFAULT_URLS = {"intake": "http://127.0.0.1:8001", "casework": "http://127.0.0.1:8002",
                "veille": "http://127.0.0.1:8003", "stats": "http://127.0.0.1:8004"}
LABELS = {
    "households_followed": "households followed", "interviews_held": "interviews held",
    "social_workers_active": "social workers active", "veille_meetings": "veille meetings",
    "situations_reviewed": "situations reviewed in them", "workshops_held": "collective workshops",
    "rehousings": "young people rehoused", "rehousings_dalo": "  of which DALO priority",
    "rehousings_youth": "  of which youth",
}


def urls() -> dict[str, str]:
    return {s: os.environ.get(f"ALFI_{s.upper()}_URL", u).rstrip("/") for s, u in DEFAULT_URLS.items()}


def token() -> str:
    if os.environ.get("ALFI_TOKEN"):
        return os.environ["ALFI_TOKEN"]
    path = REPO / ".local" / "dev-token"
    if not path.exists():
        sys.exit("No token: start the stack with `make run` (it writes .local/dev-token) or set ALFI_TOKEN.")
    return path.read_text().strip()


async def send(dataset: Dataset, base: dict[str, str], bearer: str, concurrency: int = 24) -> list[str]:
    """Send every phase in order; retry what the services ask to retry. Return refusals."""
    refusals: list[str] = []
    headers = {"Authorization": f"Bearer {bearer}", "X-Correlation-ID": "demo-2023"}
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout,
                                     connector=aiohttp.TCPConnector(limit=concurrency)) as http:
        for phase in PHASES:
            queue = list(reversed(dataset.phases.get(phase, [])))
            statuses: Counter = Counter()
            started = time.perf_counter()

            async def worker() -> None:
                while queue:
                    service, method, path, body = queue.pop()
                    for attempt in range(60):
                        try:
                            async with http.request(method, base[service] + path, json=body) as response:
                                answer = await response.json(content_type=None)
                                if response.status == 409 and answer.get("kind") == "household_not_yet_known":
                                    await asyncio.sleep(float(response.headers.get("Retry-After", "1")) / 4)
                                    continue
                                statuses[response.status] += 1
                                if response.status >= 400:
                                    refusals.append(f"{method} {service}{path}: {response.status} {answer.get('detail')}")
                                break
                        except (aiohttp.ClientError, asyncio.TimeoutError):
                            await asyncio.sleep(min(0.2 * (attempt + 1), 2))
                    else:
                        refusals.append(f"{method} {service}{path}: gave up after retries")

            await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed = time.perf_counter() - started
            print(f"  {phase:<12} {sum(statuses.values()):>6} commands in {elapsed:5.1f}s  {dict(statuses)}",
                  flush=True)
    return refusals


async def already_sent(dataset: Dataset, base: dict[str, str], bearer: str) -> bool:
    """Whether the dataset's last erased household is already erased at intake."""
    _, _, path, _ = dataset.phases["erasures"][-1]
    household = path.split("/")[3]
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {bearer}"}) as http:
        async with http.get(f"{base['intake']}/v1/households/{household}") as response:
            return response.status == 200 and (await response.json()).get("erased_on") is not None


async def bilan(base: dict[str, str], bearer: str, year: int = 2023, timeout: float = 300) -> dict:
    """The year's report once stats has caught up: every partition's lag 0 and the figures
    unchanged over two consecutive reads."""
    headers = {"Authorization": f"Bearer {bearer}"}
    deadline = time.monotonic() + timeout
    previous = None
    async with aiohttp.ClientSession(headers=headers) as http:
        while time.monotonic() < deadline:
            async with http.get(f"{base['stats']}/v1/projections/status") as response:
                status = await response.json()
            async with http.get(f"{base['stats']}/v1/reports/activity", params={"year": year}) as response:
                report = await response.json()
            caught_up = status["partitions"] and all(p["lag"] == 0 for p in status["partitions"])
            if caught_up and report == previous and all(report[k] == v for k, v in BILAN_2023.items()):
                return report
            if caught_up and report == previous and time.monotonic() > deadline - timeout + 60:
                return report  # caught up and stable for a minute: it will not change
            previous = report
            await asyncio.sleep(2)
    return previous or {}


async def report_of(base: dict[str, str], bearer: str, path: str, **params: str | int) -> dict:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {bearer}"}) as http:
        async with http.get(f"{base['stats']}{path}", params=params) as response:
            return await response.json() if response.status == 200 else {}


def print_follow_up(dataset: Dataset, follow_up: dict, year: int = 2023) -> bool:
    """The year's veille follow-up from the reports API beside what the commands decided
    (Dataset.actions); True when they agree."""
    actions = [a for a in dataset.actions() if a.decided_on.year == year]
    completed = [a for a in actions if a.completed_on is not None]
    late = sum(a.completed_on > a.due_on for a in completed)
    cancelled = sum(a.cancelled_on is not None for a in actions)
    sent = {"actions_decided": len(actions), "actions_completed_on_time": len(completed) - late,
            "actions_completed_late": late, "actions_cancelled": cancelled,
            "actions_open": len(actions) - len(completed) - cancelled}
    figures = {f["figure"]: f for f in follow_up.get("figures", [])}
    print(f"\n{year} veille follow-up, from the stats reports API" + " " * 20 + "platform   sent")
    ok = True
    for figure, f in figures.items():
        expected = sent.get(figure)
        ok &= expected is None or f["value"] == expected
        mark = "" if expected is None else ("ok" if f["value"] == expected else "DIFFERS")
        print(f"  {f['label']:<58} {f['value'] if f['value'] is not None else '-':>6}   "
              f"{'' if expected is None else expected:>6}   {mark}")
    re_reviews = sum(r.scheduled_on.year == year for r in dataset.re_reviews())
    print(f"  re-reviews scheduled (sent): {re_reviews}")
    return ok and bool(figures)


def print_data_quality(quality: dict, on: str) -> None:
    print(f"\nData quality as of {on}, from the stats reports API")
    for check in quality.get("checks", []):
        print(f"  {check.get('label', check.get('check')):<60} {check.get('count', '-'):>6}")


def print_bilan(report: dict) -> bool:
    print("\n2023 bilan, from the stats reports API     platform   published")
    ok = True
    for figure, label in LABELS.items():
        expected = BILAN_2023[figure]
        got = report.get(figure)
        ok &= got == expected
        mark = "ok" if got == expected else "DIFFERS"
        print(f"  {label:<38} {got if got is not None else '-':>9,}   {expected:>9,}   {mark}".replace(",", " "))
    for figure in ("situations_escalated", "workshop_participants"):
        print(f"  {figure.replace('_', ' '):<38} {report.get(figure, '-'):>9,}".replace(",", " "))
    return ok


async def main() -> int:
    base, bearer = urls(), token()
    dataset = build()
    total = sum(len(v) for v in dataset.phases.values())
    refusals: list[str] = []
    if await already_sent(dataset, base, bearer):
        # Creates would replay harmlessly, but closures and corrections would answer 409.
        print("The demo dataset was already sent to this stack: printing the bilan.")
    else:
        print(f"Sending {total} commands (2022-2024) through intake, casework and veille...")
        started = time.perf_counter()
        refusals = await send(dataset, base, bearer)
        print(f"  sent in {time.perf_counter() - started:.1f}s; waiting for stats to catch up...")
    report = await bilan(base, bearer)
    ok = print_bilan(report)
    ok &= print_follow_up(dataset, await report_of(base, bearer, "/v1/reports/follow-up", year=2023))
    print_data_quality(await report_of(base, bearer, "/v1/reports/data-quality", on="2023-12-31"), "2023-12-31")
    for refusal in refusals[:20]:
        print("refused:", refusal)
    if refusals:
        print(f"{len(refusals)} commands refused")
    print("\nThe 2023 bilan is reproduced exactly." if ok and not refusals else "\nMISMATCH: see above.")
    return 0 if ok and not refusals else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
