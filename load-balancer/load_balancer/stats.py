"""The balancer's `/stats` document: its own figures, every service's `/stats` and the original system's keys."""

from aiohttp import web

from titanium_common.aiohttp_app import CLIENT, KIT
from titanium_common.catalog import CATALOGUE
from titanium_common.clock import utc_iso
from titanium_common.fanout import fetch_all
from titanium_common.tracing import ProxySpan

from .original_keys import original_keys
from .state import DASHBOARD, FANOUT, GATEWAY, METER, SETTINGS, SHARED, STATS_POOLS
from .stream import BROADCASTER
from .traffic import traffic_figures


async def fan_out(app: web.Application) -> dict:
    """Every replica of every service, its /stats read in parallel, each bounded by STATS_TIMEOUT_S; one entry per
    service built from its replicas' answers."""
    pools = {pool.name: pool for pool in (app[GATEWAY], *app[STATS_POOLS], app[DASHBOARD])}
    targets = {s.name: [replica.url.rstrip("/") for replica in pools[s.name].replicas] for s in CATALOGUE.probed()}
    return await fetch_all(app[CLIENT], targets, app[SETTINGS].stats_timeout_s)


# On the span of a /stats request: the trace that holds the calls to the services its answer came from (its own
# trace, or that of the caller whose fan-out it shared).
FANOUT_TRACE_ATTRIBUTE = "titanium.stats.fanout_trace_id"


async def stats_document(app: web.Application, span: ProxySpan | None = None) -> dict:
    """Own figures under "load-balancer" (suite-wide when shared), then every service's /stats, then the original
    system's keys: one fan-out shared by the callers of about one second (`stats_age_s` says how old it is)."""
    gateway, dashboard = app[GATEWAY], app[DASHBOARD]
    services, age_s, fanout_trace_id = await app[FANOUT].get()
    if span is not None and fanout_trace_id is not None:
        span.extra_attributes = {FANOUT_TRACE_ATTRIBUTE: fanout_trace_id}
    own = await app[KIT].stats()
    own.update(await traffic_figures(app[METER], app.get(SHARED), app[SETTINGS].replica_id))
    own["status"] = "healthy"
    own["pools"] = {pool.name: pool.snapshot() for pool in (gateway, dashboard)}
    own["stats_fanouts"] = app[FANOUT].fanouts
    own["stats_stream"] = app[BROADCASTER].figures()
    if gateway.healthy_count == 0:
        own["status"] = own["service_status"] = "degraded"
        own.setdefault("degraded_reasons", []).append("no healthy api-gateway replica")
    return {
        "load-balancer": own,
        **services,
        **original_keys(services),
        "stats_age_s": round(age_s, 3),
        "timestamp": utc_iso(),
    }
