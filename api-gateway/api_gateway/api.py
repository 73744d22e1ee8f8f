"""Gateway routes: its own health under /api/health, everything else forwarded by the route table."""

from aiohttp import web

from titanium_common.aiohttp_app import CLIENT, KIT, json_error
from titanium_common.proxy import proxy_http

from .routing import RouteTable
from .settings import GatewaySettings

ROUTES = web.AppKey("routes", RouteTable)
SETTINGS = web.AppKey("settings", GatewaySettings)


async def api_health(request: web.Request) -> web.Response:
    return web.json_response(request.app[KIT].health())


async def forward(request: web.Request) -> web.StreamResponse:
    target = request.app[ROUTES].match(request.path)
    if target is None:
        return json_error(404, f"no route for {request.path}")
    name, base_url = target
    return await proxy_http(
        request, request.app[CLIENT], name, base_url, max_body_bytes=request.app[SETTINGS].max_body_bytes
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/health", api_health)
    app.router.add_route("*", "/{tail:.*}", forward)
