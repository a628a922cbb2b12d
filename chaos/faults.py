"""The fault schedule of a run, drawn from its seed, and the task that carries it out.

Three kinds of fault, at seeded moments over the run's duration:

- `service`: kill -9 of one service's process group; supervision starts it again after
  `down` seconds (0-2 s: an orchestrator restarting a crashed pod);
- `broker`: kill -9 of the single broker, or with a cluster of one node, restarted after
  `down` seconds (then the JVM's own start-up);
- `postgres`: an immediate stop of PostgreSQL (no checkpoint: crash recovery on the next
  start), started again after `down` seconds.

Service kills land anywhere, also during an infrastructure outage; broker and PostgreSQL
outages take turns, one at a time, spread evenly with some jitter.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from .stack import SERVICES, Stack


@dataclass(frozen=True)
class Fault:
    at: float  # seconds after the start of the load
    kind: str  # "service", "broker" or "postgres"
    target: str  # the service, or the cluster node ("1".."3"); "" for the single broker or PostgreSQL
    down: float  # seconds before it is started again

    def describe(self) -> str:
        what = {"service": f"kill -9 {self.target}", "broker": f"kill -9 broker {self.target}".rstrip(),
                "postgres": "crash PostgreSQL"}[self.kind]
        return f"t+{self.at:5.1f}s {what}, down {self.down:.1f}s"


def schedule(seed: int, duration: float, kills: int, broker_outages: int, pg_crashes: int,
             cluster: bool = False) -> list[Fault]:
    """The run's faults in time order. The same arguments give the same schedule."""
    rng = random.Random(f"chaos-faults:{seed}")
    faults = [Fault(rng.uniform(2, duration - 5), "service", rng.choice(SERVICES), rng.uniform(0, 2))
              for _ in range(kills)]
    outages = ["broker"] * broker_outages + ["postgres"] * pg_crashes
    rng.shuffle(outages)
    slot = duration / max(len(outages), 1)
    for n, kind in enumerate(outages):
        at = slot * n + rng.uniform(0.15, 0.45) * slot
        if kind == "broker":
            target = str(rng.randint(1, 3)) if cluster else ""
            faults.append(Fault(at, kind, target, rng.uniform(2, 6) if cluster else rng.uniform(2, 8)))
        else:
            faults.append(Fault(at, kind, "", rng.uniform(2, 6)))
    return sorted(faults, key=lambda f: f.at)


@dataclass
class FaultLog:
    done: Counter = field(default_factory=Counter)  # kind -> how many carried out
    lines: list[str] = field(default_factory=list)
    recovery: dict[str, list[float]] = field(default_factory=dict)  # kind -> seconds to start again
    echo: Callable[[str], None] | None = None  # tells each line as it happens

    def tell(self, line: str) -> None:
        self.lines.append(line)
        if self.echo:
            self.echo(line)

    def note(self, fault: Fault, recovered_in: float | None = None) -> None:
        self.done[fault.kind] += 1
        self.tell(fault.describe() + (f", back in {recovered_in:.1f}s" if recovered_in is not None else ""))
        if recovered_in is not None:
            self.recovery.setdefault(fault.kind, []).append(recovered_in)


async def carry_out(stack: Stack, faults: list[Fault], log: FaultLog, started: float) -> None:
    """Service kills on one timeline, infrastructure outages on another (one at a time:
    an outage lasts its downtime plus the restart)."""
    services = [f for f in faults if f.kind == "service"]
    outages = [f for f in faults if f.kind != "service"]
    await asyncio.gather(_kills(stack, services, log, started), _outages(stack, outages, log, started))


async def _until(started: float, at: float) -> None:
    await asyncio.sleep(max(0.0, started + at - time.monotonic()))


async def _kills(stack: Stack, faults: list[Fault], log: FaultLog, started: float) -> None:
    for fault in faults:
        await _until(started, fault.at)
        await asyncio.to_thread(stack.kill, fault.target, fault.down)
        log.note(fault)


async def _outages(stack: Stack, faults: list[Fault], log: FaultLog, started: float) -> None:
    for fault in faults:
        await _until(started, fault.at)
        node = int(fault.target) if fault.target else None
        if fault.kind == "broker":
            down, up = (lambda: stack.broker_down(node)), (lambda: stack.broker_up(node))
        else:
            down, up = stack.postgres_crash, stack.postgres_up
        await asyncio.to_thread(down)
        await asyncio.sleep(fault.down)
        restarting = time.monotonic()
        for attempt in range(5):
            try:
                await asyncio.to_thread(up)
                break
            except Exception as error:  # noqa: BLE001 - a failed restart is retried, and told
                log.tell(f"  restart of {fault.kind} failed ({type(error).__name__}: {error}), retrying")
                await asyncio.sleep(2 * (attempt + 1))
        log.note(fault, time.monotonic() - restarting)
