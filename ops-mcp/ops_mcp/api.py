"""ops-mcp's REST routes: the tools' answers as JSON under /api/ops (the dashboard and the stdio server read
them). Admin only, except the diagnosis and the alerts, which show what /stats already shows anyone."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from titanium_common.auth_client import Identity
from titanium_common.contracts import errors
from titanium_common.deps import VerifierDep, from_state

from .access import admin_identity
from .operations import LiveOperations
from .reader import caller_authorization
from .schemas import (
    AlertList,
    DeviceListing,
    DeviceStatus,
    Diagnosis,
    EventLog,
    EventType,
    Listing,
    ReloadOutcome,
    ResourceKind,
    Series,
    ServiceName,
    ServiceStats,
    SlowRequests,
    SlowRoutes,
    StatsAggregate,
    SuiteStatus,
    Trace,
)
from .traces import MAX_UNIX_S

router = APIRouter(prefix="/api/ops", tags=["operations"])


async def _pass_token_on(request: Request) -> None:
    caller_authorization.set(request.headers.get("Authorization"))


async def _admin(request: Request, verifier: VerifierDep) -> Identity:
    identity = await admin_identity(verifier, request)
    await _pass_token_on(request)
    return identity


Ops = Annotated[LiveOperations, Depends(from_state("operations"))]
admin_only = [Depends(_admin)]
# Every route but the diagnosis needs an admin token (401, 403; 503 when auth-service does not answer). The reads
# of cluster-monitor and edge-config pass their refusals on (401, 403, and 404 or 409 for a lookup), and answer
# 502 or 504 naming the service when it fails or does not answer.
ADMIN = errors(401, 403, 503)
READS = errors(401, 403, 502, 503, 504)
LOOKUPS = errors(401, 403, 404, 409, 502, 503, 504)


@router.get("/diagnosis", dependencies=[Depends(_pass_token_on)])
async def diagnosis(ops: Ops) -> Diagnosis:
    return await ops.diagnose()


@router.get("/alerts")
async def alerts(ops: Ops) -> AlertList:
    """The alerts firing in Alertmanager. Like the diagnosis, readable without a token: the dashboard's alerts panel
    shows them to whoever sees the dashboard. Alertmanager unset or down: `available` false, "alerts unavailable"."""
    return await ops.alerts()


@router.get("/status", dependencies=admin_only, responses=ADMIN)
async def status(ops: Ops) -> SuiteStatus:
    return await ops.suite_status()


@router.get("/services/{service}/stats", dependencies=admin_only, responses=ADMIN)
async def service_stats(service: ServiceName, ops: Ops) -> ServiceStats:
    return await ops.service_stats(service)


@router.get("/slowest-routes", dependencies=admin_only, responses=ADMIN)
async def slowest_routes(
    ops: Ops, service: ServiceName | None = None, limit: Annotated[int, Query(ge=1, le=100)] = 10
) -> SlowRoutes:
    return await ops.slowest_routes(service, limit)


@router.get("/clusters", dependencies=admin_only, responses=READS)
async def clusters(ops: Ops) -> Listing:
    return await ops.clusters()


@router.get("/nodes", dependencies=admin_only, responses=READS)
async def nodes(ops: Ops) -> Listing:
    return await ops.nodes()


@router.get("/pods", dependencies=admin_only, responses=READS)
async def pods(ops: Ops, namespace: str | None = None, node: str | None = None) -> Listing:
    return await ops.pods(namespace, node)


@router.get("/timeseries", dependencies=admin_only, responses=LOOKUPS)
async def timeseries(
    ops: Ops,
    kind: ResourceKind,
    name: Annotated[str, Query(min_length=1, max_length=253)],
    namespace: str | None = None,
    window_s: Annotated[int, Query(ge=1, le=86400)] = 600,
) -> Series:
    return await ops.resource_timeseries(kind, name, namespace, window_s)


@router.get("/events", dependencies=admin_only, responses=READS)
async def events(ops: Ops, type: EventType | None = None, limit: Annotated[int, Query(ge=1, le=100)] = 20) -> Listing:
    return await ops.recent_events(type, limit)


@router.get("/edge-devices", dependencies=admin_only, responses=READS)
async def edge_devices(ops: Ops, status: DeviceStatus | None = None) -> DeviceListing:
    return await ops.edge_devices(status)


@router.post("/edge-devices/{device_id}/reload", dependencies=admin_only, responses=LOOKUPS)
async def reload_edge_device(device_id: Annotated[str, Path(min_length=1, max_length=253)], ops: Ops) -> ReloadOutcome:
    return await ops.reload_edge_device(device_id)


@router.get("/aggregate", dependencies=admin_only, responses=ADMIN)
async def aggregate(ops: Ops) -> StatsAggregate:
    """What the titanium://stats resource holds."""
    return await ops.stats_aggregate()


@router.get("/event-log", dependencies=admin_only, responses=READS)
async def event_log(ops: Ops) -> EventLog:
    """What the titanium://events resource holds."""
    return await ops.events_feed()


@router.get("/traces", dependencies=admin_only, responses=ADMIN)
async def traces(
    ops: Ops,
    slowest: Annotated[int, Query(ge=1, le=100)] = 10,
    since: Annotated[float, Query(ge=0, le=MAX_UNIX_S, description="unix seconds; 0: everything still kept")] = 0,
) -> SlowRequests:
    """The slowest recent requests, assembled from every replica's span buffer."""
    return await ops.slow_requests(slowest, since)


@router.get("/traces/{trace_id}", dependencies=admin_only, responses=LOOKUPS)
async def trace(trace_id: Annotated[str, Path(pattern="^[0-9a-fA-F]{32}$")], ops: Ops) -> Trace:
    """One request's whole tree: every span with its service, parent, start, duration and attributes."""
    return await ops.trace(trace_id)
