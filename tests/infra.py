"""Which Kafka and PostgreSQL the tests use, in DESIGN.md's order:

1. the addresses in KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL when set;
2. testcontainers when a Docker engine answers (official apache/kafka and postgres images);
3. else the local launcher (deploy/local/devstack.py), started once per test session and
   stopped at the end if this session started it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from collections.abc import Iterator
from pathlib import Path

from bench.stack import load_devstack  # noqa: E402 - one loader for the launcher script

REPO = Path(__file__).resolve().parents[1]
KAFKA_IMAGE = "apache/kafka:4.1.1"
POSTGRES_IMAGE = "postgres:16-alpine"


def docker_answers() -> bool:
    try:
        import docker  # testcontainers' dependency

        docker.from_env(timeout=3).ping()
        return True
    except Exception:  # noqa: BLE001 - any failure means "no engine here"
        return False


TEST_KAFKA_PORT = 19092


@dataclass
class Kafka:
    """The broker of this test session. `local` is set when the tests own it (and so
    may stop and restart it, for fault tests)."""

    bootstrap: str
    local: tuple[object, Path, int] | None = None

    def stop(self, kill: bool = False) -> None:
        devstack, root, _ = self._own()
        devstack.kafka_down(root, kill=kill)

    def start(self) -> None:
        devstack, root, port = self._own()
        devstack.kafka_up(port=port, root=root)

    def _own(self) -> tuple:
        if self.local is None:
            raise RuntimeError("this broker was given from outside; the tests cannot stop it")
        return self.local


@contextlib.contextmanager
def kafka() -> Iterator[Kafka]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield Kafka(os.environ["KAFKA_BOOTSTRAP_SERVERS"])
    elif docker_answers():
        for bootstrap in _kafka_container():
            yield Kafka(bootstrap)
    else:
        # A throwaway broker of the session's own, on its own port, so the tests never
        # see what `make run` or an earlier session left on the topics.
        with own_local_kafka(int(os.environ.get("ALFI_TEST_KAFKA_PORT", TEST_KAFKA_PORT))) as handle:
            yield handle


@contextlib.contextmanager
def own_local_kafka(port: int) -> Iterator[Kafka]:
    """A broker of its own for tests that must see empty topics (the demo's exact bilan).
    Only with the local launcher: a given broker cannot be multiplied."""
    devstack = load_devstack()
    root = Path(tempfile.mkdtemp(prefix="alfi-test-kafka-"))
    handle = Kafka(devstack.kafka_up(port=port, root=root), (devstack, root, port))
    try:
        yield handle
    finally:
        devstack.kafka_down(root)
        shutil.rmtree(root, ignore_errors=True)


def _kafka_container() -> Iterator[str]:  # pragma: no cover - needs a Docker engine
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    container = (
        DockerContainer(KAFKA_IMAGE)
        .with_bind_ports(9092, 9092)
        .with_env("KAFKA_NODE_ID", "1")
        .with_env("KAFKA_PROCESS_ROLES", "broker,controller")
        .with_env("KAFKA_LISTENERS", "PLAINTEXT://:9092,CONTROLLER://:9093")
        .with_env("KAFKA_ADVERTISED_LISTENERS", "PLAINTEXT://127.0.0.1:9092")
        .with_env("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER")
        .with_env("KAFKA_CONTROLLER_QUORUM_VOTERS", "1@localhost:9093")
        .with_env("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
        .with_env("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
        .with_env("KAFKA_NUM_PARTITIONS", "6")
    )
    with container:
        wait_for_logs(container, "Kafka Server started", timeout=120)
        yield "127.0.0.1:9092"


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    devstack = load_devstack()
    if os.environ.get("DATABASE_URL") and devstack.database_answers(os.environ["DATABASE_URL"]):
        yield os.environ["DATABASE_URL"]
    elif docker_answers():  # pragma: no cover - needs a Docker engine
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer(POSTGRES_IMAGE, driver=None) as container:
            yield container.get_connection_url()
    else:
        was_running = devstack.status()["postgres"] == "running"
        url = devstack.pg_up()
        try:
            yield url
        finally:
            if not was_running:
                devstack.pg_down()
