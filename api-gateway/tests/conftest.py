"""Upstream apps for the gateway tests, and the gateway in-process or as its own process (served and started by
tests/support/servers.py).

Each upstream answers every path with what it received; test headers choose other behaviours:
`X-Test-Hang` (wait until the test ends), `X-Test-Stream: <bytes>` (a chunked body of that size),
`X-Test-Status: <code>`, `X-Test-Header: name=value` (set a response header). A WebSocket upgrade gets a
`hello` message, then each text message back as `echo:<text>`.
"""

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from api_gateway.main import create_app
from api_gateway.settings import GatewaySettings
from tests.support.servers import AppServer, ServiceProcess, body_digest

SERVICES = ("auth-service", "user-service", "blog-service", "cluster-monitor", "edge-config", "ops-mcp")
STREAM_CHUNK = 256 * 1024


def url_setting(service: str) -> str:
    return f"{service.replace('-', '_')}_url"


@dataclass
class Upstreams:
    urls: dict[str, str] = field(default_factory=dict)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    # Requests now held by X-Test-Hang, by service: tests wait on this to know a request is really pending.
    hanging: dict[str, int] = field(default_factory=dict)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    def settings(self) -> dict[str, str]:
        return {url_setting(s): url for s, url in self.urls.items()}

    def environment(self) -> dict[str, str]:
        return {k.upper(): v for k, v in self.settings().items()}

    async def wait_hanging(self, service: str, count: int, timeout_s: float = 10.0) -> None:
        async with asyncio.timeout(timeout_s), self.changed:
            await self.changed.wait_for(lambda: self.hanging.get(service, 0) >= count)

    async def count_hanging(self, service: str, delta: int) -> None:
        async with self.changed:
            self.hanging[service] = self.hanging.get(service, 0) + delta
            self.changed.notify_all()


def stream_bytes(size: int):
    """The chunks an upstream sends for `X-Test-Stream: size`."""
    remaining = size
    while remaining:
        chunk = min(remaining, STREAM_CHUNK)
        yield bytes([remaining % 251]) * chunk
        remaining -= chunk


@pytest.fixture
def stream_digest():
    def digest(size: int) -> str:
        sha = hashlib.sha256()
        for chunk in stream_bytes(size):
            sha.update(chunk)
        return sha.hexdigest()

    return digest


def upstream_app(service: str, state: Upstreams) -> web.Application:
    async def websocket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"type": "hello", "service": service, "request_id": request.headers.get("X-Request-ID")})
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                await ws.send_str(f"echo:{message.data}")
            elif message.type == aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(message.data[::-1])
        return ws

    async def answer(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await websocket(request)
        if delay := request.headers.get("X-Test-Delay"):
            await asyncio.sleep(float(delay))
        if "X-Test-Hang" in request.headers:
            await state.count_hanging(service, 1)
            try:
                await state.release.wait()
            finally:
                await state.count_hanging(service, -1)
            return web.json_response({"service": service, "released": True})
        if size := request.headers.get("X-Test-Stream"):
            response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            for chunk in stream_bytes(int(size)):
                await response.write(chunk)
            await response.write_eof()
            return response
        digest = await body_digest(request)
        headers = {}
        if extra := request.headers.get("X-Test-Header"):
            name, _, value = extra.partition("=")
            headers[name] = value
        body = {
            "service": service,
            "method": request.method,
            "path": request.raw_path,
            "headers": dict(request.headers),
            "body_bytes": digest["size"],
            "body_sha256": digest["sha256"],
        }
        return web.json_response(body, status=int(request.headers.get("X-Test-Status", "200")), headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


@pytest.fixture
async def upstreams(servers) -> AsyncIterator[Upstreams]:
    state = Upstreams()
    for service in SERVICES:
        state.urls[service] = (await servers(upstream_app(service, state))).url
    yield state
    # Held requests end before the servers stop.
    state.release.set()


@pytest.fixture
def start_gateway(upstreams: Upstreams, servers):
    """Start the gateway app in the test's loop: `await start_gateway(**settings overrides)` → its AppServer."""

    async def start(**overrides) -> AppServer:
        settings = GatewaySettings(env="test", **{**upstreams.settings(), **overrides})
        return await servers(create_app(settings))

    return start


@pytest.fixture
async def gateway(start_gateway) -> AppServer:
    return await start_gateway()


@pytest.fixture
def run_gateway_process():
    """`async with run_gateway_process(env) as base_url:` the gateway as a separate process, configured only by
    the environment."""

    @contextlib.asynccontextmanager
    async def run(env: dict[str, str]) -> AsyncIterator[str]:
        async with ServiceProcess("api_gateway", env) as process:
            yield process.url

    return run
