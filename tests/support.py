"""Helpers the test layers share."""

from __future__ import annotations

import asyncio


async def wait_until(predicate, timeout: float = 30.0, interval: float = 0.1) -> None:
    """Poll `predicate` (sync or async) until it is true; fail with a clear message."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)
