from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from titanium_common.addresses import DEFAULT_PORTS, local_url, service_addresses
from titanium_common.revocations import RevocationSettings


def _replicas_read(service: str) -> str:
    return f"Where {service}'s replicas are, comma-separated: its figures are read from the first, spans from each."


# Every other service's URL setting (LOAD_BALANCER_URL, GATEWAY_URLS, AUTH_SERVICE_URL, ...).
class OpsSettings(service_addresses("ops-mcp", meaning=_replicas_read), RevocationSettings):
    """The service: streamable HTTP at /mcp and REST at /api/ops/*, reading every service directly. Admin tokens
    are verified by auth-service; revocations are heard on REVOCATION_CHANNEL (REDIS_URL)."""

    service_name: str = "ops-mcp"
    port: int = DEFAULT_PORTS["ops-mcp"]
    read_timeout_s: float = Field(
        default=1.0,
        gt=0,
        le=1.8,
        description="Each read of a service (`/stats`, `/metrics`, cluster-monitor's and edge-config's data): one "
        "that has not answered by then is `timeout`. Below the gateway's 2 s, so an answer always gets through.",
    )
    # The background sampler: the history behind "p95 above its usual range", error rates over the recent window,
    # pods restarting, and the load balancer's own figures (its /stats waits for every service, up to its own
    # fan-out timeout, so it is read here rather than inside a request).
    sample_interval_s: float = Field(default=5.0, gt=0, description="How often the background sampler reads.")
    samples_kept: int = Field(default=120, ge=2, description="Samples kept (10 minutes at the default interval).")
    lb_stats_timeout_s: float = Field(
        default=5.0, gt=0, description="The sampler's wait for the load balancer's `/stats`."
    )
    alertmanager_url: str = Field(
        default="",
        description="Alertmanager's address (its API v2): the firing alerts `/api/ops/alerts`, the tool `alerts` and "
        "`diagnose()` show. Empty: alerts unavailable.",
    )
    # diagnose(): thresholds.
    error_rate_threshold: float = Field(
        default=0.01, gt=0, lt=1, description="`diagnose()`: an error rate above this is a finding."
    )
    min_requests_for_rates: int = Field(
        default=20, ge=1, description="`diagnose()`: requests in the window before an error rate counts."
    )
    p95_factor: float = Field(
        default=2.0,
        gt=1,
        description="`diagnose()`: a p95 above its usual value (the median of the samples) times this, and more "
        "than `P95_MARGIN_MS` above it, is a finding.",
    )
    p95_margin_ms: float = Field(
        default=100.0, ge=0, description="`diagnose()`: how far above its usual value a p95 must be to count."
    )
    min_samples_for_baseline: int = Field(
        default=6, ge=2, description="`diagnose()`: samples before a usual p95 exists."
    )

    def service_urls(self) -> dict[str, str]:
        """One replica of each service (its figures are the service's own)."""
        return {name: next(iter(urls), "") for name, urls in self.service_replicas().items()}


class StdioSettings(BaseSettings):
    """`python -m ops_mcp.stdio`: an MCP server on stdin/stdout for a desktop assistant, reading a running suite's
    `/api/ops/*` through its public address. Credentials: a token, or an admin's name and password (the server
    logs in, and again when the short-lived token expires)."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    titanium_url: str = Field(default=local_url("load-balancer"), description="The suite's public address.")
    titanium_token: str = Field(default="", description="An admin's token.")
    titanium_username: str = Field(default="", description="Or an admin's name, with `TITANIUM_PASSWORD`.")
    titanium_password: str = Field(default="", description="That admin's password.")
    titanium_timeout_s: float = Field(default=10.0, gt=0, description="The wait for each call to the suite.")
    log_level: str = Field(default="WARNING", description="The lowest level logged (to stderr).")
