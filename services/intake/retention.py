"""The retention clock: a household's personal data is erased `ALFI_RETENTION_DAYS` (730)
after its last contact, the period the CNIL référentiel for social accompaniment sets
(data kept two years after the last contact).

Last contact: the latest of the enrolment, the closure and the contacts casework and
veille reported (contacts.py). A household is due when that date is before today less
the period. Each due household is erased through the same handler as
`DELETE /v1/households/{id}/personal-data`, one household per transaction, after checking
in that transaction that it is still due (a contact may have arrived since the listing).
So a run stopped at any instant leaves the done ones done, and the next run continues
with the rest; erasing is a no-op for an erased household. One run at a time across
instances: a PostgreSQL advisory lock held for the run (a dry run only reads: no lock).

intake runs it every `ALFI_RETENTION_INTERVAL_SECONDS` (a day), the first time
`ALFI_RETENTION_FIRST_RUN_SECONDS` (5 minutes) after start, unless
`ALFI_RETENTION_ENABLED=false`. By hand:

    python -m services.intake.retention [--dry-run] [--days N] [--today YYYY-MM-DD]

prints the due households (pseudonymous id and last contact date) and, without
`--dry-run`, erases them and prints the counts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import NamedTuple
from uuid import UUID, uuid4

import asyncpg
import structlog
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from alfi_contracts.commands import ErasePersonalData
from services.common import faults
from services.common.commands import CommandBus, Context
from services.common.db import create_pool
from services.common.logging import configure_logging
from services.common.metrics import RETENTION_DUE, RETENTION_ERASED, RETENTION_FAILURES, RETENTION_LAST_RUN
from services.common.service import run_like_a_service
from services.common.settings import ServiceSettings

from .contacts import CONSUMER
from .handlers import HANDLERS

log = structlog.get_logger("alfi.retention")

LOCK = "retention:intake"


class RetentionSettings(BaseSettings):
    """`ALFI_RETENTION_*` (read here rather than in ServiceSettings: only intake has them)."""

    model_config = SettingsConfigDict(env_prefix="ALFI_RETENTION_", extra="ignore", frozen=True)

    enabled: bool = True
    days: int = Field(730, ge=1)
    interval_seconds: float = Field(86400, gt=0)
    first_run_seconds: float = Field(300, ge=0)


# ---------------------------------------------------------------- the rule (pure)


class Due(NamedTuple):
    household_id: UUID
    last_contact_on: date


def cutoff(today: date, days: int) -> date:
    """The first day a last contact must reach for the household's data to be kept."""
    return today - timedelta(days=days)


def last_contact(enrolled_on: date, closed_on: date | None, contacted_on: date | None) -> date:
    return max(d for d in (enrolled_on, closed_on, contacted_on) if d is not None)


def is_due(last_contact_on: date, today: date, days: int) -> bool:
    return last_contact_on < cutoff(today, days)


# ---------------------------------------------------------------- loading and erasing

_HOUSEHOLDS = (
    "SELECT h.household_id, h.enrolled_on, h.closed_on, h.erased_on, c.last_contact_on AS contacted_on"
    " FROM households h LEFT JOIN contacts c USING (household_id)"
)


async def due(conn: asyncpg.Connection, today: date, days: int) -> list[Due]:
    """The households not erased whose last contact is before today less `days`, oldest first."""
    # A last contact is never before the enrolment: only those enrolled before the cutoff
    # can be due (a narrowing in SQL; `is_due` decides).
    rows = await conn.fetch(_HOUSEHOLDS + " WHERE h.erased_on IS NULL AND h.enrolled_on < $1",
                            cutoff(today, days))
    found = [Due(r["household_id"], last_contact(r["enrolled_on"], r["closed_on"], r["contacted_on"]))
             for r in rows]
    return sorted((d for d in found if is_due(d.last_contact_on, today, days)),
                  key=lambda d: (d.last_contact_on, d.household_id))


