from aiohttp import web

from titanium_common.aiohttp_app import attach_client_session, create_aiohttp_app
from titanium_common.runner import serve

from . import api
from .routing import RouteTable
from .settings import GatewaySettings


def create_app(settings: GatewaySettings | None = None) -> web.Application:
    settings = settings or GatewaySettings()
    app = create_aiohttp_app(settings, distribution="api-gateway", client_max_size=settings.max_body_bytes)
    app[api.SETTINGS] = settings
    app[api.ROUTES] = RouteTable(settings.route_table())
    attach_client_session(app, auto_decompress=False)
    api.add_routes(app)
    return app


def main() -> None:
    settings = GatewaySettings()
    serve(create_app(settings), settings)
