"""The services behind the gateway: each has its own connection pools, its replica pool (built, health-checked and
ejected by the kit as in the load balancer) and figures for /stats."""

from collections.abc import Iterable
from typing import Any

import aiohttp

from titanium_common.http_client import create_client_session
from titanium_common.pool import ReplicaPool, replica_pool
from titanium_common.settings import ProxyServerSettings
from titanium_common.upstream_client import UpstreamClient
from titanium_common.window import LatencyReservoir


class UpstreamStats:
    """What /stats says about one upstream: counts since start, in-flight now, recent latency percentiles."""

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.timeouts = 0
        self.unavailable = 0
        self.in_flight = 0
        self.websockets_open = 0
        # Upgrade attempts, relayed or refused.
        self.websockets_total = 0
        self.latencies = LatencyReservoir()

    def record(self, status: int, seconds: float) -> None:
        self.requests += 1
        if status >= 500:
            self.errors += 1
        if status == 504:
            self.timeouts += 1
        elif status == 502:
            self.unavailable += 1
        self.latencies.add(seconds * 1000.0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "timeouts": self.timeouts,
            "unavailable": self.unavailable,
            "in_flight": self.in_flight,
            "websockets_open": self.websockets_open,
            "websockets_total": self.websockets_total,
            "latency_ms": self.latencies.percentiles(),
        }


class Upstream:
    """One service: its replicas (health-checked and ejected per the settings; a member named by host, a headless
    Service, is resolved periodically and every pod is a replica), its own connection pools."""

    def __init__(self, name: str, replicas: ReplicaPool) -> None:
        self.name = name
        self.replicas = replicas
        self.stats = UpstreamStats()
        self._http: UpstreamClient | None = None
        # Clients with a longer response timeout, for the routes that have one (same connect timeout and size).
        self._http_within: dict[float, UpstreamClient] = {}
        self._session: aiohttp.ClientSession | None = None
        self._websockets: aiohttp.ClientSession | None = None

    @property
    def http(self) -> UpstreamClient:
        """Forwarded HTTP requests."""
        if self._http is None:
            raise RuntimeError(f"the {self.name} pool is not open (the app is not running)")
        return self._http

    def http_within(self, response_s: float | None) -> UpstreamClient:
        """Forwarded HTTP requests of a route with its own response timeout (None: the upstream's own)."""
        if response_s is None:
            return self.http
        return self._http_within.get(response_s) or self.http

    @property
    def session(self) -> aiohttp.ClientSession:
        """The gateway's own calls (its docs pages)."""
        if self._session is None:
            raise RuntimeError(f"the {self.name} pool is not open (the app is not running)")
        return self._session

    @property
    def websockets(self) -> aiohttp.ClientSession:
        """Relayed WebSockets: a pool of their own, bounded by the WebSocket quota, not by `pool_size`."""
        if self._websockets is None:
            raise RuntimeError(f"the {self.name} pool is not open (the app is not running)")
        return self._websockets

    def open(
        self,
        *,
        connect_s: float,
        response_s: float,
        pool_size: int,
        route_timeouts: Iterable[float] = (),
        websocket_limit: int = 1024,
    ) -> None:
        # One pool per upstream: a hung service can hold at most its own connections, never another's.
        self._http = UpstreamClient(connect_s=connect_s, response_s=response_s, limit=pool_size)
        self._http_within = {
            seconds: UpstreamClient(connect_s=connect_s, response_s=seconds, limit=pool_size)
            for seconds in set(route_timeouts)
        }
        # The proxy core sets X-Request-ID itself, so the sessions' request tracing would be pure cost.
        self._session, self._websockets = (
            create_client_session(
                connect_s=connect_s, response_s=response_s, limit=limit, auto_decompress=False, pass_request_id=False
            )
            for limit in (pool_size, websocket_limit)
        )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None
        for client in self._http_within.values():
            await client.close()
        self._http_within = {}
        for session in (self._session, self._websockets):
            if session is not None:
                await session.close()
        self._session = self._websockets = None

    def as_dict(self) -> dict[str, Any]:
        return {**self.stats.as_dict(), "replicas": self.replicas.snapshot()}


class Upstreams:
    """Every upstream by name; their connection pools are opened and closed with the app."""

    def __init__(self, urls: dict[str, list[str]], settings: ProxyServerSettings) -> None:
        self.by_name = {name: Upstream(name, replica_pool(name, u, settings)) for name, u in urls.items()}

    def __getitem__(self, name: str) -> Upstream:
        return self.by_name[name]

    @property
    def pools(self) -> list[ReplicaPool]:
        return [upstream.replicas for upstream in self.by_name.values()]

    def open(self, **options: Any) -> None:
        for upstream in self.by_name.values():
            upstream.open(**options)

    async def close(self) -> None:
        for upstream in self.by_name.values():
            await upstream.close()

    async def stats(self) -> dict[str, Any]:
        return {"upstreams": {name: u.as_dict() for name, u in self.by_name.items()}}
