import asyncio
import contextlib
from collections import Counter
from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from titanium_common.auth_client import token_verifier
from titanium_common.db import Database
from titanium_common.errors import error_body
from titanium_common.fastapi_app import create_fastapi_app
from titanium_common.http_client import create_client_session
from titanium_common.lease import open_lease
from titanium_common.loops import stop_tasks
from titanium_common.runner import serve

from . import api
from .addresses import LOOPBACK_CIDRS, AddressPolicy, parse_cidrs, suite_endpoints
from .devices import DeviceClient
from .health import STATUSES, HealthMonitor, SharedHealth
from .kube import KubeSync
from .metrics import DeviceMetrics
from .reloads import Reloader
from .settings import EdgeConfigSettings
from .store import DeviceStore

MIGRATIONS = Path(__file__).parent / "migrations"
# Configs are small; a bigger body is refused before it is read (the gateway allows 10 MiB).
MAX_BODY_BYTES = 1024 * 1024


# curl -d sends this Content-Type by default (the original server's documented examples do); edge-config takes no
# forms.
_FORM = b"application/x-www-form-urlencoded"


class RequestBodies:
    """Bodies: over MAX_BODY_BYTES is 413, declared or not (a chunked body is counted as it arrives), and a body
    without a Content-Type, or with curl's default form type, is read as the JSON it is."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            response = JSONResponse(error_body(f"request body over {MAX_BODY_BYTES} bytes"), status_code=413)
            await response(scope, receive, send)
            return
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if content_type in (b"", _FORM) and scope["method"] in ("PUT", "POST", "PATCH"):
            kept = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            scope = {**scope, "headers": [*kept, (b"content-type", b"application/json")]}
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > MAX_BODY_BYTES:
                    # An HTTPException: FastAPI passes it on from a body read (anything else becomes its 400).
                    raise HTTPException(413, f"request body over {MAX_BODY_BYTES} bytes")
            return message

        await self.app(scope, counted, send)


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
        kube = KubeSync(store, None, settings)
        await kube.start()
        # Probes and the periodic sync run on the lease holder only; API writes work on every replica.
        lease = open_lease(settings, redis_prefix=settings.redis_prefix, kube_api_client=kube.api_client)
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
        kube.monitor = app.state.monitor = monitor
        device_metrics.monitor = monitor
        app.state.kit.add_dependency_check("lease", lease.store_answers)
        app.state.kube = kube
        app.state.reloader = Reloader(client, store, settings.reload_attempts, settings.reload_backoff_s)
        loops = [asyncio.create_task(monitor.run(), name="health probes")]
        if settings.sync_interval_s:
            loops.append(asyncio.create_task(kube.run(lease), name="kubernetes sync"))
        try:
            async with token_verifier(settings.auth_service_url) as app.state.verifier:
                yield
        finally:
            await stop_tasks(loops)
            await app.state.reloader.close()
            await lease.stop()
            if shared is not None:
                await shared.close()
            await kube.close()
            await session.close()
            await db.close()

    app = create_fastapi_app(
        settings, title="edge-config", distribution="edge-config", routers=[api.router], lifespan=lifespan
    )
    # One router, mounted twice: the device-facing paths at the root (devices, scripts) and under /api/edge (gateway).
    app.include_router(api.router, prefix="/api/edge")
    # Inside the kit's middleware (appended, not prepended), so a refused body still gets a request id and counts.
    app.user_middleware.append(Middleware(RequestBodies))
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
    device_metrics = DeviceMetrics()
    app.state.kit.registry.register(device_metrics)
    return app


def main() -> None:
    settings = EdgeConfigSettings()
    serve(create_app(settings), settings)
