from aiohttp import web

from titanium_common.aiohttp_app import create_aiohttp_app
from titanium_common.browser_security import secure_browser_pages
from titanium_common.runner import serve

from . import api
from .settings import DashboardSettings


def create_app(settings: DashboardSettings | None = None) -> web.Application:
    settings = settings or DashboardSettings()
    if not (settings.chartjs_dir / "chart.umd.js").is_file():
        # The page cannot draw a chart without it; say how to fix it rather than serve a broken page.
        raise RuntimeError(f"Chart.js not found in {settings.chartjs_dir}: run `npm ci` in dashboard-ui/")
    app = create_aiohttp_app(settings, distribution="dashboard-ui")
    app[api.SETTINGS] = settings
    secure_browser_pages(app)
    api.add_routes(app, settings)
    return app


def main() -> None:
    settings = DashboardSettings()
    serve(create_app(settings), settings)
