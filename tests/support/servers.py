"""Real uvicorn servers for ASGI apps, on free loopback ports, inside the test's event loop; what the proxy tests'
aiohttp upstreams share."""

import asyncio
import contextlib
import hashlib
import ipaddress
import socket
from collections.abc import AsyncIterator

import uvicorn
from aiohttp import web

from titanium_dev.suite import free_port

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


def _bindable(family: int, address: str) -> bool:
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((address, 0))
    except OSError:
        return False
    return True


def host_address(version: int = 4) -> str | None:
    """An address of this host that is neither loopback nor link-local (what a device on a LAN has), or None.
    For tests of what must never hold a loopback address (Kubernetes Endpoints)."""
    family = socket.AF_INET if version == 4 else socket.AF_INET6
    candidates: list[str] = []
    with contextlib.suppress(OSError):
        candidates += [info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, family)]
    with contextlib.suppress(OSError), socket.socket(family, socket.SOCK_DGRAM) as udp:
        # No packet is sent: connecting a UDP socket only picks the source address of the default route.
        udp.connect(("192.0.2.1", 9) if version == 4 else ("2001:db8::1", 9))
        candidates.append(udp.getsockname()[0])
    for candidate in candidates:
        address = ipaddress.ip_address(candidate.split("%")[0])
        if not (address.is_loopback or address.is_link_local) and _bindable(family, str(address)):
            return str(address)
    return None
