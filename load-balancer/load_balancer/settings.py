import socket
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from titanium_common.addresses import DEFAULT_PORTS, local_url, service_addresses
from titanium_common.catalog import CATALOGUE
from titanium_common.settings import ProxyServerSettings, split_list
from titanium_common.upstream_client import check_upstream_url

# The pools the balancer forwards to; /stats reads the other probed services' replicas without balancing over them.
FORWARDED_TO = ("api-gateway", "dashboard-ui")
STATS_ONLY = tuple(s for s in CATALOGUE.probed() if s.name not in FORWARDED_TO)


# The services /stats reports on: the gateways and dashboards it forwards to, and each other one's URL setting
# (AUTH_SERVICE_URL, ...): every replica's /stats is read in parallel.
class LoadBalancerSettings(ProxyServerSettings, service_addresses("load-balancer")):
    service_name: str = "load-balancer"
    port: int = DEFAULT_PORTS["load-balancer"]
    gateway_urls: Annotated[list[str], NoDecode] = Field(
        default=[local_url("api-gateway")],
        description="The gateway's replicas, comma-separated (`http://a:8000,http://b:8000`); a host name stands "
        "for every address it resolves to.",
    )
    dashboard_urls: Annotated[list[str], NoDecode] = Field(
        default=[local_url("dashboard-ui")],
        description="The dashboard's replicas, comma-separated: everything that is not `/api/*`, `/blog/*` or "
        "`/ws/*` goes there.",
    )
    stats_timeout_s: float = Field(default=2.0, description="The wait for each replica's `/stats` in the fan-out.")
    # The gateway's 502/503/504 name a service behind it, not the gateway: they never eject a gateway replica (its
    # own failures, no answer at all, still do).
    eject_after_5xx: int = Field(default=0, ge=0)
    max_body_bytes: int = Field(default=100 * 1024 * 1024, description="Larger request bodies get 413 (100 MiB).")
    upstream_connect_timeout_s: float = Field(
        default=1.0, description="Connect to a replica, including the wait for a free pooled connection."
    )
    upstream_response_timeout_s: float = Field(
        default=5.0,
        description="Each wait for data from a replica: above the gateway's own (2 s), so that a slow service gets "
        "the gateway's 504 naming it.",
    )
    upstream_pool_size: int = Field(default=256, description="Connections open to the replicas, at most.")
    ws_heartbeat_s: float = Field(
        default=4.0,
        gt=0,
        description="`/api/ws-heartbeat`: a client silent this long gets a ping, and is closed if the pong does not "
        "come in half of it. At most half of `TRAFFIC_WINDOW_S`, so that a client which only answers pings stays "
        "ACTIVE.",
    )
    traffic_window_s: float = Field(
        default=10.0,
        ge=1,
        description="The real-traffic window behind `requests_per_second`, `has_real_traffic` and "
        "`avg_response_time_ms`.",
    )
    redis_url: str = Field(
        default="",
        description="Shared accounting: every replica flushes its counters into per-second buckets in this Redis "
        "(empty: off, each replica reports itself).",
    )
    redis_prefix: str = Field(default="titanium:load-balancer:", description="The balancer's key prefix in Redis.")
    traffic_flush_interval_s: float = Field(
        default=0.2, ge=0.05, le=1.0, description="How often the counters go to Redis."
    )
    history_resolution_s: float = Field(
        default=10.0,
        ge=1.0,
        le=60.0,
        description="`/stats/history`: one point per this many seconds, an hour of them (in Redis with "
        "`REDIS_URL`, else in memory).",
    )
    replica_name: str = Field(
        default="",
        description="This replica's name in `/stats`; empty: host name and port (a pod's host name is its name).",
    )
    stats_cache_ttl_s: float = Field(
        default=1.0, ge=0, description="`/stats` callers within this long share one fan-out to the services."
    )
    # /stats/stream: one /stats build for all open streams each interval.
    stats_push_interval_s: float = Field(
        default=2.0,
        ge=0.05,
        description="`/stats/stream`: the `/stats` document pushed to every open stream this often.",
    )
    stats_stream_heartbeat_s: float = Field(
        default=15.0, gt=0, description="`/stats/stream`: a comment line after this long without an event."
    )
    stats_stream_max_clients: int = Field(
        default=1000, ge=0, description="`/stats/stream`: open streams at most; beyond, 503 with Retry-After."
    )
    stats_stream_backlog: int = Field(
        default=2,
        ge=1,
        description="`/stats/stream`: events a viewer's connection may leave untaken before it is dropped.",
    )

    @property
    def replica_id(self) -> str:
        return self.replica_name or f"{socket.gethostname()}:{self.port}"

    @model_validator(mode="after")
    def heartbeat_inside_window(self) -> "LoadBalancerSettings":
        if self.ws_heartbeat_s > self.traffic_window_s / 2:
            raise ValueError(
                f"WS_HEARTBEAT_S ({self.ws_heartbeat_s:g}) must be at most half of TRAFFIC_WINDOW_S "
                f"({self.traffic_window_s:g}): a socket that only answers pings would flicker to IDLE"
            )
        return self

    @field_validator("gateway_urls", "dashboard_urls", mode="before")
    @classmethod
    def split_urls(cls, value: object) -> object:
        if isinstance(value, str):
            return [u.strip() for u in value.split(",") if u.strip()]
        return value

    @field_validator("gateway_urls", "dashboard_urls")
    @classmethod
    def at_least_one(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one URL is needed")
        return [check_upstream_url(url) for url in value]

    @field_validator(*(s.url_field for s in STATS_ONLY))
    @classmethod
    def at_least_one_replica(cls, value: str) -> str:
        if not split_list(value):
            raise ValueError("at least one URL is needed")
        return value
