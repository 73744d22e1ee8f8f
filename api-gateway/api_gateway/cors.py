"""CORS for browser pages on other origins: off unless CORS_ORIGINS lists them, and only explicit origins."""

from dataclasses import dataclass

from aiohttp import web

from titanium_common.aiohttp_app import json_error
from titanium_common.logs import REQUEST_ID_HEADER

ALLOWED_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
# When the gateway speaks for CORS, an upstream's own answer on these must not reach the browser.
_UPSTREAM_CORS_HEADERS = ("Access-Control-Allow-Origin", "Access-Control-Allow-Credentials")


@dataclass(frozen=True)
class CorsPolicy:
    origins: frozenset[str]
    max_age_s: int


POLICY = web.AppKey("cors_policy", CorsPolicy)
ALLOWED_ORIGIN = web.RequestKey("cors_allowed_origin", str)


def _vary_origin(response: web.StreamResponse) -> None:
    vary = response.headers.get("Vary", "")
    if "origin" not in vary.lower():
        response.headers["Vary"] = f"{vary}, Origin" if vary else "Origin"


@web.middleware
async def cors_middleware(request: web.Request, handler) -> web.StreamResponse:
    origin = request.headers.get("Origin")
    if origin is None:
        return await handler(request)
    allowed = origin in request.app[POLICY].origins
    if allowed:
        request[ALLOWED_ORIGIN] = origin
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        # A preflight is answered here: the services behind never see it.
        if not allowed:
            return json_error(403, f"origin {origin} is not allowed")
        headers = {
            "Access-Control-Allow-Methods": ALLOWED_METHODS,
            "Access-Control-Max-Age": str(request.app[POLICY].max_age_s),
        }
        if requested := request.headers.get("Access-Control-Request-Headers"):
            headers["Access-Control-Allow-Headers"] = requested
        return web.Response(status=204, headers=headers)
    return await handler(request)


async def _cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name in _UPSTREAM_CORS_HEADERS:
        response.headers.popall(name, None)
    _vary_origin(response)
    if origin := request.get(ALLOWED_ORIGIN):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = REQUEST_ID_HEADER


def setup_cors(app: web.Application, origins: frozenset[str], max_age_s: int) -> None:
    """Without origins nothing is installed: responses pass through exactly as the services sent them."""
    if not origins:
        return
    app[POLICY] = CorsPolicy(origins, max_age_s)
    app.middlewares.append(cors_middleware)
    app.on_response_prepare.append(_cors_headers)
