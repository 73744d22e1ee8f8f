"""Gateway routes: its own health under /api/health, everything else forwarded by the route table."""

import time

from aiohttp import web

from titanium_common.aiohttp_app import KIT, json_error
from titanium_common.proxy import proxy_http

from .routing import RouteTable
from .settings import GatewaySettings
from .upstreams import Upstream

ROUTES = web.AppKey("routes", RouteTable[Upstream])
SETTINGS = web.AppKey("settings", GatewaySettings)


async def api_health(request: web.Request) -> web.Response:
    return web.json_response(request.app[KIT].health())


async def forward(request: web.Request) -> web.StreamResponse:
    upstream = request.app[ROUTES].match(request.path)
    if upstream is None:
        return json_error(404, f"no route for {request.path}")
    stats = upstream.stats
    stats.in_flight += 1
    started = time.perf_counter()
    # Anything that escapes proxy_http (e.g. the client vanished before the answer) counts as a failure.
    status = 500
    try:
        response = await proxy_http(
            request,
            upstream.session,
            upstream.name,
            upstream.next_url(),
            max_body_bytes=request.app[SETTINGS].max_body_bytes,
        )
        status = response.status
        return response
    finally:
        stats.in_flight -= 1
        stats.record(status, time.perf_counter() - started)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/health", api_health)
    app.router.add_route("*", "/{tail:.*}", forward)
