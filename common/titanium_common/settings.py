"""Settings base: every service's configuration comes from the environment (a `.env` file is optional)."""

import re
from importlib import metadata
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Fields every service has; each service subclasses it and sets its own `service_name` and `port`."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    service_name: str = "titanium"
    host: str = "127.0.0.1"
    port: int = 8000
    env: Literal["development", "production", "test"] = "production"
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    # Seconds a stopping service gives in-flight requests before it closes them.
    shutdown_timeout_s: float = 10.0
    # Tracing (titanium_common.tracing): the standard OpenTelemetry variables.
    otel_sdk_disabled: bool = False
    # Empty: the service's name.
    otel_service_name: str = ""
    otel_traces_sampler: str = "parentbased_always_on"
    otel_traces_sampler_arg: str = ""
    # Set: spans also go out over OTLP/HTTP (to <endpoint>/v1/traces, or the traces endpoint as given).
    otel_exporter_otlp_endpoint: str = ""
    otel_exporter_otlp_traces_endpoint: str = ""
    # The span buffer behind GET /internal/traces: recent spans (count, age), and whole traces kept longer:
    # every failed one, the slowest, and a share of the others chosen by trace id (the same in every service).
    trace_buffer_spans: int = Field(default=4096, ge=0)
    trace_buffer_traces: int = Field(default=500, ge=0)
    trace_buffer_age_s: float = Field(default=900.0, gt=0)
    trace_keep_slowest: int = Field(default=50, ge=0)
    trace_keep_ratio: float = Field(default=0.01, ge=0, le=1)

    @property
    def is_development(self) -> bool:
        """Only development may make up local secrets: a test or production process must be given them."""
        return self.env == "development"

    def placeholder_secrets(self) -> list[str]:
        """What to change, one line per secret setting that still holds an example's placeholder (none: [])."""
        problems = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                continue
            if _SECRET_NAME.search(name) and PLACEHOLDER_SECRET.search(value):
                problems.append(f"{name.upper()} is still the example's placeholder: set a secret of your own")
            elif name.endswith("_url") and PLACEHOLDER_SECRET.search(_url_password(value)):
                where = f" ({_URL_PASSWORD_FROM[name]} in Compose's .env)" if name in _URL_PASSWORD_FROM else ""
                problems.append(f"the password in {name.upper()} is still the example's placeholder: change it{where}")
        return problems


# What example files ship in place of a secret (.env.example's "change-me...", the FastAPI template's
# "changethis"): a service outside development refuses to start with one (titanium_common.runner).
PLACEHOLDER_SECRET = re.compile(r"change[\W_]*(?:me|this)", re.IGNORECASE)
# Settings that hold a secret, by name; a URL's password is one too.
_SECRET_NAME = re.compile(r"_(?:secret|password|token|tokens|key)$")
# The variable docker-compose.yml builds a URL's password from.
_URL_PASSWORD_FROM = {"database_url": "POSTGRES_PASSWORD"}


def _url_password(value: str) -> str:
    try:
        return urlsplit(value).password or ""
    except ValueError:
        return ""


def split_list(value: str) -> list[str]:
    """The items of a comma-separated setting, blanks dropped."""
    return [item.strip() for item in value.split(",") if item.strip()]


# The services behind the gateway, by name, and the setting of each proxy that says where it is.
SERVICE_URL_SETTINGS = {
    "auth-service": "auth_service_url",
    "user-service": "user_service_url",
    "blog-service": "blog_service_url",
    "cluster-monitor": "cluster_monitor_url",
    "edge-config": "edge_config_url",
    "ops-mcp": "ops_mcp_url",
}


class ProxyServerSettings(ServiceSettings):
    """What the aiohttp proxies (load balancer, gateway) also bound on their client side."""

    def service_replicas(self) -> dict[str, list[str]]:
        """Each service's replicas by service name: its URL setting, comma-separated (a subclass has the fields)."""
        return {
            name: [url.rstrip("/") for url in split_list(getattr(self, field))]
            for name, field in SERVICE_URL_SETTINGS.items()
        }

    # A request's line and headers must be in within this from its first byte (or from the connection's opening),
    # else the connection is closed (slowloris). Go's ReadHeaderTimeout, as the originals had it.
    header_read_timeout_s: float = Field(default=2.0, gt=0, le=60)
    # A client that sends nothing of a body it announced for this long gets 408 and is closed.
    body_read_timeout_s: float = Field(default=10.0, gt=0)
    # The replica pools (titanium_common.pool.replica_pool): how a replica is chosen, its active GET /health checks
    # (every `health_check_interval_s`, every `unhealthy_check_interval_s` while it is out; unhealthy after
    # `unhealthy_after_checks` failed ones in a row, back after one good one) and its passive ejection (outlier
    # detection): after `eject_after_failures` connect failures, timeouts or connections dropped before an answer
    # in a row, and after `eject_after_5xx` answers 502/503/504 in a row (0: never), which hold it out for
    # `ejection_s`, doubled for each such ejection in a row up to `max_ejection_s`.
    balance_strategy: Literal["least-outstanding", "round-robin"] = "least-outstanding"
    health_check_interval_s: float = Field(default=3.0, gt=0)
    unhealthy_check_interval_s: float = Field(default=0.25, gt=0)
    health_check_timeout_s: float = Field(default=2.0, gt=0)
    unhealthy_after_checks: int = Field(default=2, ge=1)
    eject_after_failures: int = Field(default=3, ge=1)
    eject_after_5xx: int = Field(default=5, ge=0)
    ejection_s: float = Field(default=5.0, gt=0)
    max_ejection_s: float = Field(default=60.0, gt=0)
    # A pool member given by host name is resolved this often; each address is a replica (a pod of a headless
    # Service), balanced per request.
    dns_refresh_interval_s: float = Field(default=5.0, gt=0)
    # Relayed WebSockets open at once (titanium_common.websocket_quota): per client address and in all; beyond
    # either, an upgrade gets 503 with Retry-After. They have a connection pool of their own, so that they never
    # take the connections that requests, health checks and /stats need.
    websocket_max_per_client: int = Field(default=32, ge=1)
    websocket_max_total: int = Field(default=1024, ge=1)
    # Proxies in front of this one that append the client to X-Forwarded-For: the client address of the per-client
    # limit is the entry they wrote (0: the peer itself, for the proxy at the edge).
    trusted_proxy_hops: int = Field(default=0, ge=0)


def package_version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "0.0.0"
