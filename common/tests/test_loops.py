"""stop_tasks: background tasks end even when a cancellation is swallowed below them, and what they ended with is
taken (no "exception was never retrieved" at collection)."""

import asyncio
import gc

from titanium_common.loops import stop_tasks


async def test_a_task_that_swallows_its_first_cancellation_still_stops():
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                swallowed += 1  # as a client that turns a cancellation into its own timeout would
                if swallowed > 1:
                    raise

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await stop_tasks([task, None], retry_s=0.05)
    assert task.cancelled() and swallowed == 2


async def test_an_error_a_task_ended_with_is_taken(caplog):
    async def failed() -> None:
        raise RuntimeError("lost the connection")

    task = asyncio.create_task(failed())
    await asyncio.sleep(0)
    await stop_tasks([task])
    del task
    gc.collect()
    assert "never retrieved" not in caplog.text
