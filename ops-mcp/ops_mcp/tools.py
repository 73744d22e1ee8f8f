"""The MCP server: tools, resources and the incident-review prompt over one `Operations` (live or remote)."""

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from titanium_common.errors import ServiceError

from .operations import Operations
from .remote import SuiteUnavailable
from .schemas import (
    AlertList,
    DeviceListing,
    DeviceStatus,
    Diagnosis,
    EventType,
    Listing,
    ReloadOutcome,
    ResourceKind,
    Series,
    ServiceName,
    ServiceStats,
    SlowRequests,
    SlowRoutes,
    SuiteStatus,
    Trace,
)
from .traces import MAX_UNIX_S

Answer = TypeVar("Answer")

INSTRUCTIONS = (
    "Titanium's operations facts, read live from the running suite (load balancer, API gateway, auth, users, "
    "blog, cluster monitor, edge devices). Start with `diagnose` when something is wrong: it names each problem "
    "with the figures it read and a next step; then drill down with suite_status, service_stats, slowest_routes, "
    "nodes, pods, resource_timeseries, recent_events and edge_devices. Everything is read-only except "
    "reload_edge_device."
)
READ_ONLY = ToolAnnotations(readOnlyHint=True, openWorldHint=False)
INCIDENT_REVIEW = """Review the current state of the Titanium suite{focus}.

1. Call the `diagnose` tool. Its findings are rule-based and each carries the evidence it read.
2. For every finding, walk its evidence: say which figure shows the problem and what the normal value would be.
   Confirm it with a second source (suite_status or service_stats for services, nodes / pods / recent_events for
   the cluster, edge_devices for devices, slowest_routes for latency).
3. Order the findings by impact on users (a service down or timing out first), say which ones are probably one
   cause, and give the next step for each. Do not guess beyond the evidence; say what you could not check.
4. If diagnose reports nothing wrong, say so and name what was checked."""


async def answered(call: Awaitable[Answer], error: type[Exception] = ToolError) -> Answer:
    """A service that did not answer is a failure the assistant should read (the SDK withholds the text of any
    other exception): it becomes a ToolError (or ResourceError) with the reason."""
    try:
        return await call
    except (ServiceError, SuiteUnavailable) as exc:
        raise error(str(exc)) from exc


