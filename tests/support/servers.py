"""Real uvicorn servers for ASGI apps, on free loopback ports, inside the test's event loop; what the proxy tests'
aiohttp upstreams share."""

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator

import uvicorn
from aiohttp import web

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


async def body_digest(request: web.Request) -> dict[str, object]:
    """`{"size", "sha256"}` of an aiohttp request's body, read as it streams (never held whole)."""
    digest = hashlib.sha256()
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        digest.update(chunk)
        size += len(chunk)
    return {"size": size, "sha256": digest.hexdigest()}
