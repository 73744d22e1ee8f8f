"""What each tool does, once: `LiveOperations` reads the services themselves (the ops-mcp service), and the REST
routes and the MCP tools both call it. The stdio server calls the same through `/api/ops/*` (remote.py)."""

import asyncio
import time
from collections import Counter
from typing import Any, Protocol

from titanium_common.clock import utc_iso

from . import diagnosis
from .alerts import AlertsReader
from .reader import SuiteReader, UpstreamError
from .route_latency import route_latencies, slowest
from .sampler import Sampler
from .schemas import (
    SERVICE_NAMES,
    AlertList,
    BalancerState,
    DeviceListing,
    DeviceStatus,
    Diagnosis,
    EventType,
    Listing,
    ReloadOutcome,
    ResourceKind,
    RouteLatencyModel,
    Series,
    ServiceStats,
    ServiceStatus,
    SlowRequests,
    SlowRoutes,
    SuiteStatus,
    Trace,
)
from .settings import OpsSettings
from .traces import TraceReader, cite_traces

# cluster-monitor's series paths by kind; pods and deployments are found by namespace too.
SERIES_PATHS = {
    "node": "/api/nodes/{name}/timeseries",
    "pod": "/api/pods/{name}/timeseries",
    "namespace": "/api/namespaces/{name}/timeseries",
    "deployment": "/api/deployments/{name}/timeseries",
}
AUTHORIZATION_REFUSED = (401, 403)
# Every service but the load balancer, whose /stats is the aggregate (read by the sampler).
SERVICES_READ = [name for name in SERVICE_NAMES if name != "load-balancer"]


class Operations(Protocol):
    async def suite_status(self) -> SuiteStatus: ...
    async def service_stats(self, service: str) -> ServiceStats: ...
    async def slowest_routes(self, service: str | None, limit: int) -> SlowRoutes: ...
    async def clusters(self) -> Listing: ...
    async def nodes(self) -> Listing: ...
    async def pods(self, namespace: str | None, node: str | None) -> Listing: ...
    async def resource_timeseries(
        self, kind: ResourceKind, name: str, namespace: str | None, window_s: int
    ) -> Series: ...
    async def recent_events(self, type: EventType | None, limit: int) -> Listing: ...
    async def edge_devices(self, status: DeviceStatus | None) -> DeviceListing: ...
    async def reload_edge_device(self, device_id: str) -> ReloadOutcome: ...
    async def diagnose(self) -> Diagnosis: ...
    async def alerts(self) -> AlertList: ...
    async def stats_aggregate(self) -> dict[str, Any]: ...
    async def events_feed(self) -> dict[str, Any]: ...
    async def slow_requests(self, slowest: int, since_s: float) -> SlowRequests: ...
    async def trace(self, trace_id: str) -> Trace: ...


def service_status(name: str, stats: dict[str, Any]) -> ServiceStatus:
    status = stats.get("service_status")
    if status not in ("online", "degraded", "offline", "timeout"):
        status = "online"
    requests = stats.get("requests") or {}
    total, errors = requests.get("total"), requests.get("errors")
    reasons = stats.get("degraded_reasons")
    return ServiceStatus(
        name=name,
        status=status,
        requests_per_second=requests.get("requests_per_second"),
        error_rate=round(errors / total, 4) if isinstance(total, int) and total and isinstance(errors, int) else None,
        p95_ms=(requests.get("latency_ms") or {}).get("p95"),
        uptime_s=stats.get("uptime_s"),
        error=stats.get("error") or ("; ".join(map(str, reasons)) if reasons else None),
    )


