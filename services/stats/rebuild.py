"""Rebuild the projections from offset 0, then switch over atomically.

    python -m services.stats.rebuild        (DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS)

Fills the next generation schema (`stats_g<N+1>`, recreated empty, its secondary indexes
deferred) with its own consumer group from the beginning of the three topics. When its
positions reach the topics' end offsets it stops, creates the deferred indexes and, in one
transaction, points `stats.generation` at the new schema.
Until then the reports API and the live projector keep using the old generation; after
it, the live projector continues from the new generation's positions, and every other
generation is dropped (it would keep erased households' rows; a failed rebuild drops its
own).
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
import uuid

from services.common.consumer import TransactionalConsumer
from services.common.deadletters import dead_letter_writer
from services.common.db import create_pool
from services.common.migrations import migrate
from services.common.logging import configure_logging
from services.common.metrics import REBUILD_APPLIED
from services.common.service import Runtime, run_like_a_service
from services.common.settings import ServiceSettings

from . import generations
from .projector import Projector
from .service import DEFINITION, EVENT_TOPICS


class TruncatedHistory(RuntimeError):
    """A topic no longer holds its whole history: the rebuild stops without switching."""

    def __init__(self, gaps: dict) -> None:
        self.gaps = dict(gaps)
        where = ", ".join(f"{tp.topic}[{tp.partition}] starts at {gap.log_start}" for tp, gap in gaps.items())
        super().__init__(f"the event topics no longer start at offset 0 ({where}): records were deleted;"
                         " the rebuild stopped and the current generation stays in use")


async def rebuild(settings: ServiceSettings, progress=None, topics: tuple[str, ...] = EVENT_TOPICS) -> dict:  # noqa: ANN001
    """Fill the next generation from offset 0 of `topics`, then switch to it."""
    pool = await create_pool(settings, generations.BASE)
    try:
        async with pool.acquire() as conn:
            await migrate(conn, generations.BASE, Runtime(DEFINITION, settings).migration_files())
            old = await generations.ensure_current(conn)
            target = max(old, await conn.fetchval(
                "SELECT coalesce(max(substring(nspname from 'stats_g([0-9]+)')::int), 0)"
                " FROM pg_namespace WHERE nspname ~ '^stats_g[0-9]+$'")) + 1
            await generations.prepare(conn, target, fresh=True)
            deferred = await generations.defer_secondary_indexes(conn, target)
        projection = Projector(generations.BASE, pool)
        consumer = TransactionalConsumer(
            pool, generations.PROJECTOR, topics, settings.kafka,
            projection.apply, prepare=projection.prepare, max_records=5000,
            dead_letter=dead_letter_writer(generations.BASE),
            search_path=lambda: generations.search_path(target),
            group_id=f"alfi-stats-rebuild-{target}-{uuid.uuid4().hex[:6]}",
        )
        started = time.perf_counter()
        task = asyncio.create_task(consumer.run())
        switched = False
        try:
            while not consumer.caught_up.is_set() or consumer.gaps:  # to the end of every partition
                if consumer.gaps:
                    # History is missing (retention, a recreated topic): a generation built
                    # from it would publish wrong figures. The current one stays.
                    raise TruncatedHistory(consumer.gaps)
                if task.done():
                    task.result()
                REBUILD_APPLIED.set(consumer.applied)
                if progress:
                    progress(consumer.applied)
                await asyncio.sleep(0.1)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            async with pool.acquire() as conn:
                for definition in deferred:  # before the switch: readers never see it without them
                    await conn.execute(definition)
                async with conn.transaction():
                    await generations.switch(conn, target, old, settings.erasure_grace_seconds)
            switched = True
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            # Only the generation the reports read is kept: another would hold, unanonymised,
            # the rows of households erased after it stopped being fed (an abandoned
            # rebuild's, the one before the switch).
            try:
                async with pool.acquire() as conn:
                    await generations.drop_all_but(conn, target if switched else old)
            except Exception:  # noqa: BLE001 - after a failure, the failure is what to report
                if switched:
                    raise
        elapsed = time.perf_counter() - started
        return {"generation": target, "previous": old, "events": consumer.applied, "seconds": elapsed,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    finally:
        await pool.close()


def main() -> int:
    settings = ServiceSettings.for_service("stats", DEFINITION.default_port)
    configure_logging("stats-rebuild", settings.log_level, settings.log_format)
    quiet = "--json" in sys.argv
    try:
        result = run_like_a_service(rebuild(settings, progress=None if quiet else
                                            lambda n: print(f"\r{n} events", end="", file=sys.stderr)))
    except TruncatedHistory as error:
        print(f"\nrebuild refused: {error}", file=sys.stderr)
        return 1
    if quiet:
        print(json.dumps(result))
        return 0
    print(f"\nrebuilt generation {result['generation']} (was {result['previous']}): {result['events']} events"
          f" in {result['seconds']:.1f}s, {result['events'] / max(result['seconds'], 1e-9):,.0f} events/s,"
          f" peak RSS {result['peak_rss_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
