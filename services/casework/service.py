"""casework wired: its definition for services.common.service."""

from pathlib import Path

from services.common.service import ServiceDefinition, create_app as create_service_app

from .handlers import HANDLERS, erase
from .routes import routes

DEFINITION = ServiceDefinition(
    name="casework",
    default_port=8002,
    sql_dir=Path(__file__).parent / "sql",
    handlers=HANDLERS,
    routes=routes,
    replicates_households=True,
    on_erasure=erase,
    description="Records interviews, collective workshops and rehousings.",
)


def create_app():  # noqa: ANN201 - uvicorn's factory when running several workers
    return create_service_app(DEFINITION)
