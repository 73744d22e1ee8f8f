"""The typed answers of the tools (and of the REST routes that serve the same)."""

from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

from titanium_common.catalog import CATALOGUE

# The services whose facts ops-mcp reads, by the names the load balancer's /stats uses: every one it holds a pool over.
SERVICE_NAMES: tuple[str, ...] = tuple(s.name for s in CATALOGUE.pooled_by("ops-mcp"))
ServiceName = Literal[SERVICE_NAMES]
ServiceState = Literal["online", "degraded", "offline", "timeout"]
ResourceKind = Literal["node", "pod", "namespace", "deployment"]
EventType = Literal["info", "critical", "auto", "success"]
DeviceStatus = Literal["healthy", "unhealthy", "unreachable", "unknown"]


class ServiceStatus(BaseModel):
    name: str
    status: ServiceState
    requests_per_second: float | None = None
    error_rate: float | None = Field(None, description="errors (HTTP 5xx) / requests since the service started")
    p95_ms: float | None = None
    uptime_s: float | None = None
    error: str | None = Field(None, description="why the service is offline, timing out or degraded")


class BalancerState(BaseModel):
    state: Literal["ACTIVE", "IDLE"] | None = Field(None, description="ACTIVE: real /api traffic in the last 10 s")
    requests_per_second: float | None = None
    has_real_traffic: bool | None = None
    success_rate: float | None = Field(None, description="percent of real API requests answered below 500")
    healthy_gateway_replicas: int | None = None
    sampled_s_ago: float | None = Field(None, description="age of these figures (read in the background)")
    error: str | None = None


class SuiteStatus(BaseModel):
    services: list[ServiceStatus]
    balancer: BalancerState
    timestamp: str


class ServiceStats(BaseModel):
    service: str
    stats: dict[str, Any] = Field(description="the service's own /stats answer, as it gave it")


class RouteLatencyModel(BaseModel):
    service: str
    method: str
    route: str
    requests: int
    mean_ms: float
    p95_ms: float | None = Field(description="upper bound of the histogram bucket holding the 95th percentile")


class SlowRoutes(BaseModel):
    routes: list[RouteLatencyModel]
    unavailable: dict[str, str] = Field(default_factory=dict, description="services whose /metrics did not answer")


class Listing(BaseModel):
    items: list[dict[str, Any]]
    total: int


class Series(BaseModel):
    kind: ResourceKind
    name: str
    namespace: str | None
    window_s: int
    points: list[dict[str, Any]]


class DeviceListing(BaseModel):
    devices: list[dict[str, Any]]
    total: int
    by_status: dict[str, int]


class ReloadOutcome(BaseModel):
    device_id: str
    reloaded: bool
    summary: str = Field(description="what was done, in words")
    detail: dict[str, Any]


class Finding(BaseModel):
    severity: Literal["critical", "warning"]
    subject: str = Field(description="what is affected: a service, node, pod, device or dependency")
    problem: str
    evidence: dict[str, Any] = Field(description="the figures this finding was read from")
    next_step: str
    kind: Literal["errors", "latency"] | None = Field(
        default=None,
        description="what a finding about a service measures: its server errors or its latency (a trace is cited "
        "for these), None for anything else",
    )


class Alert(BaseModel):
    name: str = Field(description="the alert's name (its rule in monitoring/rules)")
    severity: str = Field(description="page (act now) or ticket (within the working day)")
    service: str = Field(description="the service it is about (the `job` label)")
    instance: str | None = Field(default=None, description="the replica, for alerts about one")
    summary: str
    description: str
    runbook_url: str | None = None
    starts_at: str = Field(description="when it started firing (RFC 3339)")
    labels: dict[str, str]


class AlertList(BaseModel):
    available: bool = Field(description="false: Alertmanager is not set or did not answer (`error` says which)")
    source: str | None = Field(default=None, description="the Alertmanager read")
    error: str | None = None
    alerts: list[Alert] = Field(default_factory=list, description="firing, not silenced: pages first, oldest first")


class Diagnosis(BaseModel):
    healthy: bool
    summary: str
    findings: list[Finding]
    checked: list[str] = Field(description="what was read to reach this")
    timestamp: str


StatsAggregate = create_model(
    "StatsAggregate",
    __doc__="What the titanium://stats resource holds: each service's own /stats answer by name, or why it gave none"
    " (`service_status` offline or timeout, with `error`); the load balancer's with `sampled_s_ago`.",
    timestamp=(str, ...),
    **{name.replace("-", "_"): (dict[str, Any], Field(alias=name)) for name in SERVICE_NAMES},
)


class EventLog(BaseModel):
    """What the titanium://events resource holds: cluster-monitor's event log, oldest first."""

    events: list[dict[str, Any]]
    total: int
    timestamp: str


class SlowRequest(BaseModel):
    trace_id: str
    route: str = Field(description="the request's route in the service that answered it (else the first hop's name)")
    path: str | None = None
    status: int | None = Field(None, description="the HTTP status the client got")
    error: bool
    duration_ms: float = Field(description="the whole request, as its first traced hop saw it")
    started_unix_ns: int
    services: list[str] = Field(description="every service the request went through")


class SlowRequests(BaseModel):
    requests: list[SlowRequest]
    unavailable: dict[str, str] = Field(description="replicas whose recent traces could not be read, and why")


class TraceSpan(BaseModel):
    span_id: str
    parent_id: str | None
    service: str
    name: str
    kind: str
    start_unix_ns: int
    offset_ms: float = Field(description="start, from the trace's first span")
    duration_ms: float
    error: bool
    attributes: dict[str, Any]


class Trace(BaseModel):
    trace_id: str
    duration_ms: float
    services: list[str]
    spans: list[TraceSpan] = Field(description="every span found, in start order; parent_id links the tree")
    unavailable: dict[str, str]
