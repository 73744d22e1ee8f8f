import asyncio
import contextlib

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from titanium_common.errors import error_body
from titanium_common.fastapi_app import create_fastapi_app
from titanium_common.runner import serve

from . import api
from .collector import Monitor
from .queries import Ambiguous, Catalog, NotFound
from .settings import ClusterMonitorSettings
from .sources import Source, open_source


async def _not_found(request: Request, exc: NotFound) -> JSONResponse:
    return JSONResponse(error_body(str(exc)), status_code=404)


async def _ambiguous(request: Request, exc: Ambiguous) -> JSONResponse:
    return JSONResponse(error_body(str(exc)), status_code=409)


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
    app.add_exception_handler(NotFound, _not_found)
    app.add_exception_handler(Ambiguous, _ambiguous)

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
