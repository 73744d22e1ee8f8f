"""The load balancer's tests: backend apps, the balancer's settings, the balancer in-process or as its own process
(served and started by tests/support/servers.py)."""

import asyncio

import aiohttp
import pytest
from aiohttp import web

from load_balancer.main import create_app
from load_balancer.settings import LoadBalancerSettings
from tests.support.servers import AppServer, ServiceProcess, body_digest, free_port

NAME = web.AppKey("backend_name", str)


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _stats(request: web.Request) -> web.Response:
    return web.json_response({"service": request.app[NAME], "service_status": "online"})


async def _echo(request: web.Request) -> web.Response:
    """Reads the body chunk by chunk (never whole) and says who answered."""
    return web.json_response(
        {
            "backend": request.app[NAME],
            "method": request.method,
            "path": request.raw_path,
            **await body_digest(request),
            "headers": dict(request.headers),
        }
    )


async def _download(request: web.Request) -> web.StreamResponse:
    size = int(request.query["bytes"])
    response = web.StreamResponse()
    response.content_length = size
    await response.prepare(request)
    block = b"d" * (256 * 1024)
    sent = 0
    while sent < size:
        part = block[: min(len(block), size - sent)]
        await response.write(part)
        sent += len(part)
    return response


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(float(request.query.get("s", "1")))
    return web.json_response({"backend": request.app[NAME], "slept": True})


async def _ws_echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for msg in ws:
        if msg.type is aiohttp.WSMsgType.TEXT:
            await ws.send_str(f"{request.app[NAME]}:{msg.data}")
        elif msg.type is aiohttp.WSMsgType.BINARY:
            await ws.send_bytes(msg.data[::-1])
    return ws


def make_backend_app(name: str) -> web.Application:
    app = web.Application(client_max_size=1024**3)
    app[NAME] = name
    app.router.add_get("/health", _health)
    app.router.add_get("/stats", _stats)
    app.router.add_get("/download", _download)
    app.router.add_get("/api/slow", _slow)
    app.router.add_get("/ws/echo", _ws_echo)
    app.router.add_route("*", "/{tail:.*}", _echo)
    return app


def make_lb_settings(**overrides) -> LoadBalancerSettings:
    """Settings for a balancer whose every neighbour is a closed port unless the test says otherwise."""
    nowhere = f"http://127.0.0.1:{free_port()}"
    defaults = {
        "env": "test",
        "gateway_urls": [nowhere],
        "dashboard_urls": [nowhere],
        "auth_service_url": nowhere,
        "user_service_url": nowhere,
        "blog_service_url": nowhere,
        "cluster_monitor_url": nowhere,
        "edge_config_url": nowhere,
        "ops_mcp_url": nowhere,
        "health_check_interval_s": 0.2,
        "health_check_timeout_s": 0.5,
    }
    return LoadBalancerSettings(**(defaults | overrides))


@pytest.fixture
def backend_app():
    """`backend_app(name)`: health, /stats, echo (reads bodies chunk by chunk), /download, /api/slow, /ws/echo."""
    return make_backend_app


@pytest.fixture
def lb_settings():
    """`lb_settings(**overrides)`: every neighbour a closed port, fast health checks, unless overridden."""
    return make_lb_settings


@pytest.fixture
async def start_lb(servers):
    """`await start_lb(settings, meter=None)` runs the real balancer app on a loopback port; returns its AppServer."""

    async def start(settings: LoadBalancerSettings, **kwargs) -> AppServer:
        return await servers(create_app(settings, **kwargs))

    return start


@pytest.fixture
def lb_process(service_processes):
    """`await lb_process(env)`: `python -m load_balancer` as its own process (what only a process shows: RSS,
    signals), a `ServiceProcess`."""

    async def start(env: dict[str, str]) -> ServiceProcess:
        return await service_processes("load_balancer", env)

    return start
