from aiohttp import web

from titanium_common.aiohttp_app import KIT, attach_client_session, create_aiohttp_app
from titanium_common.pool import attach_pools
from titanium_common.proxy import close_websockets
from titanium_common.runner import serve_proxy
from titanium_common.websocket_quota import websocket_quota

from . import api, docs
from .cors import setup_cors
from .routing import RouteTable
from .settings import GatewaySettings
from .upstreams import Upstreams


async def close_relayed_websockets(app: web.Application) -> None:
    await close_websockets(app[api.OPEN_WEBSOCKETS])


def create_app(settings: GatewaySettings | None = None) -> web.Application:
    settings = settings or GatewaySettings()
    app = create_aiohttp_app(
        settings, distribution="api-gateway", client_max_size=settings.max_body_bytes, resolve_dot_segments=True
    )
    app[api.SETTINGS] = settings
    upstreams = Upstreams(settings.service_replicas(), settings)
    app[api.ROUTES] = RouteTable({prefix: upstreams[name] for prefix, name in settings.prefixes().items()})
    route_timeouts = settings.route_timeouts()
    app[api.ROUTE_TIMEOUTS] = RouteTable(route_timeouts)
    app[KIT].add_stats_provider(upstreams.stats)
    app[api.OPEN_WEBSOCKETS] = set()
    quota = app[api.WEBSOCKET_QUOTA] = websocket_quota(settings)

    async def websocket_figures() -> dict:
        return {"websockets": quota.snapshot()}

    app[KIT].add_stats_provider(websocket_figures)
    app.on_shutdown.append(close_relayed_websockets)
    setup_cors(app, settings.allowed_origins(), settings.cors_max_age_s)

    async def connection_pools(app: web.Application):
        upstreams.open(
            connect_s=settings.upstream_connect_timeout_s,
            response_s=settings.upstream_response_timeout_s,
            pool_size=settings.upstream_pool_size,
            route_timeouts=route_timeouts.values(),
            websocket_limit=settings.websocket_max_total,
        )
        yield
        await upstreams.close()

    # The pools' health checks run as the load balancer's do, on the app's kit session (apart from the forwarding
    # pools, so that one saturated by slow answers cannot fail them).
    attach_client_session(app, limit=len(upstreams.by_name) * 4, pass_request_id=False)
    attach_pools(app, upstreams.pools)
    app.cleanup_ctx.append(connection_pools)
    docs.add_routes(app, upstreams)
    api.add_routes(app)
    return app


def main() -> None:
    settings = GatewaySettings()
    serve_proxy(create_app(settings), settings)
