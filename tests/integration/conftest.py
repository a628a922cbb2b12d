"""The command services in-process on the real stack (tests/integration/platform.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
async def platform(kafka_bootstrap: str, database_url: str):
    from tests.integration.platform import running_platform

    async with running_platform(kafka_bootstrap, database_url) as running:
        yield running
