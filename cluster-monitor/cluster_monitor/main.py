import asyncio
import contextlib

from fastapi import FastAPI

from titanium_common.fastapi_app import create_fastapi_app
from titanium_common.lease import open_lease
from titanium_common.loops import stop_tasks
from titanium_common.runner import serve

from . import api
from .collector import Monitor
from .metrics import ClusterMetrics
from .queries import Catalog
from .settings import ClusterMonitorSettings
from .shared import SharedFeed
from .sources import Source, open_source


def create_app(settings: ClusterMonitorSettings | None = None, source: Source | None = None) -> FastAPI:
    """`source` replaces the configured one (tests); otherwise it is chosen at start-up (CLUSTER_SOURCE)."""
    settings = settings or ClusterMonitorSettings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        chosen = source or await open_source(settings)
        lease = shared = None
        if settings.redis_url:
            lease = await open_lease(settings, redis_prefix=settings.redis_prefix)
            shared = SharedFeed(
                settings.redis_url,
                settings.redis_prefix,
                settings.max_data_points,
                settings.event_log_size,
                settings.max_pending_pushes,
            )
            await lease.start()
        monitor = Monitor(settings, chosen, lease=lease, shared=shared)
        app.state.monitor = monitor
        if lease is not None:
            app.state.kit.add_dependency_check("lease", lease.store_answers)
        app.state.catalog = Catalog(monitor)
        tasks = [asyncio.create_task(monitor.heartbeat())]
        if shared is not None:
            try:
                await monitor.replay()  # a restarted or new replica continues the shared history
            except Exception as exc:  # Redis down at start-up: collect alone (the lease says so)
                monitor.shared_error = f"replaying the shared history failed: {exc}"
            tasks += [asyncio.create_task(monitor.follow()), asyncio.create_task(monitor.drain_pushes())]
        await monitor.collect_once()
        tasks.append(asyncio.create_task(monitor.run()))
        try:
            yield
        finally:
            await stop_tasks(tasks)
            if lease is not None:
                await lease.stop()
                await shared.close()
            await chosen.close()

    app = create_fastapi_app(
        settings, title="cluster-monitor", distribution="cluster-monitor", routers=[api.router], lifespan=lifespan
    )

    async def figures() -> dict:
        return await app.state.monitor.stats()

    async def collected() -> bool:
        """Ready once a collection succeeded (a failing cluster still counts: it is reported, not hidden)."""
        return app.state.monitor.last_collection is not None

    app.state.kit.registry.register(ClusterMetrics(lambda: getattr(app.state, "monitor", None)))
    app.state.kit.add_stats_provider(figures)
    app.state.kit.add_readiness_check("collector", collected)
    return app


def main() -> None:
    settings = ClusterMonitorSettings()
    serve(create_app(settings), settings)
