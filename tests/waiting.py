"""Waiting for a condition that comes true elsewhere (another task, process or server)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable


async def until(
    check: Callable[[], object], timeout: float = 10.0, what: str = "condition"
) -> None:
    """Poll `check` (a function or coroutine function) until it returns something true;
    fail the test once `timeout` seconds pass without."""
    deadline = time.monotonic() + timeout
    while not (await result if inspect.isawaitable(result := check()) else result):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met in {timeout} s")
        await asyncio.sleep(0.02)
