"""What every service reports about itself: readiness, `/stats` and Prometheus `/metrics`."""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from .settings import ServiceSettings, package_version
from .window import LatencyReservoir, SlidingWindow

log = logging.getLogger("titanium.observability")
access_log = logging.getLogger("titanium.access")

# Probes and scrapes are not traffic: the load balancer asks every service for /stats every poll.
KIT_PATHS = frozenset({"/health", "/ready", "/stats", "/metrics"})
UNMATCHED_ROUTE = "<unmatched>"
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})
READINESS_TIMEOUT_S = 2.0
METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST

ReadinessCheck = Callable[[], Awaitable[Any]]
StatsProvider = Callable[[], Awaitable[dict[str, Any]]]


def log_access(method: str, path: str, shown_path: str, status: int, seconds: float) -> None:
    """One access line per request; probes and scrapes (every few seconds from every pool) only at DEBUG."""
    level = logging.DEBUG if path in KIT_PATHS else logging.INFO
    if access_log.isEnabledFor(level):
        access_log.log(level, "%s %s %d %.1fms", method, shown_path, status, seconds * 1000)


class ServiceKit:
    """Per-service state behind /health, /ready, /stats and /metrics, shared by the FastAPI and aiohttp apps."""

    def __init__(self, settings: ServiceSettings, distribution: str | None = None) -> None:
        self.settings = settings
        self.service = settings.service_name
        self.version = package_version(distribution or settings.service_name)
        self.started_at = time.monotonic()
        self.readiness_checks: dict[str, ReadinessCheck] = {}
        self.stats_providers: list[StatsProvider] = []
        self.total = 0
        self.errors = 0
        self.window = SlidingWindow(window_s=10.0, resolution_s=0.5)
        self.latencies = LatencyReservoir()
        self.registry = CollectorRegistry()
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=self.registry)
        self._requests = Counter(
            "http_requests_total",
            "HTTP requests handled, by route template",
            ["service", "method", "route", "status"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency, by route template",
            ["service", "method", "route"],
            registry=self.registry,
        )
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def add_readiness_check(self, name: str, check: ReadinessCheck) -> None:
        """`check` raises (or returns False) when the dependency does not answer."""
        self.readiness_checks[name] = check

    def add_stats_provider(self, provider: StatsProvider) -> None:
        """`provider` returns fields merged into /stats; a `service_status` it returns wins."""
        self.stats_providers.append(provider)

    def observe(self, method: str, route: str, path: str, status: int, seconds: float) -> None:
        # labels() validates and locks on every call; the children are cached. Both stay bounded: routes are
        # templates, and a client cannot invent methods (any token is valid HTTP) to grow them.
        if method not in HTTP_METHODS:
            method = "OTHER"
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self._requests.labels(self.service, method, route, str(status)),
                self._latency.labels(self.service, method, route),
            )
        children[0].inc()
        # A WebSocket's duration is how long it stayed open, not a latency: it would swamp the percentiles.
        upgraded = status == 101
        if not upgraded:
            children[1].observe(seconds)
        if path in KIT_PATHS:
            return
        self.total += 1
        if status >= 500:
            self.errors += 1
        self.window.add()
        if not upgraded:
            self.latencies.add(seconds * 1000.0)

    async def ready(self) -> tuple[bool, dict[str, Any]]:
        async def run(name: str, check: ReadinessCheck) -> tuple[str, str]:
            try:
                async with asyncio.timeout(READINESS_TIMEOUT_S):
                    result = await check()
            except TimeoutError:
                return name, "timeout"
            except Exception as exc:  # a readiness probe reports any failure, it never raises
                return name, f"error: {exc}"
            return name, "ok" if result is not False else "failing"

        results = dict(await asyncio.gather(*(run(n, c) for n, c in self.readiness_checks.items())))
        ok = all(v == "ok" for v in results.values())
        return ok, {"status": "ready" if ok else "not_ready", "service": self.service, "checks": results}

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "service": self.service, "version": self.version}

    async def stats(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "service": self.service,
            "version": self.version,
            "service_status": "online",
            "uptime_s": round(time.monotonic() - self.started_at, 1),
            "requests": {
                "total": self.total,
                "errors": self.errors,
                "requests_per_second": round(self.window.rate(), 2),
                "latency_ms": self.latencies.percentiles(),
            },
        }
        for provider in self.stats_providers:
            try:
                body.update(await provider())
            except Exception as exc:  # a broken figure degrades /stats, it never breaks it
                log.warning("stats provider failed: %s", exc)
                body["service_status"] = "degraded"
                body.setdefault("degraded_reasons", []).append(str(exc))
        return body

    def metrics(self) -> bytes:
        return generate_latest(self.registry)