async def erase_if_due(pool: asyncpg.Pool, bus: CommandBus, household_id: UUID, today: date, days: int,
                       context: Context) -> bool:
    """Erase one household in a transaction of its own, if it is still due there."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(_HOUSEHOLDS + " WHERE h.household_id = $1 FOR UPDATE OF h", household_id)
        if row is None or row["erased_on"] is not None or not is_due(
                last_contact(row["enrolled_on"], row["closed_on"], row["contacted_on"]), today, days):
            return False
        # The handler DELETE /v1/households/{id}/personal-data runs (CommandBus.execute is
        # this call in a transaction of its own; here it shares the check's).
        await bus.run(conn, "erase_personal_data", ErasePersonalData(household_id=household_id), context)
        return True


@dataclass
class Report:
    today: date
    days: int
    dry_run: bool
    due: list[Due] = field(default_factory=list)
    erased: int = 0
    skipped: int = 0  # erased meanwhile, or a contact arrived since the listing
    failed: int = 0
    listed: bool = False  # `due` was read (a run may fail before)
    locked_out: bool = False  # another run held the lock: nothing was done

    @property
    def remaining(self) -> int:
        """Due households left unerased by this run."""
        return len(self.due) - self.erased - self.skipped


async def run(pool: asyncpg.Pool, bus: CommandBus, *, days: int, today: date | None = None,
              dry_run: bool = False) -> Report:
    """List the due households and, unless `dry_run`, erase them one by one."""
    report = Report(today or date.today(), days, dry_run)
    try:
        if dry_run:
            async with pool.acquire() as conn:
                report.due = await due(conn, report.today, days)
                report.listed = True
        else:
            await _erase_due(pool, bus, report)
    except Exception as error:
        RETENTION_FAILURES.inc()
        log.error("retention_failed", error=faults.where(error), due=len(report.due), erased=report.erased)
        raise
    finally:
        if report.listed:
            RETENTION_DUE.set(report.remaining)
    if not (dry_run or report.locked_out):
        RETENTION_LAST_RUN.set(time.time())
    log.info("retention_run", dry_run=dry_run, locked_out=report.locked_out, days=days,
             cutoff=cutoff(report.today, days).isoformat(), due=len(report.due), erased=report.erased,
             skipped=report.skipped, failed=report.failed)
    return report


async def _erase_due(pool: asyncpg.Pool, bus: CommandBus, report: Report) -> None:
    run_id = f"retention:{uuid4()}"
    context = Context.caused_by(run_id, run_id, actor="retention")  # one correlation id; audited as the clock
    async with pool.acquire() as lock_conn:
        if not await lock_conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", LOCK):
            report.locked_out = True
            return
        try:
            report.due = await due(lock_conn, report.today, report.days)
            report.listed = True
            for household in report.due:
                try:
                    erased = await erase_if_due(pool, bus, household.household_id, report.today, report.days,
                                                context)
                except Exception as error:
                    if faults.database_unavailable(error):
                        raise  # the run stops; the next one takes the rest
                    # This household's fault (or a bug): the others are still erased.
                    report.failed += 1
                    RETENTION_FAILURES.inc()
                    log.warning("retention_household_failed", error=faults.where(error))
                    continue
                if erased:
                    report.erased += 1
                    RETENTION_ERASED.inc()
                else:
                    report.skipped += 1
        finally:
            with contextlib.suppress(Exception):  # a lost connection has released it already
                await lock_conn.execute("SELECT pg_advisory_unlock(hashtext($1))", LOCK)


# ---------------------------------------------------------------- the schedule


class RetentionClock:
    """Calls `run_once` `first_run_seconds` after `start`, then every `interval_seconds`;
    a failed run is logged and counted (by `run`) and the next one comes at its time."""

    def __init__(self, run_once: Callable[[], Awaitable[object]], first_run_seconds: float,
                 interval_seconds: float) -> None:
        self.run_once = run_once
        self.first_run_seconds = first_run_seconds
        self.interval_seconds = interval_seconds
        self.ticks = 0  # runs started, failed or not
        self.task: asyncio.Task | None = None

    def start(self, before: Callable[[], Awaitable[None]] | None = None) -> asyncio.Task:
        self.task = asyncio.create_task(self._tick(before), name="intake-retention")
        return self.task

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def _tick(self, before: Callable[[], Awaitable[None]] | None) -> None:
        if before is not None:
            await before()
        delay = self.first_run_seconds
        while True:
            await asyncio.sleep(delay)
            self.ticks += 1
            with contextlib.suppress(Exception):  # `run` logged and counted it
                await self.run_once()
            delay = self.interval_seconds


async def on_start(runtime, _conn: asyncpg.Connection) -> None:  # noqa: ANN001 - services.common.service.Runtime
    """intake's start hook: the clock, in `runtime.extras["retention"]`."""
    settings = RetentionSettings()
    if not settings.enabled:
        log.info("retention_disabled")
        return
    async def run_once() -> Report | None:
        # Last contacts come from casework's and veille's events: until intake has read
        # them to the end (a first start reads years of history), a household whose recent
        # interviews are not read yet would look due and be erased for good.
        contacts = next((c for c in runtime.consumers if c.name == CONSUMER), None)
        if contacts is None or not contacts.caught_up.is_set():
            log.warning("retention_postponed", reason="contacts_not_caught_up")
            return None
        return await run(runtime.pool, runtime.bus, days=settings.days)

    clock = RetentionClock(run_once, settings.first_run_seconds, settings.interval_seconds)

    async def join_runtime_tasks() -> None:
        # Runtime has no hook for a service's own background tasks, and assigns
        # `runtime.tasks` after this hook returns: join them once assigned, so that
        # Runtime.stop cancels the clock with the relay and the observer.
        while not runtime.tasks:
            if runtime.pool is None or runtime.pool.is_closing():
                return  # the start failed
            await asyncio.sleep(0.05)
        runtime.tasks.append(asyncio.current_task())

    runtime.extras["retention"] = clock
    clock.start(before=join_runtime_tasks)


