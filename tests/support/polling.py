"""Waiting for what happens in the background (a health check, a lease, a sampler): poll a condition, never sleep a
fixed time and hope. A wait that runs out fails the test, naming what it waited for and what it saw last."""

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

WAIT_S = 10.0


def _timed_out(what: str | None, timeout_s: float, last: Any) -> TimeoutError:
    return TimeoutError(f"{what or 'the condition'}: not within {timeout_s:g} s; last seen: {last!r}"[:2000])


async def eventually(
    check: Callable[[], Any | Awaitable[Any]],
    timeout_s: float = WAIT_S,
    every_s: float = 0.05,
    *,
    until: Callable[[Any], Any] = bool,
    what: str | None = None,
) -> Any:
    """What `check()` returns (a value, or an awaitable of one) once `until(value)` is truthy (by default: once it
    is truthy itself); after `timeout_s`, a TimeoutError naming `what` it waited for and the last value seen."""
    last: Any = None
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                last = check()
                if inspect.isawaitable(last):
                    last = await last
                if until(last):
                    return last
                await asyncio.sleep(every_s)
    except TimeoutError:
        raise _timed_out(what, timeout_s, last) from None


def eventually_blocking(
    check: Callable[[], Any],
    timeout_s: float = WAIT_S,
    every_s: float = 0.05,
    *,
    until: Callable[[Any], Any] = bool,
    what: str | None = None,
) -> Any:
    """`eventually` for code outside an event loop (a launcher driven from a plain test): blocks the thread."""
    deadline = time.monotonic() + timeout_s
    while True:
        last = check()
        if until(last):
            return last
        if time.monotonic() > deadline:
            raise _timed_out(what, timeout_s, last)
        time.sleep(every_s)
