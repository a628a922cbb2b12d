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


def wait_ready(port: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"service on port {port} exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1).status_code == 200:
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
