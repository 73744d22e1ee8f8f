import itertools

from aiohttp import web

from titanium_common.aiohttp_app import attach_client_session, create_aiohttp_app
from titanium_common.runner import serve

from . import api
from .settings import LoadBalancerSettings


def create_app(settings: LoadBalancerSettings | None = None) -> web.Application:
    settings = settings or LoadBalancerSettings()
    app = create_aiohttp_app(settings, distribution="load-balancer", client_max_size=settings.max_body_bytes)
    app[api.SETTINGS] = settings
    app[api.GATEWAYS] = itertools.cycle(settings.gateway_urls)
    attach_client_session(app, auto_decompress=False)
    api.add_routes(app)
    return app


def main() -> None:
    settings = LoadBalancerSettings()
    serve(create_app(settings), settings)
