"""ops-mcp tests: diagnose()'s rules on their own, and the service against real services on loopback."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

WAIT_S = 20.0


async def until(check: Callable[[], Awaitable[Any]], timeout_s: float = WAIT_S, every_s: float = 0.1) -> Any:
    """What `check()` returns once it is truthy (what the services do in the background takes a moment)."""
    async with asyncio.timeout(timeout_s):
        while not (result := await check()):  # noqa: ASYNC110 - polling HTTP answers, there is no event to wait on
            await asyncio.sleep(every_s)
    return result
