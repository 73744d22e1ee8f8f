"""Load balancer routes: /stats (fan-out), /api/ws-heartbeat, /lb-health, /blog, and the proxy for the rest."""

import time

import aiohttp
from aiohttp import web
from opentelemetry import context as otel_context

from titanium_common.aiohttp_app import (
    KIT,
    TRACE,
    UPSTREAM,
    WEBSOCKET_CLIENT,
    add_proxy_route,
    echo_request_id,
    json_error,
)
from titanium_common.clock import utc_iso
from titanium_common.pool import proxy_to_pool, websocket_to_pool
from titanium_common.proxy import is_websocket_upgrade

from .routing import pool_for
from .state import METER, SETTINGS, SOCKETS, WEBSOCKET_QUOTA
from .stats import stats_document


async def forward(request: web.Request) -> web.StreamResponse:
    app = request.app
    path = request.path
    if path == "/internal" or path.startswith("/internal/"):
        return json_error(404, f"no route for {path}")
    pool = pool_for(app, path)
    meter = app[METER]
    if is_websocket_upgrade(request):
        meter.count_request()
        meter.relayed_sockets += 1
        try:
            return await websocket_to_pool(
                request, app[WEBSOCKET_CLIENT], pool, open_sockets=app[SOCKETS], quota=app[WEBSOCKET_QUOTA]
            )
        finally:
            meter.relayed_sockets -= 1
    started = time.perf_counter()
    # Stays 499 ("client closed request") if the client drops before an answer exists.
    status = 499
    try:
        settings = app[SETTINGS]
        response = await proxy_to_pool(
            request,
            app[UPSTREAM],
            pool,
            max_body_bytes=settings.max_body_bytes,
            body_read_timeout_s=settings.body_read_timeout_s,
        )
        status = response.status
        return response
    finally:
        meter.record(request.method, path, request.headers.get("X-Heartbeat"), status, time.perf_counter() - started)


async def ws_heartbeat(request: web.Request) -> web.StreamResponse:
    """The dashboard's heartbeat: answers each "hb"; silent clients get pinged and, if the pong never comes,
    closed. Opening, messages and pongs count as real activity."""
    app = request.app
    ws = web.WebSocketResponse(heartbeat=app[SETTINGS].ws_heartbeat_s, autoping=False)
    if not ws.can_prepare(request).ok:
        return json_error(400, "a WebSocket upgrade is expected here")
    # Held open like a relayed socket: counted in the same per-client share.
    quota = app[WEBSOCKET_QUOTA]
    client = quota.client_of(request)
    refused = quota.refusal(client)
    if refused is not None:
        return refused
    with quota.held(client):
        return await _heartbeat(request, ws)


async def _heartbeat(request: web.Request, ws: web.WebSocketResponse) -> web.WebSocketResponse:
    app = request.app
    echo_request_id(request, ws)
    await ws.prepare(request)
    meter = app[METER]
    meter.heartbeat_sockets += 1
    app[SOCKETS].add(ws)
    meter.record_ws_activity()
    try:
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.PING:
                await ws.pong(msg.data)
            elif msg.type is aiohttp.WSMsgType.ERROR:
                break
            meter.record_ws_activity()
            if msg.type is aiohttp.WSMsgType.TEXT and msg.data == "hb":
                await ws.send_json({"type": "hb", "timestamp": utc_iso()})
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        pass  # the client vanished: the socket is closed below like any other
    finally:
        meter.heartbeat_sockets -= 1
        app[SOCKETS].discard(ws)
        await ws.close()
    return ws


async def stats(request: web.Request) -> web.Response:
    span = request.get(TRACE)
    if span is None:
        return web.json_response(await stats_document(request.app))
    # The fan-out's calls are children of this request's span.
    token = request.app[KIT].tracing.use_proxy_span(span)
    try:
        return web.json_response(await stats_document(request.app, span))
    finally:
        otel_context.detach(token)


async def lb_health(request: web.Request) -> web.Response:
    return web.json_response(request.app[KIT].health())


async def blog_slash(request: web.Request) -> web.Response:
    query = request.rel_url.raw_query_string
    return web.Response(status=308, headers={"Location": f"/blog/?{query}" if query else "/blog/"})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/lb-health", lb_health)
    app.router.add_get("/stats", stats)
    app.router.add_get("/api/ws-heartbeat", ws_heartbeat)
    app.router.add_route("*", "/blog", blog_slash)
    add_proxy_route(app, forward)
