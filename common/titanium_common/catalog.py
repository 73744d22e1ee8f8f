"""The suite's services, once: every list of services (default ports and addresses, URL settings, the gateway's
routes, the launcher's order and pools, the load balancer's /stats, ops-mcp's names, the API docs page, the
dashboard's cards) derives from CATALOGUE. Adding a service is one entry here, its folder and its manifests
(docs/adding-a-service.md)."""

from collections.abc import Iterator
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Service:
    name: str
    # The Python package under the service's folder (`<name>/<package>/`).
    package: str
    port: int
    # The environment variable the services that call this one read its address from (several replicas,
    # comma-separated, where the caller holds a pool over them).
    url_setting: str
    # Public path prefixes the gateway routes to this service (nothing is rewritten; the service serves them).
    prefixes: tuple[str, ...] = ()
    # The services that hold a pool over this one's replicas (balance over them, or read each one); any other caller
    # takes the first address.
    pooled_by: tuple[str, ...] = ()
    # Listed on the suite's API docs page (the services with an OpenAPI document).
    documented: bool = False
    # Read by the load balancer's /stats (every replica's own /stats).
    probed: bool = True
    # Started once these are ready.
    after: tuple[str, ...] = ()
    # With REPLICAS=n on one machine, replica k (from 1) listens on port + k * replica_port_step.
    replica_port_step: int = 10
    # What `python -m` runs to serve it (empty: the package).
    entry_module: str = ""

    @property
    def module(self) -> str:
        return self.entry_module or self.package

    @property
    def url_field(self) -> str:
        """The settings field that holds the address (pydantic-settings reads it from `url_setting`)."""
        return self.url_setting.lower()


@dataclass(frozen=True)
class Catalogue:
    """The services in the order the suite lists them (the dashboard's cards, /stats, the API docs page)."""

    services: tuple[Service, ...]

    def __post_init__(self) -> None:
        names = [s.name for s in self.services]
        if len(set(names)) != len(names):
            raise ValueError(f"a service is listed twice: {names}")
        for service in self.services:
            unknown = (set(service.pooled_by) | set(service.after)) - set(names)
            if unknown:
                raise ValueError(f"{service.name} names unknown services: {sorted(unknown)}")
        self.start_order()

    def __iter__(self) -> Iterator[Service]:
        return iter(self.services)

    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.services)

    def get(self, name: str) -> Service:
        for service in self.services:
            if service.name == name:
                return service
        raise KeyError(name)

    def default_ports(self) -> dict[str, int]:
        return {s.name: s.port for s in self.services}

    def routes(self) -> dict[str, str]:
        """The gateway's routing table: public prefix → service name."""
        return {prefix: s.name for s in self.services for prefix in s.prefixes}

    def pooled_by(self, caller: str) -> tuple[Service, ...]:
        """The services `caller` holds a pool over: it is given every replica's address of each."""
        return tuple(s for s in self.services if caller in s.pooled_by)

    def probed(self) -> tuple[Service, ...]:
        return tuple(s for s in self.services if s.probed)

    def documented(self) -> tuple[Service, ...]:
        return tuple(s for s in self.services if s.documented)

    def start_order(self) -> tuple[Service, ...]:
        """In waves: each service after everything it starts after, in catalogue order within a wave."""
        ordered: list[Service] = []
        pending = list(self.services)
        while pending:
            started = {s.name for s in ordered}
            wave = [s for s in pending if set(s.after) <= started]
            if not wave:
                raise ValueError(f"services that wait for each other: {sorted(s.name for s in pending)}")
            ordered += wave
            pending = [s for s in pending if s not in wave]
        return tuple(ordered)

    def with_service(self, service: Service, *, before: str | None = None) -> "Catalogue":
        """This catalogue with `service` added (before the service named `before`, else last)."""
        services = list(self.services)
        at = [s.name for s in services].index(before) if before else len(services)
        services.insert(at, service)
        return replace(self, services=tuple(services))


# Which services hold a pool over one of the application services: the gateway balances each one's replicas, the
# load balancer's /stats and ops-mcp's traces read every replica.
_BEHIND_THE_GATEWAY = ("load-balancer", "api-gateway", "ops-mcp")

CATALOGUE = Catalogue(
    (
        Service(
            "load-balancer",
            "load_balancer",
            7100,
            "LOAD_BALANCER_URL",
            pooled_by=("ops-mcp",),
            # It reports its own figures in /stats.
            probed=False,
            after=("api-gateway", "dashboard-ui"),
            # The second balancer on 7101.
            replica_port_step=1,
        ),
        Service(
            "api-gateway",
            "api_gateway",
            8000,
            "GATEWAY_URLS",
            pooled_by=("load-balancer", "ops-mcp"),
            after=("auth-service", "user-service", "blog-service", "cluster-monitor", "edge-config", "ops-mcp"),
        ),
        Service(
            "auth-service",
            "auth_service",
            8001,
            "AUTH_SERVICE_URL",
            prefixes=("/api/auth", "/api/login"),
            pooled_by=_BEHIND_THE_GATEWAY,
            documented=True,
            after=("user-service",),
        ),
        Service(
            "user-service",
            "user_service",
            8002,
            "USER_SERVICE_URL",
            prefixes=("/api/users", "/api/register"),
            pooled_by=_BEHIND_THE_GATEWAY,
            documented=True,
        ),
        Service(
            "blog-service",
            "blog_service",
            8003,
            "BLOG_SERVICE_URL",
            prefixes=("/api/posts", "/blog"),
            pooled_by=_BEHIND_THE_GATEWAY,
            documented=True,
            after=("auth-service",),
        ),
        Service(
            "cluster-monitor",
            "cluster_monitor",
            8004,
            "CLUSTER_MONITOR_URL",
            # /ws is the original system's path of the same feed: all of /ws/* is cluster-monitor's.
            prefixes=(
                "/api/clusters",
                "/api/nodes",
                "/api/pods",
                "/api/namespaces",
                "/api/deployments",
                "/api/events",
                "/ws/clusters",
                "/ws",
            ),
            pooled_by=_BEHIND_THE_GATEWAY,
            documented=True,
        ),
        Service(
            "edge-config",
            "edge_config",
            8005,
            "EDGE_CONFIG_URL",
            prefixes=("/api/edge",),
            pooled_by=_BEHIND_THE_GATEWAY,
            documented=True,
        ),
        Service(
            "ops-mcp",
            "ops_mcp",
            8006,
            "OPS_MCP_URL",
            prefixes=("/mcp", "/api/ops"),
            # Not by itself: it reads the others.
            pooled_by=("load-balancer", "api-gateway"),
            documented=True,
            after=("auth-service",),
        ),
        Service(
            "dashboard-ui",
            "dashboard_ui",
            8080,
            "DASHBOARD_URLS",
            pooled_by=("load-balancer", "ops-mcp"),
        ),
    )
)
