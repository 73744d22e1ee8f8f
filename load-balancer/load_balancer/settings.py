import socket
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from titanium_common.addresses import DEFAULT_PORTS, ServiceAddresses, local_url
from titanium_common.settings import SERVICE_URL_SETTINGS, ProxyServerSettings, split_list
from titanium_common.upstream_client import check_upstream_url


class LoadBalancerSettings(ProxyServerSettings, ServiceAddresses):
    service_name: str = "load-balancer"
    port: int = DEFAULT_PORTS["load-balancer"]
    # Comma-separated replicas: GATEWAY_URLS=http://a:8000,http://b:8000
    gateway_urls: Annotated[list[str], NoDecode] = [local_url("api-gateway")]
    # Everything that is not /api/*, /blog/* or /ws/* goes to the dashboard.
    dashboard_urls: Annotated[list[str], NoDecode] = [local_url("dashboard-ui")]
    # The services /stats reports on (these and ServiceAddresses'), each its replicas, comma-separated (a host name
    # stands for every address it resolves to, as in a pool): every replica's /stats is read in parallel,
    # STATS_TIMEOUT_S each.
    ops_mcp_url: str = local_url("ops-mcp")
    stats_timeout_s: float = 2.0
    # The gateway's 502/503/504 name a service behind it, not the gateway: they never eject a gateway replica (its
    # own failures, no answer at all, still do).
    eject_after_5xx: int = Field(default=0, ge=0)
    max_body_bytes: int = 100 * 1024 * 1024
    # Forwarded requests: connect (with the wait for a free pooled connection), then each wait for data. The
    # response bound is above the gateway's own (2 s), so that a slow service gets the gateway's 504 naming it.
    upstream_connect_timeout_s: float = 1.0
    upstream_response_timeout_s: float = 5.0
    upstream_pool_size: int = 256
    # /api/ws-heartbeat: a client silent this long gets a ping, and is closed if the pong does not come in half of it.
    # At most half the traffic window, so that a client which only answers pings stays ACTIVE.
    ws_heartbeat_s: float = Field(default=4.0, gt=0)
    # The real-traffic window behind requests_per_second, has_real_traffic and avg_response_time_ms.
    traffic_window_s: float = Field(default=10.0, ge=1)
    # Shared accounting: every replica flushes its counters into per-second buckets in this Redis (empty: off, each
    # replica reports itself).
    redis_url: str = ""
    redis_prefix: str = "titanium:load-balancer:"
    traffic_flush_interval_s: float = Field(default=0.2, ge=0.05, le=1.0)
    # /stats/history: one point per this many seconds, an hour of them (in Redis with REDIS_URL, else in memory).
    history_resolution_s: float = Field(default=10.0, ge=1.0, le=60.0)
    # This replica's name in /stats (empty: host name and port; a pod's host name is its name).
    replica_name: str = ""
    # /stats callers within this long share one fan-out to the services.
    stats_cache_ttl_s: float = Field(default=1.0, ge=0)
    # /stats/stream: the /stats document pushed to every open stream every STATS_PUSH_INTERVAL_S (one build for all),
    # a comment line after STATS_STREAM_HEARTBEAT_S without an event, at most STATS_STREAM_MAX_CLIENTS streams (503
    # beyond), and a viewer with STATS_STREAM_BACKLOG events its connection has not taken is dropped.
    stats_push_interval_s: float = Field(default=2.0, ge=0.05)
    stats_stream_heartbeat_s: float = Field(default=15.0, gt=0)
    stats_stream_max_clients: int = Field(default=1000, ge=0)
    stats_stream_backlog: int = Field(default=2, ge=1)

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

    @field_validator(*SERVICE_URL_SETTINGS.values())
    @classmethod
    def at_least_one_replica(cls, value: str) -> str:
        if not split_list(value):
            raise ValueError("at least one URL is needed")
        return value
