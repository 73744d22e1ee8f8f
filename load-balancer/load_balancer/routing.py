"""Which pool serves a path: the gateway for the API, the blog, the WebSockets and MCP; the dashboard for the rest."""

from aiohttp import web

from titanium_common.pool import ReplicaPool

from .state import DASHBOARD, GATEWAY

GATEWAY_PREFIXES = ("/api/", "/blog/", "/ws/")
# /mcp: ops-mcp's streamable HTTP endpoint (one path, behind the gateway like the API).
GATEWAY_PATHS = frozenset({"/api", "/ws", "/mcp"})


def pool_for(app: web.Application, path: str) -> ReplicaPool:
    if path.startswith(GATEWAY_PREFIXES) or path in GATEWAY_PATHS:
        return app[GATEWAY]
    return app[DASHBOARD]
