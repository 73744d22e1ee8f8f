"""Gateway routes: its own health under /api/health, everything else forwarded by the route table."""

import time

from aiohttp import web

from titanium_common.aiohttp_app import KIT, add_proxy_route, json_error
from titanium_common.pool import proxy_to_pool, websocket_to_pool
from titanium_common.proxy import CLIENT_CLOSED_REQUEST, is_websocket_upgrade
from titanium_common.websocket_quota import WebSocketQuota

from .routing import RouteTable
from .settings import GatewaySettings
from .upstreams import Upstream

ROUTES = web.AppKey("routes", RouteTable[Upstream])
# Routes with a response timeout of their own (seconds), longest prefix first.
ROUTE_TIMEOUTS = web.AppKey("route_timeouts", RouteTable[float])
SETTINGS = web.AppKey("settings", GatewaySettings)
# Client sides of relayed WebSockets, closed with 1001 when the gateway shuts down.
OPEN_WEBSOCKETS = web.AppKey("open_websockets", set)
WEBSOCKET_QUOTA = web.AppKey("websocket_quota", WebSocketQuota)


async def api_health(request: web.Request) -> web.Response:
    return web.json_response(request.app[KIT].health())


async def forward(request: web.Request) -> web.StreamResponse:
    upstream = request.app[ROUTES].match(request.path)
    if upstream is None:
        return json_error(404, f"no route for {request.path}")
    if is_websocket_upgrade(request):
        return await relay_websocket(request, upstream)
    stats = upstream.stats
    stats.in_flight += 1
    started = time.perf_counter()
    # Stays 499 if the client goes away before an answer exists: not an upstream failure.
    status = CLIENT_CLOSED_REQUEST
    try:
        settings = request.app[SETTINGS]
        response = await proxy_to_pool(
            request,
            upstream.http_within(request.app[ROUTE_TIMEOUTS].match(request.path)),
            upstream.replicas,
            max_body_bytes=settings.max_body_bytes,
            body_read_timeout_s=settings.body_read_timeout_s,
        )
        status = response.status
        return response
    finally:
        stats.in_flight -= 1
        stats.record(status, time.perf_counter() - started)


async def relay_websocket(request: web.Request, upstream: Upstream) -> web.StreamResponse:
    """A relayed socket lives for minutes: it is counted apart, and stays out of the request latency figures."""
    stats = upstream.stats
    stats.websockets_total += 1
    stats.websockets_open += 1
    started = time.perf_counter()
    try:
        response = await websocket_to_pool(
            request,
            upstream.websockets,
            upstream.replicas,
            open_sockets=request.app[OPEN_WEBSOCKETS],
            quota=request.app[WEBSOCKET_QUOTA],
        )
    finally:
        stats.websockets_open -= 1
    if not isinstance(response, web.WebSocketResponse):
        # The upgrade never happened: a 4xx/5xx answer, counted like a request too.
        stats.record(response.status, time.perf_counter() - started)
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/health", api_health)
    add_proxy_route(app, forward)
