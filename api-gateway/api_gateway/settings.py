from pydantic import Field, model_validator

from titanium_common.addresses import DEFAULT_PORTS, service_addresses
from titanium_common.catalog import CATALOGUE
from titanium_common.http_client import CONNECT_TIMEOUT_S, RESPONSE_TIMEOUT_S
from titanium_common.settings import ProxyServerSettings, split_list
from titanium_common.upstream_client import check_upstream_url

# Public path prefix → upstream name. Nothing is rewritten; each service serves these paths.
PREFIXES: dict[str, str] = CATALOGUE.routes()


# Each service's URL setting (AUTH_SERVICE_URL, ...) may list several replicas, comma-separated; requests go to the
# least busy healthy one.
class GatewaySettings(ProxyServerSettings, service_addresses("api-gateway")):
    service_name: str = "api-gateway"
    port: int = DEFAULT_PORTS["api-gateway"]
    extra_routes: str = Field(
        default="",
        description="Extra or replacing routes, `prefix=upstream-name` pairs, comma-separated (e.g. "
        "`/api/metrics=cluster-monitor`).",
    )
    max_body_bytes: int = Field(default=10 * 1024 * 1024, description="Larger request bodies get 413 (10 MiB).")
    upstream_connect_timeout_s: float = Field(
        default=CONNECT_TIMEOUT_S,
        description="Connect to a service's replica, including the wait for a free pooled connection.",
    )
    upstream_response_timeout_s: float = Field(
        default=RESPONSE_TIMEOUT_S,
        description="Each wait for data from a service, unless `ROUTE_RESPONSE_TIMEOUTS` gives the route its own; "
        "past it, 504 naming the service.",
    )
    route_response_timeouts: str = Field(
        default="/api/auth/login=4,/api/login=4",
        description="Routes that may take longer, `prefix=seconds` pairs, comma-separated: a login waits for its "
        "Argon2 check behind other logins (auth-service gives user-service 3.5 s of these 4; the load balancer "
        "waits 5).",
    )
    upstream_pool_size: int = Field(
        default=128, description="Connections kept per service: a slow service can exhaust only its own pool."
    )
    # Behind the load balancer, which appends the client's address to X-Forwarded-For.
    trusted_proxy_hops: int = Field(default=1, ge=0)
    cors_origins: str = Field(
        default="",
        description="Browser origins allowed to call the API, comma-separated and explicit (`*` is refused); "
        "empty: CORS off.",
    )
    cors_max_age_s: int = Field(default=600, description="How long a browser may keep a CORS preflight's answer.")

    def prefixes(self) -> dict[str, str]:
        """Prefix → upstream name: the standard table with `EXTRA_ROUTES` laid over it."""
        table = dict(PREFIXES)
        for pair in split_list(self.extra_routes):
            prefix, sep, name = pair.partition("=")
            if not sep or not prefix.strip().startswith("/") or not prefix.strip("/ ") or not name.strip():
                raise ValueError(f"EXTRA_ROUTES entry {pair!r} is not /prefix=upstream-name")
            table[prefix.strip()] = name.strip()
        return table

    def route_timeouts(self) -> dict[str, float]:
        """Prefix → response timeout of the routes that have their own."""
        table = {}
        for pair in split_list(self.route_response_timeouts):
            prefix, sep, seconds = pair.partition("=")
            try:
                value = float(seconds)
            except ValueError:
                value = 0.0
            if not sep or not prefix.strip().startswith("/") or value <= 0:
                raise ValueError(f"ROUTE_RESPONSE_TIMEOUTS entry {pair!r} is not /prefix=seconds")
            table[prefix.strip()] = value
        return table

    def allowed_origins(self) -> frozenset[str]:
        origins = frozenset(o.rstrip("/") for o in split_list(self.cors_origins))
        if "*" in origins:
            raise ValueError("CORS_ORIGINS must list explicit origins, not '*'")
        return origins

    @model_validator(mode="after")
    def _check(self) -> "GatewaySettings":
        """A misconfigured table stops the gateway at start-up, not on the first request."""
        urls = self.service_replicas()
        for name, value in urls.items():
            if not value:
                raise ValueError(f"no URL configured for {name}")
            for url in value:
                check_upstream_url(url)
        for prefix, name in self.prefixes().items():
            if name not in urls:
                raise ValueError(f"route {prefix} names unknown upstream {name!r} (known: {', '.join(urls)})")
        self.allowed_origins()
        self.route_timeouts()
        return self
