"""The containers' health check: the service's port (PORT or its settings default) and its /health or /ready."""

import asyncio
import os
import subprocess
import sys

import pytest
from aiohttp import web

from tests.support.servers import AppServer, free_port
from titanium_common import healthcheck


@pytest.mark.parametrize(
    ("service", "port"),
    [
        ("load-balancer", 7100),
        ("api-gateway", 8000),
        ("user-service", 8002),
        ("edge-config", 8005),
        ("dashboard-ui", 8080),
    ],
)
def test_the_default_port_is_the_services_own(service, port):
    assert healthcheck.default_port(service) == port


def test_an_unknown_service_is_named():
    with pytest.raises(LookupError, match="no-such-service"):
        healthcheck.default_port("no-such-service")


@pytest.fixture
async def service():
    """A service answering /health 200 and /ready 503, on a free port."""

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def ready(request: web.Request) -> web.Response:
        return web.json_response({"detail": "db down"}, status=503)

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    async with AppServer(app) as server:
        yield server.port


async def run_check(port: int, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PORT": str(port), "SERVICE": "user-service"}
    command = [sys.executable, "-m", "titanium_common.healthcheck", *args]
    return await asyncio.to_thread(subprocess.run, command, env=env, capture_output=True, text=True, timeout=30)


async def test_healthy_exits_0_and_a_failing_path_exits_1_saying_why(service):
    assert (await run_check(service)).returncode == 0
    not_ready = await run_check(service, "/ready")
    assert not_ready.returncode == 1
    assert "/ready answered 503" in not_ready.stderr


async def test_nothing_listening_exits_1():
    result = await run_check(free_port())
    assert result.returncode == 1
    assert "unhealthy" in result.stderr
