"""stats wired: the projector consumer on the three event topics, and the reports API."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path

import asyncpg
import structlog
from fastapi import APIRouter

from alfi_contracts.topics import dead_letter_topic
from services.common.consumer import Restart, TransactionalConsumer
from services.common.deadletters import dead_letter_writer
from services.common.service import Runtime, ServiceDefinition, create_app as create_service_app

from . import freeze, generations, quality
from .projector import Projector, finalise
from .routes import routes as report_routes

log = structlog.get_logger("alfi.stats")


async def on_start(runtime: Runtime, conn: asyncpg.Connection) -> None:
    runtime.extras["generation"] = await generations.ensure_current(conn)


def consumers(runtime: Runtime) -> list[TransactionalConsumer]:
    async def follow_generation(conn: asyncpg.Connection) -> None:
        # FOR SHARE: a rebuild's switch waits for this batch to commit.
        generation = await conn.fetchval(f"SELECT current FROM {generations.BASE}.generation FOR SHARE")
        if generation != runtime.extras["generation"]:
            runtime.extras["generation"] = generation
            raise Restart  # seek to the new generation's positions, continue there

    projection = Projector(generations.BASE, runtime.pool, before=follow_generation)
    return [TransactionalConsumer(
        runtime.pool, generations.PROJECTOR, generations.EVENT_TOPICS, runtime.settings.kafka,
        projection.apply, prepare=projection.prepare, max_records=5000,
        dead_letter=dead_letter_writer(generations.BASE),
        search_path=lambda: generations.search_path(runtime.extras["generation"]),
        group_id="alfi-stats-projector",
    )]


async def anonymise_erased(runtime: Runtime, interval: float = 5.0) -> None:
    """Every `interval`, anonymise the erased households whose grace period is over
    (projector.finalise); an outage only delays it."""
    grace = runtime.settings.erasure_grace_seconds
    while True:
        try:
            await finalise(runtime.pool, grace)
        except Exception as error:  # noqa: BLE001 - retried next round; the gauge and the log tell
            log.warning("anonymisation_failed", error=type(error).__name__)
        await asyncio.sleep(interval)


async def count_data_quality(runtime: Runtime) -> None:
    """Every ALFI_DATA_QUALITY_INTERVAL_SECONDS, the data-quality checks as of today for
    Prometheus (quality.observe), beside their alert thresholds; a failure keeps the last
    counts until the next round."""
    settings = runtime.settings
    quality.set_thresholds(settings)
    thresholds = quality.Thresholds.of(settings)
    while True:
        try:
            await quality.observe(runtime.pool, thresholds, date.today())
        except Exception as error:  # noqa: BLE001 - retried next round; the log tells
            log.warning("data_quality_count_failed", error=type(error).__name__)
        await asyncio.sleep(settings.data_quality_interval_seconds)


def routes(runtime: Runtime) -> APIRouter:
    """The reports API and the frozen bilans."""
    router = APIRouter()
    router.include_router(report_routes(runtime))
    router.include_router(freeze.routes(runtime))
    return router


DEFINITION = ServiceDefinition(
    name="stats",
    default_port=8004,
    sql_dir=Path(__file__).parent / "sql",
    handlers={},
    routes=routes,
    consumers=consumers,
    on_start=on_start,
    publishes=tuple(dead_letter_topic(t) for t in generations.EVENT_TOPICS),
    ready_when_caught_up=True,
    background=lambda runtime: [anonymise_erased(runtime), count_data_quality(runtime)],
    description="Reporting read models built from every service's events, and the reports API.",
)


def create_app():  # noqa: ANN201 - uvicorn's factory when running several workers
    return create_service_app(DEFINITION)
