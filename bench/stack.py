"""Start service processes for benchmarks and end-to-end tests, and wait until ready."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


def start_service(module: str, port: int, env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", module],
            env={**os.environ, **env, "ALFI_HTTP_PORT": str(port), "ALFI_LOG_FORMAT": "json"},
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )


def wait_ready(port: int, process: subprocess.Popen, timeout: float = 60.0, path: str = "/health/ready") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"service on port {port} exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"service on port {port} not ready within {timeout}s")


def stop(process: subprocess.Popen, kill: bool = False) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
        process.wait(timeout=30)


@contextlib.contextmanager
def service(module: str, port: int, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    process = start_service(module, port, env, log)
    try:
        wait_ready(port, process)
        yield process
    finally:
        stop(process)


def load_devstack():  # noqa: ANN201
    """deploy/local/devstack.py is a script, not a package: load it by path, once."""
    import importlib.util

    if "devstack" in sys.modules:
        return sys.modules["devstack"]
    spec = importlib.util.spec_from_file_location("devstack", REPO / "deploy/local/devstack.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["devstack"] = module
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def isolated_infrastructure(kafka_port: int | None = None) -> Iterator[tuple[str, str]]:
    """A throwaway broker (port BENCH_KAFKA_PORT, 19292 by default) and a fresh database,
    removed afterwards."""
    import asyncio
    import shutil
    import tempfile
    import uuid
    from urllib.parse import urlsplit, urlunsplit

    import asyncpg

    devstack = load_devstack()
    kafka_port = kafka_port or int(os.environ.get("BENCH_KAFKA_PORT", "19292"))
    root = Path(tempfile.mkdtemp(prefix="alfi-bench-kafka-"))
    server = devstack.pg_up()
    name = f"alfi_bench_{uuid.uuid4().hex[:8]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(server)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        bootstrap = devstack.kafka_up(port=kafka_port, root=root)
        yield bootstrap, urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    finally:
        devstack.kafka_down(root)
        shutil.rmtree(root, ignore_errors=True)
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
