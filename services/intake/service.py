"""intake wired: its definition for services.common.service, with the contacts consumer
(casework's and veille's events) and the retention clock."""

from pathlib import Path

from services.common.service import ServiceDefinition, create_app as create_service_app

from . import retention
from .contacts import contacts_consumer
from .handlers import HANDLERS
from .routes import routes

DEFINITION = ServiceDefinition(
    name="intake",
    default_port=8001,
    sql_dir=Path(__file__).parent / "sql",
    handlers=HANDLERS,
    routes=routes,
    consumers=lambda runtime: [contacts_consumer(runtime)],
    on_start=retention.on_start,
    description="Enrols households into programmes and follows their accompaniment.",
)


def create_app():  # noqa: ANN201 - uvicorn's factory when running several workers
    return create_service_app(DEFINITION)
