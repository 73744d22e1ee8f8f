"""Background loops that survive a failed round but still stop when cancelled."""

import asyncio
from collections.abc import Iterable


def raise_if_cancelling() -> None:
    """Call where a loop catches `Exception`: some clients (redis-py among them) turn a cancellation that lands
    mid-call into an error of their own, and a loop that shrugs errors off would then never stop."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def stop_tasks(tasks: Iterable[asyncio.Task | None], *, retry_s: float = 0.5) -> None:
    """Cancel background tasks (None: one never started) and wait until they end; a task whose cancellation got
    swallowed somewhere below it (a client turning it into a timeout at the wrong moment) is cancelled again rather
    than waited on forever. An error a task ended with is taken here, as gather(return_exceptions=True) would."""
    started = [task for task in tasks if task is not None]
    pending = {task for task in started if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=retry_s)
    for task in started:
        if not task.cancelled():
            task.exception()