class LiveOperations:
    def __init__(
        self,
        reader: SuiteReader,
        sampler: Sampler,
        settings: OpsSettings,
        alerts: AlertsReader | None = None,
        traces: TraceReader | None = None,
    ) -> None:
        self.reader = reader
        self.alerts_reader = alerts or AlertsReader(reader.session, settings.alertmanager_url, settings.read_timeout_s)
        self.traces = traces or TraceReader(reader.session, settings.service_replicas(), settings.read_timeout_s)
        self.sampler = sampler
        self.settings = settings
        self.limits = diagnosis.Thresholds(
            error_rate=settings.error_rate_threshold,
            min_requests=settings.min_requests_for_rates,
            p95_factor=settings.p95_factor,
            p95_margin_ms=settings.p95_margin_ms,
            min_samples=settings.min_samples_for_baseline,
        )

    services = SERVICES_READ

    async def _balancer(self) -> BalancerState:
        own, age = self.sampler.latest_balancer()
        if own is None:
            return BalancerState(error=self.sampler.balancer_or_failure().get("error"))
        pool = (own.get("pools") or {}).get("api-gateway") or {}
        return BalancerState(
            state=own.get("state"),
            requests_per_second=own.get("requests_per_second"),
            has_real_traffic=own.get("has_real_traffic"),
            success_rate=own.get("success_rate"),
            healthy_gateway_replicas=pool.get("healthy"),
            sampled_s_ago=age,
        )

    async def suite_status(self) -> SuiteStatus:
        stats, _ = await asyncio.gather(self.reader.all_stats(self.services), self.sampler.caught_up())
        listed = [service_status("load-balancer", self.sampler.balancer_or_failure())]
        listed += [service_status(name, stats[name]) for name in self.services]
        return SuiteStatus(services=listed, balancer=await self._balancer(), timestamp=utc_iso())

    async def service_stats(self, service: str) -> ServiceStats:
        if service == "load-balancer":
            await self.sampler.caught_up()
            return ServiceStats(service=service, stats=self.sampler.balancer_or_failure())
        return ServiceStats(service=service, stats=await self.reader.stats(service))

    async def slowest_routes(self, service: str | None, limit: int) -> SlowRoutes:
        names = [service] if service else list(SERVICE_NAMES)

        async def one(name: str) -> tuple[str, list | str]:
            try:
                return name, route_latencies(name, await self.reader.metrics_text(name))
            except UpstreamError as exc:
                return name, exc.detail

        routes, unavailable = [], {}
        for name, result in await asyncio.gather(*(one(n) for n in names)):
            if isinstance(result, str):
                unavailable[name] = result
            else:
                routes.extend(result)
        top = [RouteLatencyModel(**vars(r)) for r in slowest(routes, limit)]
        return SlowRoutes(routes=top, unavailable=unavailable)

    async def clusters(self) -> Listing:
        items = (await self.reader.get("cluster-monitor", "/api/clusters")).get("clusters", [])
        return Listing(items=items, total=len(items))

    async def nodes(self) -> Listing:
        items = (await self.reader.get("cluster-monitor", "/api/nodes")).get("nodes", [])
        return Listing(items=items, total=len(items))

    async def pods(self, namespace: str | None, node: str | None) -> Listing:
        items = (await self.reader.get("cluster-monitor", "/api/pods", namespace=namespace)).get("pods", [])
        if node:
            items = [pod for pod in items if pod.get("node") == node]
        return Listing(items=items, total=len(items))

    async def resource_timeseries(self, kind: ResourceKind, name: str, namespace: str | None, window_s: int) -> Series:
        path = SERIES_PATHS[kind].format(name=name)
        params = {"window": window_s, "namespace": namespace if kind in ("pod", "deployment") else None}
        answer = await self.reader.get("cluster-monitor", path, **params)
        return Series(kind=kind, name=name, namespace=namespace, window_s=window_s, points=answer.get("data", []))

    async def recent_events(self, type: EventType | None, limit: int) -> Listing:
        events = (await self.reader.get("cluster-monitor", "/api/events")).get("events", [])
        if type:
            events = [event for event in events if event.get("type") == type]
        # cluster-monitor lists the oldest first; an operator wants the latest.
        items = list(reversed(events))[:limit]
        return Listing(items=items, total=len(items))

    async def edge_devices(self, status: DeviceStatus | None) -> DeviceListing:
        devices = (await self.reader.get("edge-config", "/api/edge/devices")).get("devices") or []
        by_status = dict(Counter(device.get("status", "unknown") for device in devices))
        if status:
            devices = [device for device in devices if device.get("status") == status]
        return DeviceListing(devices=devices, total=len(devices), by_status=by_status)

    async def reload_edge_device(self, device_id: str) -> ReloadOutcome:
        try:
            answer = await self.reader.call("edge-config", "POST", f"/api/edge/devices/{device_id}/reload")
        except UpstreamError as exc:
            if exc.extra.get("upstream_status") != 502:
                raise
            # edge-config reached the device's address but the device refused or did not answer: an outcome.
            return ReloadOutcome(
                device_id=device_id,
                reloaded=False,
                summary=f"asked edge-config to reload {device_id}; the device did not reload: {exc.detail}",
                detail=exc.extra,
            )
        return ReloadOutcome(
            device_id=device_id,
            reloaded=answer.get("status") == "reloaded",
            summary=f"asked edge-config to reload {device_id}: POST /reload on the device answered "
            f"{answer.get('status')}; it now fetches its config again",
            detail=answer,
        )

    async def _optional(self, service: str, path: str, key: str) -> tuple[list[dict[str, Any]] | None, str]:
        """A list diagnose() reads: None when the service did not answer; [] when the caller may not read it."""
        try:
            return (await self.reader.get(service, path)).get(key) or [], f"{service} {path}"
        except UpstreamError as exc:
            if exc.extra.get("upstream_status") in AUTHORIZATION_REFUSED:
                return [], f"{service} {path} (not readable with this caller's token: skipped)"
            return None, f"{service} {path} (no answer: {exc.detail})"

    async def diagnose(self) -> Diagnosis:
        stats, (nodes, nodes_read), (pods, pods_read), (devices, devices_read), alerts, _ = await asyncio.gather(
            self.reader.all_stats(self.services),
            self._optional("cluster-monitor", "/api/nodes", "nodes"),
            self._optional("cluster-monitor", "/api/pods", "pods"),
            self._optional("edge-config", "/api/edge/devices", "devices"),
            self.alerts_reader.read(),
            self.sampler.caught_up(),
        )
        since = self.sampler.oldest()
        balancer, _ = self.sampler.latest_balancer()
        restarts_before, restarts_window_s = self.sampler.oldest_restarts()
        if self.sampler.balancer_failure is not None:
            # Its latest read failed: that is the finding, whatever an older sample said.
            stats = {"load-balancer": self.sampler.balancer_failure} | stats
        facts = diagnosis.Facts(
            services=stats,
            balancer=balancer,
            nodes=nodes,
            pods=pods,
            devices=devices,
            since=since,
            since_s=round(time.monotonic() - since.at, 1) if since else None,
            p95_history={name: self.sampler.p95_history(name) for name in self.services},
            restarts_before=restarts_before,
            restarts_window_s=restarts_window_s,
            alerts=alerts if alerts.available else None,
        )
        found = diagnosis.findings(facts, self.limits)
        await cite_traces(found, self.traces, time.time())
        sampled = "background sample" if self.sampler.history else "not sampled yet"
        checked = [f"/stats of {', '.join(self.services)}", f"load-balancer /stats ({sampled})"]
        checked += [nodes_read, pods_read, devices_read]
        checked.append(f"Alertmanager {alerts.source}" if alerts.available else (alerts.error or "alerts unavailable"))
        return Diagnosis(
            healthy=not found,
            summary=diagnosis.summary(found),
            findings=found,
            checked=checked,
            timestamp=utc_iso(),
        )

    async def alerts(self) -> AlertList:
        return await self.alerts_reader.read()

    async def stats_aggregate(self) -> dict[str, Any]:
        await self.sampler.caught_up()
        _, age = self.sampler.latest_balancer()
        services = await self.reader.all_stats(self.services)
        balancer = self.sampler.balancer_or_failure() | {"sampled_s_ago": age}
        return {"load-balancer": balancer, **services, "timestamp": utc_iso()}

    async def events_feed(self) -> dict[str, Any]:
        return await self.reader.get("cluster-monitor", "/api/events")

    async def slow_requests(self, slowest: int, since_s: float) -> SlowRequests:
        return await self.traces.slow_requests(slowest, since_s)

    async def trace(self, trace_id: str) -> Trace:
        return await self.traces.trace(trace_id)
