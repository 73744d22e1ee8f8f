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

    service_name: str = Field(default="titanium", description="The service's name in logs, figures and traces.")
    host: str = Field(default="127.0.0.1", description="The address the service listens on.")
    port: int = Field(default=8000, description="The port the service listens on.")
    env: Literal["development", "production", "test"] = Field(
        default="production",
        description="Only development generates missing local secrets (with a warning); `make run` sets development.",
    )
    log_level: str = Field(default="INFO", description="The lowest level logged (Python's level names).")
    log_format: Literal["text", "json"] = Field(default="text", description="json: one JSON object per log line.")
    access_log: Literal["summary", "every"] = Field(
        default="summary",
        description="summary: a line per second with the requests by status class and their latency, each 4xx and "
        "5xx answer on a line of its own, the others' lines at DEBUG; every: a line per request at INFO.",
    )
    shutdown_timeout_s: float = Field(
        default=10.0, description="Seconds a stopping service gives in-flight requests before it closes them."
    )
    # Tracing (titanium_common.tracing): the standard OpenTelemetry variables.
    otel_sdk_disabled: bool = Field(default=False, description="true: no spans are recorded at all.")
    otel_service_name: str = Field(default="", description="The service's name in spans; empty: `SERVICE_NAME`.")
    otel_traces_sampler: str = Field(
        default="parentbased_always_on",
        description="OpenTelemetry's sampler name; a parent-based one follows the caller's decision.",
    )
    otel_traces_sampler_arg: str = Field(default="", description="The sampler's argument (a ratio's share).")
    otel_exporter_otlp_endpoint: str = Field(
        default="", description="Set: spans also go out over OTLP/HTTP, to `<endpoint>/v1/traces`."
    )
    otel_exporter_otlp_traces_endpoint: str = Field(
        default="", description="Set: spans also go out over OTLP/HTTP, to this traces endpoint as given."
    )
    # The span buffer behind GET /internal/traces: recent spans (count, age), and whole traces kept longer:
    # every failed one, the slowest, and a share of the others chosen by trace id (the same in every service).
    trace_buffer_spans: int = Field(default=4096, ge=0, description="Recent spans kept for `GET /internal/traces`.")
    trace_buffer_traces: int = Field(
        default=500, ge=0, description="Whole traces kept longer (failed, slowest, a share of the others), at most."
    )
    trace_buffer_age_s: float = Field(default=900.0, gt=0, description="How long a recent span is kept.")
    trace_keep_slowest: int = Field(default=50, ge=0, description="The slowest traces kept whole.")
    trace_keep_ratio: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="The share of other traces kept whole, chosen by trace id (the same traces in every service).",
    )

    @property
    def is_development(self) -> bool:
        """Only development generates missing local secrets: a test or production process must be given them."""
        return self.env == "development"

    def placeholder_secrets(self) -> list[str]:
        """What to change, one line per secret setting that still holds an example's placeholder (none: [])."""
        problems = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                continue
            if is_secret_setting(name) and PLACEHOLDER_SECRET.search(value):
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


def is_secret_setting(name: str) -> bool:
    """Whether the setting `name` holds a secret (its value is never shown, nor an example's placeholder taken)."""
    return bool(_SECRET_NAME.search(name))


def _url_password(value: str) -> str:
    try:
        return urlsplit(value).password or ""
    except ValueError:
        return ""


def split_list(value: str) -> list[str]:
    """The items of a comma-separated setting, blanks dropped."""
    return [item.strip() for item in value.split(",") if item.strip()]


class ProxyServerSettings(ServiceSettings):
    """What the aiohttp proxies (load balancer, gateway) also bound on their client side."""

    header_read_timeout_s: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="A request's line and headers must be in within this from its first byte (or from the "
        "connection's opening), else the connection is closed (slowloris; Go's ReadHeaderTimeout).",
    )
    body_read_timeout_s: float = Field(
        default=10.0, gt=0, description="A client that sends nothing of a body it announced for this long gets 408."
    )
    # The replica pools (titanium_common.pool.replica_pool): active GET /health checks and passive ejection
    # (outlier detection).
    balance_strategy: Literal["least-outstanding", "round-robin"] = Field(
        default="least-outstanding", description="How a pool's replica is chosen for a request."
    )
    health_check_interval_s: float = Field(
        default=3.0, gt=0, description="How often each replica's `/health` is checked."
    )
    unhealthy_check_interval_s: float = Field(
        default=0.25, gt=0, description="How often a replica that is out is checked (back after one good check)."
    )
    health_check_timeout_s: float = Field(default=2.0, gt=0, description="The wait for one health check.")
    unhealthy_after_checks: int = Field(
        default=2, ge=1, description="Failed health checks in a row before a replica is out."
    )
    eject_after_failures: int = Field(
        default=3,
        ge=1,
        description="Connect failures, timeouts or connections dropped before an answer, in a row, that eject a "
        "replica.",
    )
    eject_after_5xx: int = Field(
        default=5, ge=0, description="Answers 502/503/504 in a row that eject a replica (0: never)."
    )
    ejection_s: float = Field(
        default=5.0, gt=0, description="How long an ejected replica is held out, doubled for each ejection in a row."
    )
    max_ejection_s: float = Field(default=60.0, gt=0, description="The longest an ejection lasts.")
    dns_refresh_interval_s: float = Field(
        default=5.0,
        gt=0,
        description="How often a pool member given by host name is resolved; each address is a replica (a pod of "
        "a headless Service).",
    )
    # Relayed WebSockets have a connection pool of their own, so that they never take the connections that
    # requests, health checks and /stats need.
    websocket_max_per_client: int = Field(
        default=32, ge=1, description="Relayed WebSockets open per client address; beyond, 503 with Retry-After."
    )
    websocket_max_total: int = Field(
        default=1024, ge=1, description="Relayed WebSockets open in all; beyond, 503 with Retry-After."
    )
    trusted_proxy_hops: int = Field(
        default=0,
        ge=0,
        description="Proxies in front that append the client to X-Forwarded-For: the per-client limit's client "
        "address is the entry they wrote (0: the peer itself, for the proxy at the edge).",
    )


def package_version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "0.0.0"
