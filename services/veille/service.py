"""veille wired: its definition for services.common.service."""

from pathlib import Path

from services.common.service import ServiceDefinition

from .handlers import HANDLERS
from .routes import routes

DEFINITION = ServiceDefinition(
    name="veille",
    default_port=8003,
    sql_dir=Path(__file__).parent / "sql",
    handlers=HANDLERS,
    routes=routes,
    replicates_households=True,
    description="Tracks escalated delicate situations and the veille meetings that review them.",
)
