"""intake wired: its definition for services.common.service, with the contacts consumer
(casework's and veille's events) and the retention clock."""

from pathlib import Path

import asyncpg
import structlog

from services.common import keyring
from services.common.service import ServiceDefinition, create_app as create_service_app

from . import retention
from .contacts import contacts_consumer
from .handlers import HANDLERS
from .routes import routes

log = structlog.get_logger("alfi.intake")

async def on_start(runtime, conn: asyncpg.Connection) -> None:  # noqa: ANN001 - a Runtime
    """Keys for households enrolled before keys existed, then the retention clock."""
    if made := await keyring.backfill(conn):
        log.info("household_keys_backfilled", keys=made)
    await retention.on_start(runtime, conn)


DEFINITION = ServiceDefinition(
    name="intake",
    default_port=8001,
    sql_dir=Path(__file__).parent / "sql",
    handlers=HANDLERS,
    routes=routes,
    consumers=lambda runtime: [contacts_consumer(runtime)],
    on_start=on_start,
    description="Enrols households into programmes and follows their accompaniment.",
)


def create_app():  # noqa: ANN201 - uvicorn's factory when running several workers
    return create_service_app(DEFINITION)
