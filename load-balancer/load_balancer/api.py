"""Load balancer routes: its liveness alias, everything else forwarded to the gateway replicas."""

import itertools

from aiohttp import web

from titanium_common.aiohttp_app import CLIENT, KIT
from titanium_common.proxy import proxy_http

from .settings import LoadBalancerSettings

SETTINGS = web.AppKey("settings", LoadBalancerSettings)
GATEWAYS = web.AppKey("gateways", itertools.cycle)


async def lb_health(request: web.Request) -> web.Response:
    return web.json_response(request.app[KIT].health())


async def forward(request: web.Request) -> web.StreamResponse:
    base_url = next(request.app[GATEWAYS])
    return await proxy_http(
        request, request.app[CLIENT], "api-gateway", base_url, max_body_bytes=request.app[SETTINGS].max_body_bytes
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/lb-health", lb_health)
    app.router.add_route("*", "/{tail:.*}", forward)
