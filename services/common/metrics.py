"""The platform's own Prometheus metrics (prefix `alfi_`, base units).

Labels are closed sets only: service, route template, method, status, command name,
rejection kind, topic, partition, consumer, data-quality check. Never a household, worker
or any other per-person id. Gauges declare how they combine when a service runs several
worker processes (prometheus-client's multiprocess mode, PROMETHEUS_MULTIPROC_DIR).
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
CONSUMER_RUNNING = Gauge(
    "alfi_consumer_running", "1 while a consumer is running or waiting for a dependency, 0 while it is"
    " restarting after a failure.", ["consumer"], multiprocess_mode="livemin")
CONSUMER_RESTARTS = Counter(
    "alfi_consumer_restarts_total", "Consumer tasks that failed and were restarted, by exception class.",
    ["consumer", "reason"])
CONSUMER_POSITION = Gauge(
    "alfi_consumer_position_offset", "The next offset a consumer will apply (its stored position).",
    ["consumer", "topic", "partition"], multiprocess_mode="max")
CONSUMER_GAP = Gauge(
    "alfi_consumer_partition_gap_messages", "Records a consumer cannot read on a partition it stopped"
    " (position below the log start, or above the end after a topic was recreated); 0 when none.",
    ["consumer", "topic", "partition"], multiprocess_mode="max")
CONSUMER_RETRIES = Counter(
    "alfi_consumer_retries_total", "Records deferred for a later attempt (e.g. a command whose household"
    " is not replicated yet), by reason.", ["consumer", "reason"])
BROKER_UP = Gauge(
    "alfi_kafka_broker_up", "1 when the service's last metadata request to Kafka answered, else 0.",
    ["service"], multiprocess_mode="livemin")
DATABASE_UP = Gauge(
    "alfi_database_up", "1 when the service's last check of PostgreSQL answered, else 0.",
    ["service"], multiprocess_mode="livemin")
OUTBOX_REFUSED = Counter(
    "alfi_outbox_refused_events_total", "Outbox rows the broker refused for good (too large, invalid),"
    " set aside as dead letters so the rows behind them go on.", ["service", "kind"])
OUTBOX_SET_ASIDE = Gauge(
    "alfi_outbox_set_aside_events", "Outbox rows set aside because the broker refused them.", ["service"],
    multiprocess_mode="max")
OUTBOX_PURGED = Counter(
    "alfi_outbox_purged_events_total",
    "Published outbox rows deleted once older than the outbox retention.", ["service"])
ERASURES_ANONYMISED = Counter(
    "alfi_erasures_anonymised_total",
    "Erased households whose projected rows stats moved to the anonymous residue (grace period over).")
ERASURES_PENDING = Gauge(
    "alfi_erasures_pending_households",
    "Erased households stats has not anonymised yet (within their grace period, or behind).",
    multiprocess_mode="max")
REBUILD_APPLIED = Gauge(
    "alfi_rebuild_applied_events", "Events applied by the running projection rebuild.",
    multiprocess_mode="max")
RETENTION_DUE = Gauge(
    "alfi_retention_due_households", "Households past their retention period (ALFI_RETENTION_DAYS after the"
    " last contact) left unerased by the last retention run or dry run.", multiprocess_mode="mostrecent")
RETENTION_ERASED = Counter(
    "alfi_retention_erased_total", "Households whose personal data the retention job erased.")
RETENTION_LAST_RUN = Gauge(
    "alfi_retention_last_run_timestamp_seconds", "When the retention job last completed a run (dry runs"
    " and runs another instance held the lock for left out).", multiprocess_mode="max")
RETENTION_FAILURES = Counter(
    "alfi_retention_failures_total", "Retention runs that failed, and households a run could not erase.")

DATA_QUALITY_ISSUES = Gauge(
    "alfi_data_quality_issues", "Records a manager should look at as of today, by data-quality check"
    " (stats' /v1/reports/data-quality; counted every ALFI_DATA_QUALITY_INTERVAL_SECONDS).", ["check"],
    multiprocess_mode="max")
DATA_QUALITY_THRESHOLD = Gauge(
    "alfi_data_quality_threshold", "How many records of a data-quality check the alert AlfiDataQualityIssues"
    " tolerates (ALFI_DATA_QUALITY_ALERT_<CHECK>).", ["check"], multiprocess_mode="max")


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
