from aiohttp import web

from titanium_common.aiohttp_app import (
    KIT,
    WEBSOCKET_CLIENT,
    attach_client_session,
    attach_upstream_client,
    create_aiohttp_app,
)
from titanium_common.fanout import SharedFanout
from titanium_common.pool import attach_pools, replica_pool
from titanium_common.proxy import close_websockets
from titanium_common.runner import serve_proxy
from titanium_common.websocket_quota import websocket_quota

from . import api, history, state
from .settings import STATS_ONLY, LoadBalancerSettings
from .stats import fan_out, stats_document
from .stream import StatsBroadcaster, attach_stats_stream
from .traces import admin_only
from .traffic import SharedTraffic, TrafficMeter


def create_app(settings: LoadBalancerSettings | None = None, meter: TrafficMeter | None = None) -> web.Application:
    settings = settings or LoadBalancerSettings()
    app = create_aiohttp_app(
        settings,
        distribution="load-balancer",
        client_max_size=settings.max_body_bytes,
        own_stats_route=True,
        trace_guard=admin_only(settings.auth_service_url),
        resolve_dot_segments=True,
    )
    app[state.SETTINGS] = settings
    meter = app[state.METER] = meter or TrafficMeter(window_s=settings.traffic_window_s)
    if settings.redis_url:
        shared = app[state.SHARED] = SharedTraffic(
            meter,
            settings.redis_url,
            prefix=settings.redis_prefix,
            replica=settings.replica_id,
            flush_interval_s=settings.traffic_flush_interval_s,
        )

        async def flushing(app: web.Application):
            await shared.start()
            yield
            await shared.stop()

        app.cleanup_ctx.append(flushing)

        async def redis_answers() -> bool:
            return shared.problem is None

        app[KIT].add_dependency_check("redis", redis_answers)
    app[state.FANOUT] = SharedFanout(lambda: fan_out(app), settings.stats_cache_ttl_s)
    app[state.SOCKETS] = set()
    app[state.WEBSOCKET_QUOTA] = websocket_quota(settings)
    gateway = app[state.GATEWAY] = replica_pool("api-gateway", settings.gateway_urls, settings)
    app[state.DASHBOARD] = replica_pool("dashboard-ui", settings.dashboard_urls, settings)
    # Read by /stats only: their named members are resolved like a pool's, nothing is balanced or health-checked.
    replicas = settings.service_replicas()
    app[state.STATS_POOLS] = [replica_pool(s.name, replicas[s.name], settings) for s in STATS_ONLY]
    # Proxied requests go through the upstream client; the kit session serves health checks and the /stats fan-out,
    # a session of its own the relayed WebSockets (the proxy sets X-Request-ID itself).
    attach_upstream_client(
        app,
        connect_s=settings.upstream_connect_timeout_s,
        response_s=settings.upstream_response_timeout_s,
        limit=settings.upstream_pool_size,
    )
    attach_client_session(app, auto_decompress=False, pass_request_id=False)
    attach_client_session(
        app, WEBSOCKET_CLIENT, limit=settings.websocket_max_total, auto_decompress=False, pass_request_id=False
    )
    attach_pools(app, (gateway, app[state.DASHBOARD]), resolve_only=app[state.STATS_POOLS])

    async def close_sockets(app: web.Application) -> None:
        await close_websockets(app[state.SOCKETS])

    app.on_shutdown.append(close_sockets)
    broadcaster = StatsBroadcaster(
        lambda: stats_document(app),
        interval_s=settings.stats_push_interval_s,
        heartbeat_s=settings.stats_stream_heartbeat_s,
        max_streams=settings.stats_stream_max_clients,
        backlog=settings.stats_stream_backlog,
    )
    attach_stats_stream(app, broadcaster)
    history.attach(app, meter, settings)
    api.add_routes(app)
    return app


def main() -> None:
    settings = LoadBalancerSettings()
    serve_proxy(create_app(settings), settings)