# ---------------------------------------------------------------- by hand


async def _run_by_hand(days: int, today: date | None, dry_run: bool) -> Report:
    settings = ServiceSettings.for_service("intake", 8001)
    pool = await create_pool(settings, "intake")
    try:
        bus = CommandBus("intake", "intake", HANDLERS, erasure_grace_seconds=settings.erasure_grace_seconds)
        return await run(pool, bus, days=days, today=today, dry_run=dry_run)
    finally:
        await pool.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="list the due households, erase nothing")
    parser.add_argument("--days", type=int, help="the retention period (default: ALFI_RETENTION_DAYS, 730)")
    parser.add_argument("--today", type=date.fromisoformat, help="count back from this day (default: today)")
    args = parser.parse_args(argv)
    setting = RetentionSettings().days
    days = args.days if args.days is not None else setting
    if days < 1:
        parser.error("--days must be at least 1")
    if not args.dry_run and (days < setting or (args.today and args.today > date.today())):
        # Simulating a later day or a shorter period would erase households not yet due.
        parser.error(f"a later --today or fewer --days than ALFI_RETENTION_DAYS ({setting}) is for --dry-run only")
    configure_logging("intake-retention", "WARNING")
    try:
        report = run_like_a_service(_run_by_hand(days, args.today, args.dry_run))
    except asyncpg.UndefinedTableError:
        print("retention: intake's tables are missing; start intake once (it migrates its schema)", file=sys.stderr)
        return 1
    if report.locked_out:
        print("retention: another run holds the lock; nothing done", file=sys.stderr)
        return 1
    for household in report.due:
        print(f"{household.household_id} {household.last_contact_on.isoformat()}")
    print(f"{len(report.due)} households without contact since {cutoff(report.today, days).isoformat()}"
          f" ({days} days before {report.today.isoformat()})"
          + (": dry run, nothing erased" if args.dry_run else
             f": {report.erased} erased, {report.skipped} skipped, {report.failed} failed"))
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
