"""Infrastructure of a chaos run's own, and the four services as supervised processes.

Everything lives on ports and under temporary roots that `make run`, `make test` and the
benchmarks never use, so crashing it hurts nothing else: a broker (or a three-node KRaft
cluster, replication factor 3 and min.insync.replicas 2), a PostgreSQL cluster, and the
services started with bench.stack. `Stack` is an async context manager that tears all of it
down, even when the run fails or is interrupted.

Supervision plays the part of an orchestrator: a service process that is gone (killed by
the fault schedule, or exited on its own, e.g. started while PostgreSQL was down) is
started again; exits the run did not cause are counted, they are findings.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from bench.stack import load_devstack, start_service, stop, wait_ready
from services.common.auth import ALL_SCOPES, issue_token, migrate_auth

SERVICES = ("intake", "casework", "veille", "stats")
DATABASE = "alfi_chaos"
# Short enough to wait for at the end of a run, long enough to outlast a service killed
# while the last erasures are sent (its events still reach stats whole).
ERASURE_GRACE_SECONDS = 45


@dataclass(frozen=True)
class Ports:
    """Client ports: one broker, or the three nodes of a cluster (each controller on the
    next port up); PostgreSQL; the services."""

    broker: int
    cluster: tuple[int, int, int]
    postgres: int
    services: dict[str, int]


# `make chaos`; the e2e test has its own (tests/e2e/test_chaos.py). Neither collides with
# make run (9092, 8001-8004, 55432), the test session (19092, 18001-18031, 19392), the
# benchmarks (19292, 18101) or devstack's own cluster (29192-29197).
CLI_PORTS = Ports(broker=19592, cluster=(29392, 29394, 29396), postgres=55632,
                  services={"intake": 18201, "casework": 18202, "veille": 18203, "stats": 18204})


@dataclass
class Supervised:
    name: str
    port: int
    process: subprocess.Popen | None = None
    held_until: float = 0.0  # a killed service stays down until then
    killed: bool = False  # by the schedule, not gone by itself
    starts: int = 0
    kills: int = 0  # kill -9 of a live process (a kill scheduled while it is down is moot)
    exits: int = 0  # gone without the run killing it


@dataclass
class Stack:
    ports: Ports
    cluster: bool = False
    logs: Path | None = None
    devstack: object = field(default_factory=load_devstack)
    bootstrap: str = ""
    server_url: str = ""
    database_url: str = ""
    token: str = ""
    services: dict[str, Supervised] = field(default_factory=dict)
    _roots: list[Path] = field(default_factory=list)
    _watch: asyncio.Task | None = None

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Stack:
        try:
            await asyncio.to_thread(self._start_infrastructure)
            self.database_url, self.token = await self._database()
            await asyncio.to_thread(self._start_services)
        except BaseException:
            await asyncio.to_thread(self.close)
            raise
        self._watch = asyncio.create_task(self.supervise(), name="chaos-supervision")
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
        await asyncio.to_thread(self.close)

    def _start_infrastructure(self) -> None:
        self.kafka_root = self._root("alfi-chaos-kafka-")
        self.pg_root = self._root("alfi-chaos-pg-")
        if self.logs is None:
            self.logs = self._root("alfi-chaos-logs-")
        self.logs.mkdir(parents=True, exist_ok=True)
        if self.cluster:
            self.bootstrap = self.devstack.kafka_cluster_up(self.ports.cluster, root=self.kafka_root)
        else:
            self.bootstrap = self.devstack.kafka_up(port=self.ports.broker, root=self.kafka_root)
        self.server_url = self.devstack.pg_up(port=self.ports.postgres, root=self.pg_root)

    def _start_services(self) -> None:
        for name in SERVICES:
            self.services[name] = Supervised(name, self.ports.services[name])
            self._launch(self.services[name])
        for supervised in self.services.values():
            wait_ready(supervised.port, supervised.process, timeout=120)

    def _root(self, prefix: str) -> Path:
        # Under the system's temporary directory: the postgres user must reach the data.
        root = Path(tempfile.mkdtemp(prefix=prefix))
        self._roots.append(root)
        return root

    async def _database(self) -> tuple[str, str]:
        admin = await asyncpg.connect(self.server_url)
        try:
            await admin.execute(f'CREATE DATABASE "{DATABASE}"')
        finally:
            await admin.close()
        url = self.server_url.rsplit("/", 1)[0] + f"/{DATABASE}"
        conn = await asyncpg.connect(url)
        try:
            await migrate_auth(conn)
            token = await issue_token(conn, list(ALL_SCOPES), "chaos")
        finally:
            await conn.close()
        return url, token

    @property
    def env(self) -> dict[str, str]:
        replicas = ("3", "2") if self.cluster else ("1", "1")
        return {"DATABASE_URL": self.database_url, "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
                "ALFI_KAFKA_REPLICATION_FACTOR": replicas[0], "ALFI_KAFKA_MIN_INSYNC_REPLICAS": replicas[1],
                # The load replays 2022-2024: no retention clock; erasures complete
                # (keys deleted, stats anonymises) ERASURE_GRACE_SECONDS after them.
                "ALFI_RETENTION_ENABLED": "false", "ALFI_ERASURE_GRACE_SECONDS": str(ERASURE_GRACE_SECONDS)}

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports.services[service]}"

    def close(self) -> None:
        """Stop everything this stack started and remove its roots (logs given by the
        caller are kept)."""
        for supervised in self.services.values():
            if supervised.process is not None:
                with contextlib.suppress(Exception):
                    stop(supervised.process, kill=True)
        with contextlib.suppress(Exception):
            if self.cluster:
                for node in (1, 2, 3):
                    self.devstack.kafka_node_down(node, getattr(self, "kafka_root", None), kill=True)
            elif hasattr(self, "kafka_root"):
                self.devstack.kafka_down(self.kafka_root, kill=True)
        with contextlib.suppress(Exception):
            if hasattr(self, "pg_root"):
                self.devstack.pg_down(self.pg_root, immediate=True)
        for root in self._roots:
            shutil.rmtree(root, ignore_errors=True)

    # ------------------------------------------------------------ services

    def _launch(self, supervised: Supervised) -> None:
        module = f"services.{supervised.name}"
        supervised.process = start_service(module, supervised.port, self.env, self.logs / f"{supervised.name}.log")
        supervised.starts += 1

    async def supervise(self, interval: float = 0.25) -> None:
        """Start again every service whose process is gone, once its hold has passed."""
        while True:
            now = time.monotonic()
            for supervised in self.services.values():
                process = supervised.process
                if process is not None and process.poll() is None:
                    continue
                if process is not None:  # just found gone
                    if not supervised.killed:  # not by the schedule: it exited by itself
                        supervised.exits += 1
                        supervised.held_until = now + 1.0
                    supervised.killed = False
                    supervised.process = None
                if now >= supervised.held_until:
                    self._launch(supervised)
            await asyncio.sleep(interval)

    def kill(self, service: str, down_for: float) -> None:
        """kill -9 of the service's process group; supervision starts it after `down_for`."""
        supervised = self.services[service]
        supervised.held_until = time.monotonic() + down_for
        if supervised.process is not None and supervised.process.poll() is None:
            supervised.killed = True
            supervised.kills += 1
            stop(supervised.process, kill=True)

    @property
    def restarts(self) -> int:
        return sum(s.starts - 1 for s in self.services.values())

    @property
    def kills(self) -> int:
        return sum(s.kills for s in self.services.values())

    @property
    def exits(self) -> int:
        return sum(s.exits for s in self.services.values())

    def all_live(self) -> bool:
        return all(s.process is not None and s.process.poll() is None for s in self.services.values())

    # ------------------------------------------------------------ infrastructure faults

    def broker_down(self, node: int | None = None) -> None:
        if node is None:
            self.devstack.kafka_down(self.kafka_root, kill=True)
        else:
            self.devstack.kafka_node_down(node, self.kafka_root, kill=True)

    def broker_up(self, node: int | None = None) -> None:
        if node is None:
            self.devstack.kafka_up(port=self.ports.broker, root=self.kafka_root)
        else:
            self.devstack.kafka_node_up(node, self.kafka_root)

    def postgres_crash(self) -> None:
        self.devstack.pg_down(self.pg_root, immediate=True)

    def postgres_up(self) -> None:
        self.devstack.pg_up(port=self.ports.postgres, root=self.pg_root)
