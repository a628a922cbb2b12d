"""The platform's own Prometheus metrics (prefix `alfi_`, base units).

Labels are closed sets only: service, route template, method, status, command name,
rejection kind, topic, partition, consumer. Never a household, worker or any other
per-person id. Gauges declare how they combine when a service runs several worker
processes (prometheus-client's multiprocess mode, PROMETHEUS_MULTIPROC_DIR).
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest,
)
from prometheus_client import multiprocess

HTTP_REQUESTS = Counter(
    "alfi_http_requests_total", "HTTP requests answered, by route template and status.",
    ["service", "route", "method", "status"])
HTTP_DURATION = Histogram(
    "alfi_http_request_duration_seconds", "Time to answer an HTTP request.",
    ["service", "route", "method"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
COMMANDS = Counter(
    "alfi_commands_total", "Commands handled (HTTP or Kafka), accepted or rejected by reason.",
    ["service", "command", "outcome", "reason"])
OUTBOX_BACKLOG = Gauge(
    "alfi_outbox_backlog_events", "Events recorded but not yet published.", ["service"],
    multiprocess_mode="max")
OUTBOX_OLDEST_AGE = Gauge(
    "alfi_outbox_oldest_pending_age_seconds", "Age of the oldest unpublished event (0 when none).",
    ["service"], multiprocess_mode="max")
PUBLISHED = Counter(
    "alfi_outbox_published_events_total", "Events the relay published, acknowledged by Kafka.",
    ["service", "topic"])
CONSUMER_LAG = Gauge(
    "alfi_consumer_lag_messages", "Messages between a consumer's position and the partition's end.",
    ["consumer", "topic", "partition"], multiprocess_mode="max")
CONSUMED = Counter(
    "alfi_consumer_applied_events_total", "Messages applied by a consumer (each once).",
    ["consumer", "topic"])
BATCH_DURATION = Histogram(
    "alfi_consumer_batch_duration_seconds", "Time to apply one poll in its transaction.", ["consumer"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
PROJECTION_LAST_EVENT = Gauge(
    "alfi_projection_last_event_timestamp_seconds", "Time of the newest event applied, per topic.",
    ["topic"], multiprocess_mode="max")
DEAD_LETTERS = Counter(
    "alfi_dead_letters_total", "Messages sent to a dead-letter topic, by source topic and kind.",
    ["topic", "kind"])
REBUILD_APPLIED = Gauge(
    "alfi_rebuild_applied_events", "Events applied by the running projection rebuild.",
    multiprocess_mode="max")


def exposition() -> tuple[bytes, str]:
    """The text exposition: every process's metrics under multiprocess mode, else ours."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


_FASTSTREAM: dict[str, object] = {}


def faststream_middleware(service: str):  # noqa: ANN201
    """FastStream's Prometheus middleware (publish counts and durations, `faststream_*`),
    one per process: its metrics register once in the default registry."""
    if service not in _FASTSTREAM:
        from faststream.kafka.prometheus import KafkaPrometheusMiddleware

        _FASTSTREAM[service] = KafkaPrometheusMiddleware(registry=REGISTRY, app_name=f"alfi-{service}")
    return _FASTSTREAM[service]
