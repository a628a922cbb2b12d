"""Rebuild the projections from offset 0, then switch over atomically.

    python -m services.stats.rebuild        (DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS,
                                             ALFI_REBUILD_WORKERS: processes, default 2)

Fills the next generation schema (`stats_g<N+1>`, recreated empty, its secondary indexes
deferred) with its own consumer group from the beginning of the three topics. When its
positions reach the topics' end offsets it stops, creates the deferred indexes and, in one
transaction, points `stats.generation` at the new schema.

With more than one worker, that many processes (`--worker`) share the partitions in the
rebuild's consumer group, each a whole projector (read, open, validate, fold, write with
its partitions' positions in the same transaction, so exactly-once holds per partition as
for one); this process watches their stored positions reach the end offsets taken at the
start, then stops them. Decoding and opening the sealed fields is most of the CPU, and one
process cannot use a second core for it. The rows two workers both write (freshness, per
topic) are locked in topic order; every other row belongs to one household's, workshop's
or meeting's partition, so the workers never wait on each other's rows.
Until then the reports API and the live projector keep using the old generation; after
it, the live projector continues from the new generation's positions, and every other
generation is dropped (it would keep erased households' rows; a failed rebuild drops its
own).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import signal
import sys
import time
import uuid
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.common.consumer import Gap, TransactionalConsumer, stored_positions
from services.common.deadletters import dead_letter_writer
from services.common.db import create_pool
from services.common.migrations import migrate
from services.common.logging import configure_logging
from services.common.kafka import connection, partitions_of
from services.common.metrics import REBUILD_APPLIED
from services.common.service import run_like_a_service
from services.common.settings import ServiceSettings

from . import generations
from .projector import Projector


class TruncatedHistory(RuntimeError):
    """A topic no longer holds its whole history: the rebuild stops without switching."""

    def __init__(self, gaps: dict, where: str | None = None) -> None:
        self.gaps = dict(gaps)
        where = where or ", ".join(f"{tp.topic}[{tp.partition}] starts at {gap.log_start}"
                                   for tp, gap in gaps.items())
        super().__init__(f"the event topics no longer start at offset 0 ({where}): records were deleted;"
                         " the rebuild stopped and the current generation stays in use")


# A worker process's exit status when its partitions no longer start at offset 0, and
# when its parent (the rebuild) is gone.
TRUNCATED, ORPHANED = 3, 4


def _consumer(settings: ServiceSettings, pool: asyncpg.Pool, target: int, topics: tuple[str, ...],
              group: str, partitions: list[TopicPartition] | None = None) -> TransactionalConsumer:
    projection = Projector(generations.BASE, pool)
    return TransactionalConsumer(
        pool, generations.PROJECTOR, topics, settings.kafka,
        projection.apply, prepare=projection.prepare, max_records=5000,
        dead_letter=dead_letter_writer(generations.BASE),
        search_path=lambda: generations.search_path(target), group_id=group, partitions=partitions,
    )


async def _fill(settings: ServiceSettings, pool: asyncpg.Pool, target: int, topics: tuple[str, ...],
                group: str, progress) -> int:  # noqa: ANN001
    """Fill `target` in this process, to the end of every partition; the records applied."""
    consumer = _consumer(settings, pool, target, topics, group)
    task = asyncio.create_task(consumer.run())
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
        return consumer.applied
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _offsets(settings: ServiceSettings, topics: tuple[str, ...]) -> tuple[dict, dict]:
    """(log start, end) offsets of every partition of `topics`."""
    tps = await partitions_of(settings.kafka, topics)
    reader = AIOKafkaConsumer(**connection(settings.kafka).client_options(), enable_auto_commit=False)
    await reader.start()
    try:
        return await reader.beginning_offsets(tps), await reader.end_offsets(tps)
    finally:
        await reader.stop()


def _peak_rss_mb(pid: int) -> float:
    """A live process's peak resident memory (VmHWM), 0 when unknown."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        status = Path(f"/proc/{pid}/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1]) / 1024
    return 0.0


