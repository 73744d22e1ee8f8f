import asyncio
import contextlib
from collections import Counter
from pathlib import Path

from fastapi import FastAPI

from titanium_common.auth_client import settings_token_verifier
from titanium_common.db import Database
from titanium_common.fastapi_app import create_fastapi_app
from titanium_common.http_client import create_client_session
from titanium_common.lease import open_lease
from titanium_common.loops import stop_tasks
from titanium_common.runner import serve

from . import api
from .addresses import LOOPBACK_CIDRS, AddressPolicy, parse_cidrs, suite_endpoints
from .devices import DeviceClient
from .health import STATUSES, HealthMonitor, SharedHealth
from .kube import KubeSync, connect
from .metrics import DeviceMetrics
from .reloads import Reloader
from .settings import EdgeConfigSettings
from .store import DeviceStore

MIGRATIONS = Path(__file__).parent / "migrations"
# Configs are small; a bigger body is refused before it is read (the gateway allows 10 MiB).
MAX_BODY_BYTES = 1024 * 1024


def create_app(settings: EdgeConfigSettings | None = None) -> FastAPI:
    settings = settings or EdgeConfigSettings()
    db = Database.from_settings(settings, migrations=MIGRATIONS)
    allowed = settings.device_allowed_cidrs
    if allowed is None:
        # Local device doubles (make run, tests) answer on loopback; nothing else admits it unasked.
        allowed = LOOPBACK_CIDRS if settings.env in ("development", "test") else ""
    allowed_networks = parse_cidrs(allowed)
    store = DeviceStore(db)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await db.start()
        own = [*settings.suite_urls.split(","), settings.auth_service_url, f"http://{settings.host}:{settings.port}"]
        app.state.policy = policy = AddressPolicy(allowed_networks, await suite_endpoints(own))
        session = create_client_session()
        client = DeviceClient(
            session, settings.health_timeout_s, settings.reload_timeout_s, settings.local_config_timeout_s, policy
        )
        app.state.devices = client
        # Built in dependency order: the lease, the probes that follow it, the sync that reads their results.
        # Probes and the periodic sync run on the lease holder only; API writes work on every replica.
        lease = await open_lease(settings, redis_prefix=settings.redis_prefix)
        app.state.lease = lease
        await lease.start()
        # Followers read the holder's probe results from Redis; without Redis every replica probes for itself.
        shared = SharedHealth(settings.redis_url, settings.redis_prefix) if settings.redis_url else None
        monitor = HealthMonitor(
            store,
            client,
            settings.health_interval_s,
            settings.probe_concurrency,
            lease=lease if shared is not None else None,
            shared=shared,
        )
        app.state.monitor = monitor
        device_metrics = DeviceMetrics(monitor)
        app.state.kit.registry.register(device_metrics)
        app.state.kit.add_dependency_check("lease", lease.store_answers)
        kube = KubeSync(store, monitor, settings, *await connect(settings))
        app.state.kube = kube
        app.state.reloader = Reloader(client, store, settings.reload_attempts, settings.reload_backoff_s)
        loops = [asyncio.create_task(monitor.run(), name="health probes")]
        if settings.sync_interval_s:
            loops.append(asyncio.create_task(kube.run(lease), name="kubernetes sync"))
        try:
            async with settings_token_verifier(settings) as app.state.verifier:
                yield
        finally:
            await stop_tasks(loops)
            await app.state.reloader.close()
            await lease.stop()
            if shared is not None:
                await shared.close()
            await kube.close()
            app.state.kit.registry.unregister(device_metrics)
            await session.close()
            await db.close()

    app = create_fastapi_app(
        settings,
        title="edge-config",
        distribution="edge-config",
        routers=[api.router],
        lifespan=lifespan,
        max_body_bytes=MAX_BODY_BYTES,
    )
    # One router, mounted twice: the device-facing paths at the root (devices, scripts) and under /api/edge (gateway).
    app.include_router(api.router, prefix="/api/edge")
    app.state.store = store
    app.state.settings = settings
    db.attach(app.state.kit)

    async def edge_figures() -> dict:
        monitor: HealthMonitor = app.state.monitor
        by_status = Counter(monitor.of(record).status for record in await store.all())
        return {
            "devices": {"total": by_status.total(), "by_status": {s: by_status.get(s, 0) for s in STATUSES}},
            "health_probes": {
                "interval_s": settings.health_interval_s,
                "rounds_probed_here": monitor.rounds,
                "last_round": monitor.last_round,
            },
            "lease": app.state.lease.snapshot(),
            "reloads": dict(app.state.reloader.outcomes),
            "kubernetes": app.state.kube.stats(),
        }

    app.state.kit.add_stats_provider(edge_figures)
    return app


def main() -> None:
    settings = EdgeConfigSettings()
    serve(create_app(settings), settings)
