"""What every service reports about itself: readiness, `/stats` and Prometheus `/metrics`.

Besides the request metrics, `/metrics` carries `titanium_dependency_up{dependency}` (1 or 0), the answer of every
readiness check and of every dependency check (what the service works without, degraded: Redis, a lease store),
asked at scrape time, so that alerts can name the dependency that is down.
"""

import asyncio
import bisect
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    GCCollector,
    Histogram,
    Metric,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.utils import floatToGoString

from .settings import ServiceSettings, package_version
from .tracing import setup_tracing
from .window import LatencyReservoir, SlidingWindow

log = logging.getLogger("titanium.observability")
access_log = logging.getLogger("titanium.access")

# Probes and scrapes are not traffic: the load balancer asks every service for /stats every poll.
# The load balancer's /stats/stream is /stats pushed: not traffic either, and open for as long as someone watches.
STREAM_PATHS = frozenset({"/stats/stream"})
KIT_PATHS = frozenset({"/health", "/ready", "/stats", "/metrics"}) | STREAM_PATHS
UNMATCHED_ROUTE = "<unmatched>"
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})
READINESS_TIMEOUT_S = 2.0
METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST

ReadinessCheck = Callable[[], Awaitable[Any]]
StatsProvider = Callable[[], Awaitable[dict[str, Any]]]


class _Series:
    """One label set: its count (or histogram buckets and sum) and when it appeared."""

    __slots__ = ("buckets", "count", "created", "labels", "latency", "total")

    def __init__(self, labels: dict[str, str], buckets: int = 0, latency: "_Series | None" = None) -> None:
        self.labels = labels
        self.count = 0
        self.buckets = [0] * buckets
        self.total = 0.0
        self.created = time.time()
        self.latency = latency


class RequestMetrics:
    """`http_requests_total` and `http_request_duration_seconds` as plain numbers, rendered at scrape time.

    prometheus-client's Counter and Histogram take a lock on every update; the services are single-threaded event
    loops, so that lock only costs (about 4 µs per proxied request). The exposition is the one those classes
    produce: same names, labels, default buckets, and `_created` series.
    """

    UPPER_BOUNDS = tuple(float(b) for b in Histogram.DEFAULT_BUCKETS)

    def __init__(self, service: str) -> None:
        self.service = service
        self._requests: dict[tuple[str, str, int], _Series] = {}
        self._latencies: dict[tuple[str, str], _Series] = {}

    def observe(self, method: str, route: str, status: int, seconds: float | None) -> None:
        """`seconds` None: counted, not timed."""
        series = self._requests.get((method, route, status))
        if series is None:
            series = self._add(method, route, status)
        series.count += 1
        if seconds is not None:
            latency = series.latency
            latency.buckets[bisect.bisect_left(self.UPPER_BOUNDS, seconds)] += 1
            latency.total += seconds

    def _add(self, method: str, route: str, status: int) -> _Series:
        latency = self._latencies.get((method, route))
        if latency is None:
            labels = {"service": self.service, "method": method, "route": route}
            latency = self._latencies[(method, route)] = _Series(labels, len(self.UPPER_BOUNDS))
        labels = {"service": self.service, "method": method, "route": route, "status": str(status)}
        series = self._requests[(method, route, status)] = _Series(labels, latency=latency)
        return series

    def collect(self) -> list[Metric]:
        requests = Metric("http_requests", "HTTP requests handled, by route template", "counter")
        for series in self._requests.values():
            requests.add_sample("http_requests_total", series.labels, float(series.count))
            requests.add_sample("http_requests_created", series.labels, series.created)
        name = "http_request_duration_seconds"
        latency = Metric(name, "HTTP request latency, by route template", "histogram")
        for series in self._latencies.values():
            seen = 0.0
            for bound, count in zip(self.UPPER_BOUNDS, series.buckets, strict=True):
                seen += count
                latency.add_sample(f"{name}_bucket", {**series.labels, "le": floatToGoString(bound)}, seen)
            latency.add_sample(f"{name}_count", series.labels, seen)
            latency.add_sample(f"{name}_sum", series.labels, series.total)
            latency.add_sample(f"{name}_created", series.labels, series.created)
        return [requests, latency]


class DependencyMetrics:
    """`titanium_dependency_up`, as the last scrape's checks found it."""

    def __init__(self) -> None:
        self.up: dict[str, bool] = {}

    def collect(self) -> list[Metric]:
        gauge = GaugeMetricFamily(
            "titanium_dependency_up", "1 when the dependency answered at this scrape", labels=["dependency"]
        )
        for name, up in sorted(self.up.items()):
            gauge.add_metric([name], 1.0 if up else 0.0)
        return [gauge]


SUMMARY_INTERVAL_S = 1.0


