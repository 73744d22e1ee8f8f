"""Dashboard routes: the page, its run-time configuration, and Chart.js from node_modules under a local path."""

from aiohttp import web

from .settings import DashboardSettings

SETTINGS = web.AppKey("settings", DashboardSettings)
CHARTJS_PREFIX = "/vendor/chart.js"


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(request.app[SETTINGS].static_dir / "index.html")


async def dashboard_config(request: web.Request) -> web.Response:
    """What the page cannot know by itself; nginx serves a static copy of this file in containers."""
    settings = request.app[SETTINGS]
    return web.json_response({"poll_interval_s": settings.poll_interval_s, "api_docs": settings.api_docs()})


def add_routes(app: web.Application, settings: DashboardSettings) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/dashboard-config.json", dashboard_config)
    app.router.add_static(CHARTJS_PREFIX, settings.chartjs_dir)
    app.router.add_static("/", settings.static_dir)