def build_server(operations: Callable[[], Operations], *, version: str = "", lifespan=None) -> MCPServer:
    """`operations()` gives the backend for the current call (the running service's, or the remote client)."""
    server = MCPServer("titanium-ops", instructions=INSTRUCTIONS, version=version, lifespan=lifespan)

    @server.tool(annotations=READ_ONLY)
    async def suite_status() -> SuiteStatus:
        """Every service's state (online, degraded, offline or timeout), requests per second, error rate, p95
        latency and uptime, and the load balancer's IDLE/ACTIVE state (ACTIVE: real API traffic in the last 10 s)."""
        return await answered(operations().suite_status())

    @server.tool(annotations=READ_ONLY)
    async def service_stats(service: ServiceName) -> ServiceStats:
        """One service's own /stats answer, complete: request figures plus its own (database, cache, upstreams,
        devices, clusters)."""
        return await answered(operations().service_stats(service))

    @server.tool(annotations=READ_ONLY)
    async def slowest_routes(
        service: ServiceName | None = None, limit: Annotated[int, Field(ge=1, le=100)] = 10
    ) -> SlowRoutes:
        """The slowest routes by p95 latency, from each service's Prometheus /metrics histograms (since the
        service started); `service` narrows it to one."""
        return await answered(operations().slowest_routes(service, limit))

    @server.tool(annotations=READ_ONLY)
    async def clusters() -> Listing:
        """The monitored Kubernetes clusters: status (ready, or failure when no node is Ready), nodes, pods."""
        return await answered(operations().clusters())

    @server.tool(annotations=READ_ONLY)
    async def nodes() -> Listing:
        """Every node of every cluster: Ready/NotReady, roles, version, CPU and memory use."""
        return await answered(operations().nodes())

    @server.tool(annotations=READ_ONLY)
    async def pods(namespace: str | None = None, node: str | None = None) -> Listing:
        """Pods with status, ready containers, restarts and node; filtered by namespace and/or node."""
        return await answered(operations().pods(namespace, node))

    @server.tool(annotations=READ_ONLY)
    async def resource_timeseries(
        kind: ResourceKind,
        name: str,
        namespace: str | None = None,
        window_s: Annotated[int, Field(ge=1, le=86400)] = 600,
    ) -> Series:
        """CPU, memory, disk and network use of one node, pod, namespace or deployment over the last `window_s`
        seconds (pods and deployments: give the namespace when the name is not unique)."""
        return await answered(operations().resource_timeseries(kind, name, namespace, window_s))

    @server.tool(annotations=READ_ONLY)
    async def recent_events(type: EventType | None = None, limit: Annotated[int, Field(ge=1, le=100)] = 20) -> Listing:
        """The clusters' latest events, newest first (critical: a node went NotReady or a cluster failed;
        success: it recovered; auto: scaling; info)."""
        return await answered(operations().recent_events(type, limit))

    @server.tool(annotations=READ_ONLY)
    async def edge_devices(status: DeviceStatus | None = None) -> DeviceListing:
        """Registered edge devices with their health from the latest probe round (healthy, unhealthy,
        unreachable, unknown); `status` filters."""
        return await answered(operations().edge_devices(status))

    @server.tool(annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=True))
    async def reload_edge_device(device_id: Annotated[str, Field(min_length=1, max_length=253)]) -> ReloadOutcome:
        """A write (admin only): tell one edge device to reload, i.e. fetch its config again. Says what was done
        and what the device answered."""
        return await answered(operations().reload_edge_device(device_id))

    @server.tool(annotations=READ_ONLY)
    async def slow_requests(
        slowest: Annotated[int, Field(ge=1, le=100)] = 10, since: Annotated[float, Field(ge=0, le=MAX_UNIX_S)] = 0
    ) -> SlowRequests:
        """The slowest recent requests (since `since`, unix seconds; 0: all still kept), each with its route,
        status, total duration and the services it went through, from every replica's recent traces."""
        return await answered(operations().slow_requests(slowest, since))

    @server.tool(annotations=READ_ONLY)
    async def trace(trace_id: Annotated[str, Field(pattern="^[0-9a-fA-F]{32}$")]) -> Trace:
        """One request's whole trace: every span (balancer, gateway, service route, database queries, Redis
        commands, calls between services) with its service, parent, start offset, duration and attributes."""
        return await answered(operations().trace(trace_id))

    @server.tool(annotations=READ_ONLY)
    async def diagnose() -> Diagnosis:
        """A rule-based report of what is wrong now and why: services offline or timing out, error rates above
        1 %, p95 above its usual range, upstreams the gateway reports failing, NotReady nodes, restarting pods,
        unhealthy devices, a database or Redis down, and every alert firing in Alertmanager. Each finding has its
        evidence and a next step."""
        return await answered(operations().diagnose())

    @server.tool(annotations=READ_ONLY)
    async def alerts() -> AlertList:
        """The alerts Prometheus' rules raised and Alertmanager holds now (firing, not silenced): each with its
        service, severity (page or ticket), summary, description and runbook. `available` false with the reason
        when Alertmanager is not set or does not answer ("alerts unavailable")."""
        return await answered(operations().alerts())

    @server.resource("titanium://stats", name="stats", mime_type="application/json")
    async def stats_resource() -> str:
        """The live aggregate: the load balancer's own figures and every service's /stats."""
        return json.dumps(await answered(operations().stats_aggregate(), ResourceError))

    @server.resource("titanium://events", name="events", mime_type="application/json")
    async def events_resource() -> str:
        """cluster-monitor's event log (the last 100 events)."""
        return json.dumps(await answered(operations().events_feed(), ResourceError))

    @server.prompt(name="incident-review")
    def incident_review(service: str = "") -> str:
        """Run diagnose and walk its evidence, finding by finding, with a next step for each."""
        return INCIDENT_REVIEW.format(focus=f", with attention to {service}" if service else "")

    return server
