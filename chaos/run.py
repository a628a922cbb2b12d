"""One chaos run, from the stack's start to its summary (`python -m chaos`, and the
e2e test with a shorter one)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .faults import FaultLog, carry_out, schedule
from .load import Command, Sender, Tally, plan
from .stack import CLI_PORTS, SERVICES, Ports, Stack
from .verify import Findings, check, settle


@dataclass(frozen=True)
class Options:
    seed: int = 2023
    duration: float = 330.0  # seconds of load and faults
    kills: int = 55  # kill -9 of a service
    broker_outages: int = 5  # of the single broker, or of one node with `cluster`
    pg_crashes: int = 2
    cluster: bool = False
    share: float = 0.2  # of the demo's households (and of its workshops)
    kafka_share: float = 0.3  # of the command chains sent as Kafka commands
    http_clients: int = 16
    settle_timeout: float = 180.0
    ports: Ports = CLI_PORTS
    logs: Path | None = None  # the services' logs; a temporary directory when None


@dataclass
class Report:
    options: Options
    commands: list[Command]
    tally: Tally
    faults: FaultLog
    findings: Findings
    settled: bool
    settle_seconds: float
    pending: str
    kills: int  # of a live process
    restarts: int
    exits: int
    duration: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def server_errors(self) -> int:
        """Answers that are failures whatever the fault: 5xx other than 503."""
        return sum(n for status, n in self.tally.statuses.items() if status >= 500 and status != 503)

    @property
    def ok(self) -> bool:
        return not self.failures()

    def failures(self) -> list[str]:
        f = self.findings
        reasons = []
        if not self.settled:
            reasons.append(f"the stack did not settle ({self.pending})")
        if self.server_errors:
            reasons.append(f"{self.server_errors} HTTP 5xx other than 503")
        if self.tally.refusals:
            reasons.append(f"{len(self.tally.refusals)} commands refused or given up")
        for what, found in (("lost", f.lost), ("doubled", f.doubled), ("unexpected", f.unexpected)):
            if found:
                reasons.append(f"{len(found)} facts {what}")
        if f.figures_exact != f.figures_total:
            reasons.append(f"{f.figures_total - f.figures_exact} figures inexact")
        if f.rows_exact != f.rows_total:
            reasons.append(f"{f.rows_total - f.rows_exact} projection rows differ")
        if sum(f.dead_letters.values()):
            reasons.append(f"{sum(f.dead_letters.values())} dead letters")
        if f.unreadable:
            reasons.append(f"{f.unreadable} unreadable events")
        return reasons + self.problems

    def summary(self) -> list[str]:
        o, t, f = self.options, self.tally, self.findings
        sent = [c for c in self.commands if c.outcome not in ("", "skipped")]
        accepted = [c for c in self.commands if c.accepted]
        http = sum(c.channel == "http" for c in accepted)
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(t.statuses.items()))
        errors = ", ".join(f"{k} {n}" for k, n in sorted(t.errors.items())) or "none"
        confirmed = ", ".join(f"{k} {n}" for k, n in sorted(t.confirmed.items())) or "none"
        outage = "node kills" if o.cluster else "broker outages"
        return [
            f"seed {o.seed}, {'three-broker cluster (RF 3, min ISR 2)' if o.cluster else 'single broker'};"
            f" faults: {self.faults.done['service']} service kills ({self.kills} of a live process;"
            f" restarts {self.restarts}, exits on their own {self.exits}), {self.faults.done['broker']} {outage},"
            f" {self.faults.done['postgres']} PostgreSQL crashes",
            f"commands: {len(sent)} sent, {len(accepted)} accepted ({http} HTTP, {len(accepted) - http} Kafka),"
            f" {len(t.refusals)} refused or given up, {sum(c.outcome == 'skipped' for c in self.commands)} skipped;"
            f" unknown outcomes confirmed: {confirmed}",
            f"HTTP: {sum(t.statuses.values())} answers ({statuses}); 500s: {self.server_errors};"
            f" 503s: {t.unavailable_with_retry_after} with Retry-After, {t.unavailable_without_retry_after} without;"
            f" 409 household_not_yet_known retried: {t.not_yet_known}; errors: {errors}",
            f"figures: {f.figures_exact}/{f.figures_total} exact; projection rows: {f.rows_exact}/{f.rows_total};"
            f" events: {f.facts_expected} facts expected, lost {len(f.lost)}, doubled {len(f.doubled)},"
            f" unexpected {len(f.unexpected)} (same id republished: {f.republished});"
            f" dead letters: {sum(f.dead_letters.values())}",
            f"{'settled' if self.settled else 'not settled'} after {self.settle_seconds:.0f}s;"
            f" duration {self.duration:.0f}s: "
            + ("PASS" if self.ok else "FAIL: " + "; ".join(self.failures())),
        ]

    def details(self, limit: int = 15) -> list[str]:
        f = self.findings
        lines = []
        if f.by_type:
            lines.append("events by type (expected / seen / lost / doubled):")
            lines += [f"  {kind:<32} {c['expected']:>6} {c['seen']:>6} {c['lost']:>5} {c['doubled']:>5}"
                      for kind, c in sorted(f.by_type.items())]
        for title, items in (("refused", self.tally.refusals), ("lost", f.lost), ("doubled", f.doubled),
                             ("unexpected", f.unexpected), ("figures differing", f.figure_mismatches),
                             ("projection rows differing", f.row_mismatches), ("excused", f.excused),
                             ("dead letters", [f"{t} {k}: {n}" for (t, k), n in f.dead_letters.items()])):
            if items:
                lines.append(f"{title} ({len(items)}):")
                lines += [f"  {item}" for item in list(items)[:limit]]
        for kind, seconds in sorted(self.faults.recovery.items()):
            lines.append(f"{kind} restarts took {min(seconds):.1f}-{max(seconds):.1f}s")
        return lines


def years_of(commands: list[Command]) -> list[int]:
    return sorted({int(v[:4]) for c in commands for k, v in c.data.items() if k.endswith("_on")})


async def run(options: Options, out: Callable[[str], None] = print) -> Report:
    started = time.monotonic()
    commands = plan(options.seed, options.share, options.kafka_share)
    faults = schedule(options.seed, options.duration, options.kills, options.broker_outages, options.pg_crashes,
                      options.cluster)
    out(f"chaos: seed {options.seed}, {len(commands)} commands over {options.duration * 0.9:.0f}s,"
        f" {len(faults)} faults over {options.duration:.0f}s; starting a stack of its own...")
    async with Stack(options.ports, options.cluster, options.logs) as stack:
        out(f"stack up in {time.monotonic() - started:.0f}s: Kafka {stack.bootstrap}, PostgreSQL"
            f" 127.0.0.1:{options.ports.postgres}, services {', '.join(stack.url(s) for s in SERVICES)};"
            f" logs in {stack.logs}")
        sender = Sender({s: stack.url(s) for s in SERVICES}, stack.token, stack.bootstrap,
                        correlation=f"chaos-{options.seed}", http_clients=options.http_clients)
        log = FaultLog(echo=lambda line: out(f"  {line}"))
        begun = time.monotonic()
        load = asyncio.create_task(sender.send_all(commands, options.duration * 0.9), name="chaos-load")
        injecting = asyncio.create_task(carry_out(stack, faults, log, begun), name="chaos-faults")
        progress = asyncio.create_task(_progress(commands, begun, out), name="chaos-progress")
        try:
            await asyncio.gather(load, injecting)
        finally:
            for task in (load, injecting, progress):
                task.cancel()
            await asyncio.gather(load, injecting, progress, return_exceptions=True)
        out(f"load and faults done in {time.monotonic() - begun:.0f}s; waiting for the stack to settle...")
        settled, settle_seconds, pending = await settle(stack, options.settle_timeout)
        findings = await check(stack, commands, years_of(commands))
        report = Report(options, commands, sender.tally, log, findings, settled, settle_seconds, pending,
                        stack.kills, stack.restarts, stack.exits)
    report.duration = time.monotonic() - started
    return report


async def _progress(commands: list[Command], begun: float, out: Callable[[str], None], every: float = 30) -> None:
    while True:
        await asyncio.sleep(every)
        accepted = sum(c.accepted for c in commands)
        finished = sum(c.outcome != "" for c in commands)
        out(f"t+{time.monotonic() - begun:.0f}s: {accepted}/{len(commands)} accepted, {finished} finished")
