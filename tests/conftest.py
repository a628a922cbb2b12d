"""Markers follow the folder (tests/unit, tests/integration, tests/e2e); infrastructure
fixtures start only when a collected test asks for them."""

from __future__ import annotations

from pathlib import Path

import pytest

LAYERS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        layer = Path(item.fspath).relative_to(Path(__file__).parent).parts[0]
        if layer in LAYERS:
            item.add_marker(getattr(pytest.mark, layer))
