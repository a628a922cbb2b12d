"""casework wired: its definition for services.common.service."""

from pathlib import Path

from services.common.service import ServiceDefinition

from .handlers import HANDLERS
from .routes import routes

DEFINITION = ServiceDefinition(
    name="casework",
    default_port=8002,
    sql_dir=Path(__file__).parent / "sql",
    handlers=HANDLERS,
    routes=routes,
    replicates_households=True,
    description="Records interviews, collective workshops and rehousings.",
)