class AccessLog:
    """Each request's access line, or (in summary mode) a line per second of them.

    In summary mode (the default) a 2xx or 3xx answer's line is written at DEBUG, a 4xx or 5xx answer's at INFO
    (errors are never only counted), and once a second, if there were requests, one INFO line sums them up. A
    line per request costs each hop about 15 µs of formatting, and under `make run` the launcher relays every line
    through one Python process: at 1,500 requests a second through three hops that was the suite's slowest part.
    Probes and scrapes (every few seconds from every pool) are logged at DEBUG only, and not counted."""

    def __init__(self, every: bool = False) -> None:
        self.every = every
        self._counts = [0] * 6  # by status class: index 1 for 1xx ... 5 for 5xx
        self._total_ms = 0.0
        self._max_ms = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def record(self, method: str, path: str, shown_path: object, status: int, seconds: float) -> None:
        """`shown_path` is rendered with str() only if the line is written (a URL object costs nothing when it is
        not)."""
        ms = seconds * 1000
        if path in KIT_PATHS:
            if access_log.isEnabledFor(logging.DEBUG):
                access_log.debug("%s %s %d %.1fms", method, shown_path, status, ms)
            return
        level = logging.INFO if self.every or status >= 400 else logging.DEBUG
        if access_log.isEnabledFor(level):
            access_log.log(level, "%s %s %d %.1fms", method, shown_path, status, ms)
        if self.every or not access_log.isEnabledFor(logging.INFO):
            return
        self._counts[min(status // 100, 5)] += 1
        self._total_ms += ms
        if ms > self._max_ms:
            self._max_ms = ms
        if self._timer is None:
            # An empty context: the summary is no request's line (no request id, no trace id).
            self._timer = asyncio.get_running_loop().call_later(
                SUMMARY_INTERVAL_S, self.write_summary, context=contextvars.Context()
            )

    def write_summary(self) -> None:
        """The requests since the last summary on one INFO line (none: no line)."""
        self._timer = None
        counts = self._counts
        total = sum(counts)
        if total == 0:
            return
        classes = ", ".join(f"{n}xx {counts[n]}" for n in range(1, 6) if counts[n] or n in (2, 4, 5))
        access_log.info(
            "%d requests in the last %g s (%s), mean %.1f ms, max %.1f ms",
            total,
            SUMMARY_INTERVAL_S,
            classes,
            self._total_ms / total,
            self._max_ms,
        )
        self._counts = [0] * 6
        self._total_ms = self._max_ms = 0.0


class ServiceKit:
    """Per-service state behind /health, /ready, /stats and /metrics, shared by the FastAPI and aiohttp apps."""

    def __init__(self, settings: ServiceSettings, distribution: str | None = None) -> None:
        self.settings = settings
        self.service = settings.service_name
        self.version = package_version(distribution or settings.service_name)
        self.started_at = time.monotonic()
        self.readiness_checks: dict[str, ReadinessCheck] = {}
        self.dependency_checks: dict[str, ReadinessCheck] = {}
        self.stats_providers: list[StatsProvider] = []
        self.total = 0
        self.errors = 0
        self.window = SlidingWindow(window_s=10.0, resolution_s=0.5)
        self.latencies = LatencyReservoir()
        self.registry = CollectorRegistry()
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=self.registry)
        self.request_metrics = RequestMetrics(self.service)
        self.registry.register(self.request_metrics)
        self.tracing = setup_tracing(settings)
        self.dependency_metrics = DependencyMetrics()
        self.registry.register(self.dependency_metrics)
        self.access_log = AccessLog(every=settings.access_log == "every")

    def add_readiness_check(self, name: str, check: ReadinessCheck) -> None:
        """`check` raises (or returns False) when the dependency does not answer."""
        self.readiness_checks[name] = check

    def add_dependency_check(self, name: str, check: ReadinessCheck) -> None:
        """A dependency the service works without (degraded): reported in /metrics, not in /ready."""
        self.dependency_checks[name] = check

    def add_stats_provider(self, provider: StatsProvider) -> None:
        """`provider` returns fields merged into /stats; a `service_status` it returns wins."""
        self.stats_providers.append(provider)

    def observe(self, method: str, route: str, path: str, status: int, seconds: float) -> None:
        # Bounded label sets: routes are templates, and a client cannot invent methods (any token is valid HTTP).
        if method not in HTTP_METHODS:
            method = "OTHER"
        # A WebSocket's or a stream's duration is how long it stayed open, not a latency: it would swamp percentiles.
        upgraded = status == 101 or path in STREAM_PATHS
        self.request_metrics.observe(method, route, status, None if upgraded else seconds)
        if path in KIT_PATHS:
            return
        self.total += 1
        if status >= 500:
            self.errors += 1
        self.window.add()
        if not upgraded:
            self.latencies.add(seconds * 1000.0)

    @staticmethod
    async def _check_all(checks: dict[str, ReadinessCheck]) -> dict[str, str]:
        async def run(name: str, check: ReadinessCheck) -> tuple[str, str]:
            try:
                async with asyncio.timeout(READINESS_TIMEOUT_S):
                    result = await check()
            except TimeoutError:
                return name, "timeout"
            except Exception as exc:  # a readiness probe reports any failure, it never raises
                return name, f"error: {exc}"
            return name, "ok" if result is not False else "failing"

        return dict(await asyncio.gather(*(run(n, c) for n, c in checks.items())))

    async def ready(self) -> tuple[bool, dict[str, Any]]:
        results = await self._check_all(self.readiness_checks)
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

    async def scrape(self) -> bytes:
        """/metrics: every readiness and dependency check asked now, then the exposition."""
        results = await self._check_all(self.readiness_checks | self.dependency_checks)
        self.dependency_metrics.up = {name: result == "ok" for name, result in results.items()}
        return self.metrics()
