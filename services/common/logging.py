"""Structured logs: JSON lines in production, readable lines on a terminal.

Standard-library loggers (FastStream, uvicorn, aiokafka) go through the same structlog
pipeline, so every line has the same shape. Log ids and closed labels only, never
personal data: the callers pass event types, pseudonymous ids and correlation ids.
"""

from __future__ import annotations

import logging
import sys

import structlog


# aiokafka logs at error level what is a passing condition of the cluster (the group
# coordinator not elected yet at start, a broker restarting, a connection refused while it
# is away); the platform itself logs at error level what needs an operator
# (`consumer_failed`, `consumer_partition_gap`, ...). These lines are kept, as warnings.
TRANSIENT_KAFKA_MESSAGES = (
    "Group Coordinator Request failed", "Unable connect to", "Unable to update metadata",
    "Failed fetch messages", "Failed fetch offsets", "FindCoordinator Request failed",
    "Heartbeat", "OffsetCommit failed before join", "Failed to commit on finallization",
    "Topic %s not found in cluster metadata", "Error fetching metadata for topic",
    "LeaveGroup request failed", "Error sending %s to node %s",
)


class TransientKafkaErrors(logging.Filter):
    """Tells a broker's passing state from a failure: aiokafka's transient errors become
    warnings."""

    def filter(self, record: logging.LogRecord) -> bool:
        if (record.levelno >= logging.ERROR and record.name.startswith("aiokafka")
                and isinstance(record.msg, str) and record.msg.startswith(TRANSIENT_KAFKA_MESSAGES)):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def configure_logging(service: str, level: str = "INFO", fmt: str = "auto") -> None:
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        lambda _logger, _name, event: {"service": service, **event},
    ]
    renderer = (
        structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(TransientKafkaErrors())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
