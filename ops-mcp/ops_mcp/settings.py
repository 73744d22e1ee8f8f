from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from titanium_common.addresses import DEFAULT_PORTS, ServiceAddresses, local_url
from titanium_common.revocations import RevocationSettings
from titanium_common.settings import split_list


def first_url(value: str) -> str:
    """One replica's URL out of a comma-separated list (GATEWAY_URLS, DASHBOARD_URLS)."""
    return next((u.strip() for u in value.split(",") if u.strip()), "").rstrip("/")


class OpsSettings(ServiceAddresses, RevocationSettings):
    """The service: streamable HTTP at /mcp and REST at /api/ops/*, reading every service directly. Admin tokens
    are verified by auth-service; revocations are heard on REVOCATION_CHANNEL (REDIS_URL)."""

    service_name: str = "ops-mcp"
    port: int = DEFAULT_PORTS["ops-mcp"]
    load_balancer_url: str = local_url("load-balancer")
    gateway_urls: str = local_url("api-gateway")
    dashboard_urls: str = local_url("dashboard-ui")
    # Each service's /stats and /metrics, and cluster-monitor's and edge-config's reads: a service that has not
    # answered by then is "timeout". Below the gateway's 2 s response timeout, so an answer always gets through.
    read_timeout_s: float = Field(default=1.0, gt=0, le=1.8)
    # The background sampler: the history behind "p95 above its usual range", error rates over the recent
    # window, pods restarting, and the load balancer's own figures (its /stats waits for every service, up to
    # its own fan-out timeout, so it is read here rather than inside a request).
    sample_interval_s: float = Field(default=5.0, gt=0)
    samples_kept: int = Field(default=120, ge=2)
    lb_stats_timeout_s: float = Field(default=5.0, gt=0)
    # Alertmanager's address (its API v2): the firing alerts /api/ops/alerts, the tool `alerts` and diagnose() show.
    # Empty: "alerts unavailable".
    alertmanager_url: str = ""
    # diagnose(): thresholds.
    error_rate_threshold: float = Field(default=0.01, gt=0, lt=1)
    min_requests_for_rates: int = Field(default=20, ge=1)
    p95_factor: float = Field(default=2.0, gt=1)
    p95_margin_ms: float = Field(default=100.0, ge=0)
    min_samples_for_baseline: int = Field(default=6, ge=2)

    def _url_settings(self) -> dict[str, str]:
        return {
            "load-balancer": self.load_balancer_url,
            "api-gateway": self.gateway_urls,
            "auth-service": self.auth_service_url,
            "user-service": self.user_service_url,
            "blog-service": self.blog_service_url,
            "cluster-monitor": self.cluster_monitor_url,
            "edge-config": self.edge_config_url,
            "dashboard-ui": self.dashboard_urls,
        }

    def service_urls(self) -> dict[str, str]:
        """One replica of each service (its figures are the service's own)."""
        return {name: first_url(value) for name, value in self._url_settings().items()}

    def replica_urls(self) -> dict[str, list[str]]:
        """Every replica of each service (each keeps its own spans); a setting may list several, comma-separated."""
        return {name: [url.rstrip("/") for url in split_list(value)] for name, value in self._url_settings().items()}


class StdioSettings(BaseSettings):
    """`python -m ops_mcp`: an MCP server on stdin/stdout for a desktop assistant, reading a running suite's
    `/api/ops/*` through its public address. Credentials: a token, or an admin's name and password (the server
    logs in, and again when the short-lived token expires)."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    titanium_url: str = local_url("load-balancer")
    titanium_token: str = ""
    titanium_username: str = ""
    titanium_password: str = ""
    titanium_timeout_s: float = Field(default=10.0, gt=0)
    log_level: str = "WARNING"
