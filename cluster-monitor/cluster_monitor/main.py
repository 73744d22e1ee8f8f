import asyncio
import contextlib

from fastapi import FastAPI

from titanium_common.fastapi_app import create_fastapi_app
from titanium_common.runner import serve

from . import api
from .collector import Monitor
from .queries import Catalog
from .settings import ClusterMonitorSettings
from .sources import Source, open_source


def create_app(settings: ClusterMonitorSettings | None = None, source: Source | None = None) -> FastAPI:
    """`source` replaces the configured one (tests); otherwise it is chosen at start-up (CLUSTER_SOURCE)."""
    settings = settings or ClusterMonitorSettings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        chosen = source or await open_source(settings)
        monitor = Monitor(settings, chosen)
        app.state.monitor = monitor
        app.state.catalog = Catalog(monitor)
        await monitor.collect_once()
        tasks = [asyncio.create_task(monitor.run()), asyncio.create_task(monitor.heartbeat())]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await chosen.close()

    app = create_fastapi_app(
        settings, title="cluster-monitor", distribution="cluster-monitor", routers=[api.router], lifespan=lifespan
    )

    async def figures() -> dict:
        return await app.state.monitor.stats()

    async def collected() -> bool:
        """Ready once a collection succeeded (a failing cluster still counts: it is reported, not hidden)."""
        return app.state.monitor.last_collection is not None

    app.state.kit.add_stats_provider(figures)
    app.state.kit.add_readiness_check("collector", collected)
    return app


def main() -> None:
    settings = ClusterMonitorSettings()
    serve(create_app(settings), settings)
