"""edge-config tests: the real service on a loopback port, real device doubles (aiohttp servers answering the
device-side exporter's /health, /reload and /config), a real database (SQLite and PostgreSQL) and, for the
Kubernetes parts, the real kubernetes_asyncio client against the shared API server double (tests/support)."""

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiohttp import web

from edge_config.main import create_app
from edge_config.settings import EdgeConfigSettings
from tests.support.identity import auth_processes
from tests.support.polling import eventually
from tests.support.servers import serving

__all__ = ["auth_processes"]


@dataclass
class DeviceDouble:
    """One edge device's exporter on its `reload_port`. `health`/`reload` are the HTTP statuses it answers;
    `hang` makes every call wait until the test ends (a device that accepts connections but never answers)."""

    host: str = "127.0.0.1"
    port: int = 0
    health: int = 200
    reload: int = 200
    hang: bool = False
    config: dict[str, Any] = field(default_factory=lambda: {"device_type": "jetson_orin", "port": 9100})
    calls: list[str] = field(default_factory=list)
    in_flight: Counter = field(default_factory=Counter)
    most_in_flight: Counter = field(default_factory=Counter)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def count(self, call: str) -> int:
        return self.calls.count(call)

    async def _answer(self, request: web.Request) -> web.Response:
        call = f"{request.method} {request.path}"
        self.calls.append(call)
        self.in_flight[call] += 1
        self.most_in_flight[call] = max(self.most_in_flight[call], self.in_flight[call])
        try:
            if self.hang:
                await self.released.wait()
            if request.path == "/health":
                return web.json_response({"status": "ok" if self.health == 200 else "bad"}, status=self.health)
            if request.path == "/reload":
                return web.json_response({"reloaded": self.reload == 200}, status=self.reload)
            return web.json_response(self.config)
        finally:
            self.in_flight[call] -= 1


class DeviceFarm:
    """Starts device doubles on free loopback ports (`servers`) and releases their held calls at the end."""

    def __init__(self, servers) -> None:
        self.servers = servers
        self.devices: list[DeviceDouble] = []

    async def start(self, host: str = "127.0.0.1", **behaviour) -> DeviceDouble:
        device = DeviceDouble(host=host, **behaviour)
        app = web.Application()
        app.router.add_get("/health", device._answer)
        app.router.add_post("/reload", device._answer)
        app.router.add_get("/config", device._answer)
        device.port = (await self.servers(app, host=host)).port
        self.devices.append(device)
        return device

    def release(self) -> None:
        for device in self.devices:
            device.released.set()


@pytest.fixture
async def farm(servers) -> AsyncIterator[DeviceFarm]:
    devices = DeviceFarm(servers)
    yield devices
    # Before `servers` stops them: a hanging device's calls end first.
    devices.release()


@dataclass
class Edge:
    """`client` carries an admin token; `anonymous` none (what a device sends)."""

    app: Any
    url: str
    client: httpx.AsyncClient
    anonymous: httpx.AsyncClient

    async def probe_round(self) -> dict[str, Any]:
        """One background probe round, now (tests run it by hand instead of waiting for the interval)."""
        return await self.app.state.monitor.probe_round()

    async def register(self, device_id: str, device: DeviceDouble | None = None, **config) -> dict[str, Any]:
        body = {"device_type": "jetson_orin", **config}
        if device is not None:
            body |= {"ip_address": device.host, "reload_port": device.port}
        answer = await self.client.put(f"/config/{device_id}", json=body)
        assert answer.status_code == 200, answer.text
        return answer.json()

    async def status(self, device_id: str) -> dict[str, Any]:
        answer = await self.client.get(f"/devices/{device_id}/status")
        assert answer.status_code == 200, answer.text
        return answer.json()


@pytest.fixture
def edge_settings(database_target, auth_processes) -> EdgeConfigSettings:
    """Short device timeouts, no automatic probe rounds (tests call `edge.probe_round()`), no cluster."""
    return EdgeConfigSettings(
        env="test",
        health_interval_s=3600,
        health_timeout_s=0.5,
        reload_timeout_s=0.5,
        reload_attempts=3,
        reload_backoff_s=0.01,
        local_config_timeout_s=0.5,
        unhealthy_grace=2,
        kube_mode="off",
        auth_service_url=auth_processes.auth_url,
        **database_target.settings(),
    )


@pytest.fixture
def start_edge(edge_settings, auth_processes) -> Callable[..., contextlib.AbstractAsyncContextManager[Edge]]:
    """`async with start_edge(**setting_overrides) as edge:` a running edge-config."""

    @contextlib.asynccontextmanager
    async def start(**overrides) -> AsyncIterator[Edge]:
        settings = edge_settings.model_copy(update=overrides)
        app = create_app(settings)
        admin = {"Authorization": f"Bearer {await auth_processes.admin_token()}"}
        async with (
            serving(app) as url,
            httpx.AsyncClient(base_url=url, timeout=30, headers=admin) as client,
            httpx.AsyncClient(base_url=url, timeout=30) as anonymous,
        ):

            async def first_round_done() -> bool:
                return app.state.monitor.rounds >= 1

            # The round run at start-up must not probe devices the test registers: tests start after it.
            await eventually(first_round_done)
            yield Edge(app, url, client, anonymous)

    return start


@pytest.fixture
async def edge(start_edge) -> AsyncIterator[Edge]:
    async with start_edge() as running:
        yield running
