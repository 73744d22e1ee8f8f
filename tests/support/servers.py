"""Real uvicorn servers for ASGI apps, on free loopback ports, inside the test's event loop."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

import uvicorn

from titanium_common.suite import free_port

START_TIMEOUT_S = 30.0


@contextlib.asynccontextmanager
async def serving(app, port: int | None = None) -> AsyncIterator[str]:
    """Serve `app` (lifespan included) until the block ends; yields its base URL."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("server stopped during start-up")
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