async def _fill_in_processes(settings: ServiceSettings, pool: asyncpg.Pool, target: int,
                             topics: tuple[str, ...], group: str, workers: int,
                             progress) -> tuple[int, list[float]]:  # noqa: ANN001
    """Fill `target` with `workers` processes sharing the partitions; (the records
    applied, each worker's peak RSS in MB)."""
    starts, ends = await _offsets(settings, topics)
    gaps = {tp: Gap(None, start, ends[tp]) for tp, start in starts.items() if start > 0}
    if gaps:
        raise TruncatedHistory(gaps)
    # Worker i takes partition number p of every topic where p % workers == i: a household's
    # events of every topic (keyed alike) go to one worker, and only the per-topic
    # freshness rows are written by several.
    shares = [[tp for tp in sorted(ends) if tp.partition % workers == i] for i in range(workers)]
    processes: list[asyncio.subprocess.Process] = []
    peaks: list[float] = []
    try:
        for share in shares:
            if share:
                processes.append(await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "services.stats.rebuild", "--worker", str(target), group,
                    ",".join(f"{tp.topic}:{tp.partition}" for tp in share),
                    env={**os.environ, **settings.as_environment()}, stdin=asyncio.subprocess.DEVNULL,
                    start_new_session=True))
                peaks.append(0.0)
        async with pool.acquire() as conn:
            await conn.execute(f"SET search_path TO {generations.search_path(target)}")
            while True:
                for process in processes:
                    if process.returncode == TRUNCATED:
                        raise TruncatedHistory({}, "a rebuild worker found a partition that no longer starts at 0")
                    if process.returncode is not None:
                        raise RuntimeError(f"a rebuild worker exited with status {process.returncode}")
                positions = await stored_positions(conn, generations.PROJECTOR)
                applied = sum(min(positions.get(tp, 0), end) for tp, end in ends.items())
                REBUILD_APPLIED.set(applied)
                if progress:
                    progress(applied)
                if all(positions.get(tp, 0) >= end for tp, end in ends.items()):
                    return applied, peaks
                peaks = [max(peak, _peak_rss_mb(p.pid)) for peak, p in zip(peaks, processes, strict=True)]
                await asyncio.sleep(0.1)
    finally:
        peaks[:] = [max(peak, _peak_rss_mb(p.pid)) for peak, p in zip(peaks, processes, strict=True)]
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)  # the poll in hand commits, then it exits
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), timeout=30)
            except TimeoutError:
                process.kill()
                await process.wait()


async def work(settings: ServiceSettings, target: int, group: str, partitions: list[TopicPartition]) -> int:
    """One worker of a rebuild in processes: project `partitions` into `target` until
    SIGTERM (0), until one is found truncated (TRUNCATED), or until its parent is gone
    (ORPHANED: killed without stopping it; its generation is dropped by the next rebuild)."""
    parent = os.getppid()
    pool = await create_pool(settings, generations.BASE)
    topics = tuple(dict.fromkeys(tp.topic for tp in partitions))
    consumer = _consumer(settings, pool, target, topics, group, partitions)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    task = asyncio.create_task(consumer.run())
    try:
        while not stop.is_set() and not task.done():
            if consumer.gaps:
                print(TruncatedHistory(consumer.gaps), file=sys.stderr)
                return TRUNCATED
            if os.getppid() != parent:
                return ORPHANED
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.2)
        if task.done():
            task.result()
        consumer.stopping = True  # the poll in hand commits before run() returns
        await asyncio.wait_for(task, timeout=20)
        return 0
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await pool.close()


async def rebuild(settings: ServiceSettings, progress=None, topics: tuple[str, ...] = generations.EVENT_TOPICS,  # noqa: ANN001
                  workers: int = 1) -> dict:
    """Fill the next generation from offset 0 of `topics` (with `workers` processes when
    more than one), then switch to it."""
    from services.common.service import Runtime

    from .service import DEFINITION

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
        group = f"alfi-stats-rebuild-{target}-{uuid.uuid4().hex[:6]}"
        started = time.perf_counter()
        switched = False
        worker_peaks: list[float] = []
        try:
            if workers > 1:
                applied, worker_peaks = await _fill_in_processes(settings, pool, target, topics, group, workers,
                                                                 progress)
            else:
                applied = await _fill(settings, pool, target, topics, group, progress)
            async with pool.acquire() as conn:
                for definition in deferred:  # before the switch: readers never see it without them
                    await conn.execute(definition)
                async with conn.transaction():
                    await generations.switch(conn, target, old, settings.erasure_grace_seconds)
            switched = True
        finally:
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
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return {"generation": target, "previous": old, "events": applied, "seconds": elapsed, "workers": workers,
                # the largest process, and all of them together
                "peak_rss_mb": max([own, *worker_peaks]), "total_peak_rss_mb": own + sum(worker_peaks)}
    finally:
        await pool.close()


def main() -> int:
    settings = ServiceSettings.for_service("stats", 0)
    if sys.argv[1:2] == ["--worker"]:
        configure_logging("stats-rebuild-worker", settings.log_level, settings.log_format)
        target, group, share = sys.argv[2:]
        partitions = [TopicPartition(topic, int(p)) for topic, p in (tp.rsplit(":", 1) for tp in share.split(","))]
        return run_like_a_service(work(settings, int(target), group, partitions))
    configure_logging("stats-rebuild", settings.log_level, settings.log_format)
    quiet = "--json" in sys.argv

    async def stoppable() -> dict:
        # SIGTERM (kill, an orchestrator) unwinds like Ctrl-C: the workers are stopped and
        # the unfinished generation dropped.
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)
        return await rebuild(settings, progress=None if quiet else
                             lambda n: print(f"\r{n} events", end="", file=sys.stderr),
                             workers=settings.rebuild_workers)

    try:
        result = run_like_a_service(stoppable())
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
