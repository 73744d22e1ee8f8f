"""Real servers on loopback ports for the load balancer's tests: backends in-process, the balancer in-process
(AppRunner) or as its own process (for memory and signal tests)."""

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from load_balancer.main import create_app
from load_balancer.settings import LoadBalancerSettings
from tests.support.servers import body_digest
from titanium_dev.suite import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
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


class Server:
    """An aiohttp app on a fixed loopback port that can be stopped and started again on the same port."""

    def __init__(self, app: web.Application, port: int | None = None) -> None:
        self.app = app
        self.port = port or free_port()
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> "Server":
        self.runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True).start()
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


@pytest.fixture
async def servers():
    """Start servers with `await servers(app)`; all are stopped at the end."""
    started: list[Server] = []

    async def start(app: web.Application, port: int | None = None) -> Server:
        server = await Server(app, port).start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        await server.stop()


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
    """`await start_lb(settings, meter=None)` runs the real balancer app on a loopback port; returns its Server."""

    async def start(settings: LoadBalancerSettings, **kwargs) -> Server:
        return await servers(create_app(settings, **kwargs))

    return start


class LoadBalancerProcess:
    """`python -m load_balancer` as a child process, for what only a separate process shows (RSS, signals)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.env = os.environ | {"PORT": str(self.port), "ENV": "test", "LOG_LEVEL": "WARNING"} | env
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> "LoadBalancerProcess":
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "load_balancer",
            env=self.env,
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                assert self.proc.returncode is None, await self.output()
                try:
                    async with http.get(f"{self.url}/health") as answer:
                        if answer.status == 200:
                            return self
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        raise TimeoutError("the load balancer did not start")

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    async def output(self) -> str:
        return (await self.proc.stdout.read()).decode()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


@pytest.fixture
async def lb_process():
    started: list[LoadBalancerProcess] = []

    async def start(env: dict[str, str]) -> LoadBalancerProcess:
        process = LoadBalancerProcess(env)
        started.append(process)
        return await process.start()

    yield start
    for process in started:
        await process.stop()
