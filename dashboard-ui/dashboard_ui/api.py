"""Dashboard routes: the page, its run-time configuration, and Chart.js from node_modules under a local path."""

from pathlib import Path

from aiohttp import web

from titanium_common.catalog import CATALOGUE

from .settings import DashboardSettings

SETTINGS = web.AppKey("settings", DashboardSettings)


def file_from(root: Path):
    """A handler for the files under `root`; anything else (missing, a folder, `..`, a name no file can have: a NUL
    byte, one too long for the file system) is the kit's JSON 404."""
    root = root.resolve()

    async def serve_file(request: web.Request) -> web.FileResponse:
        try:
            path = (root / request.match_info["path"]).resolve()
            found = path.is_relative_to(root) and path.is_file()
        except (ValueError, OSError):
            found = False
        if not found:
            raise web.HTTPNotFound
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})

    return serve_file


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(request.app[SETTINGS].static_dir / "index.html", headers={"Cache-Control": "no-cache"})


async def dashboard_config(request: web.Request) -> web.Response:
    """What the page cannot know by itself: the poll interval, the API docs links, and the order of the service
    cards (the catalogue's)."""
    settings = request.app[SETTINGS]
    return web.json_response(
        {"poll_interval_s": settings.poll_interval_s, "api_docs": settings.api_docs(), "services": CATALOGUE.names()}
    )


def add_routes(app: web.Application, settings: DashboardSettings) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/dashboard-config.json", dashboard_config)
    app.router.add_get("/vendor/chart.js/{path:.+}", file_from(settings.chartjs_dir))
    app.router.add_get("/{path:.+}", file_from(settings.static_dir))
