"""Waiting for what happens in the background (a health check, a lease, a sampler): poll a condition, never sleep a
fixed time and hope."""

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

WAIT_S = 10.0


async def eventually(
    check: Callable[[], Any | Awaitable[Any]], timeout_s: float = WAIT_S, every_s: float = 0.05
) -> Any:
    """What `check()` returns (a value, or an awaitable of one) once it is truthy; TimeoutError after `timeout_s`."""
    async with asyncio.timeout(timeout_s):
        while True:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return result
            await asyncio.sleep(every_s)
