"""diagnose(): rules over the suite's live figures, each finding with the figures it read and a next step.

No model: every rule is a plain comparison an operator can check by reading the evidence.
"""

import statistics
from dataclasses import dataclass, field
from typing import Any

from .sampler import Sample, pod_key
from .schemas import AlertList, Finding

UNHEALTHY_DEVICE_STATES = ("unhealthy", "unreachable")
# What the alerts about a service's requests (monitoring/rules) measure, so diagnose() can cite a trace for them.
ALERT_KINDS = {
    "TitaniumErrorBudgetFastBurn": "errors",
    "TitaniumErrorBudgetSlowBurn": "errors",
    "TitaniumLatencyBudgetBurn": "latency",
}
RUNNING_POD_STATES = ("Running", "Succeeded", "Completed")


@dataclass
class Thresholds:
    error_rate: float = 0.01
    min_requests: int = 20
    p95_factor: float = 2.0
    p95_margin_ms: float = 100.0
    min_samples: int = 6


@dataclass
class Facts:
    """What diagnose() read: each part None when its source did not answer (that is a finding of its own)."""

    services: dict[str, dict[str, Any]]
    balancer: dict[str, Any] | None = None
    nodes: list[dict[str, Any]] | None = None
    pods: list[dict[str, Any]] | None = None
    devices: list[dict[str, Any]] | None = None
    # The oldest background sample (the start of "recent"), and each service's sampled p95 values.
    since: Sample | None = None
    p95_history: dict[str, list[float]] = field(default_factory=dict)
    since_s: float | None = None
    # Each pod's restarts in the oldest sample that has them, and that sample's age.
    restarts_before: dict[tuple[str, str, str], int] | None = None
    restarts_window_s: float | None = None
    # The alerts firing in Alertmanager (None: not set or not answering; diagnose() says so in what it checked).
    alerts: AlertList | None = None


def _requests(stats: dict[str, Any]) -> dict[str, Any]:
    return stats.get("requests") or {}


def _unreachable(name: str, stats: dict[str, Any]) -> Finding | None:
    status = stats.get("service_status")
    if status == "timeout":
        return Finding(
            severity="critical",
            subject=name,
            problem=f"{name} is timing out: it accepts connections but does not answer",
            evidence={"service_status": status, "error": stats.get("error"), "url": stats.get("url")},
            next_step=f"Check whether the {name} process is stopped (SIGSTOP, a debugger) or its event loop is "
            f"blocked (CPU at 100 %, a long synchronous call); its log shows the last request it finished. "
            f"Restart it if it stays stuck.",
        )
    if status == "offline":
        return Finding(
            severity="critical",
            subject=name,
            problem=f"{name} is offline: its /stats does not answer",
            evidence={"service_status": status, "error": stats.get("error"), "url": stats.get("url")},
            next_step=f"Start {name} (or see why it exited in its log); check that its address is the one the "
            f"suite is configured with.",
        )
    return None


def _dependencies(name: str, stats: dict[str, Any]) -> list[Finding]:
    found = []
    db = stats.get("db")
    if isinstance(db, dict) and db.get("status") not in (None, "ok"):
        found.append(
            Finding(
                severity="critical",
                subject=f"{name} database",
                problem=f"{name}'s database does not answer",
                evidence={"db": db, "service_status": stats.get("service_status")},
                next_step="Check the database server (DATABASE_URL) is up and reachable; the service answers "
                "its reads again once it is.",
            )
        )
    cache = stats.get("cache")
    if isinstance(cache, dict) and cache.get("status") == "down":
        found.append(
            Finding(
                severity="warning",
                subject=f"{name} Redis",
                problem=f"{name}'s Redis cache is down: reads go to the database",
                evidence={"cache": cache, "service_status": stats.get("service_status")},
                next_step="Check Redis (REDIS_URL) is up; nothing is lost meanwhile, the service is slower.",
            )
        )
    if not found and stats.get("service_status") == "degraded":
        found.append(
            Finding(
                severity="warning",
                subject=name,
                problem=f"{name} reports itself degraded",
                evidence={"degraded_reasons": stats.get("degraded_reasons", [])},
                next_step=f"Read the reasons above and {name}'s log.",
            )
        )
    return found


def _error_rate(name: str, stats: dict[str, Any], facts: Facts, limits: Thresholds) -> Finding | None:
    requests = _requests(stats)
    total, errors = requests.get("total"), requests.get("errors")
    if not isinstance(total, int) or not isinstance(errors, int):
        return None
    window = "since it started"
    before = facts.since.services.get(name, {}) if facts.since else {}
    old = _requests(before)
    if isinstance(old.get("total"), int) and isinstance(old.get("errors"), int) and old["total"] <= total:
        # Recent rather than lifetime: an incident an hour ago must not be reported forever.
        total, errors = total - old["total"], errors - old["errors"]
        window = f"in the last {facts.since_s:.0f} s"
    if total < limits.min_requests or errors / total <= limits.error_rate:
        return None
    rate = errors / total
    return Finding(
        severity="critical" if rate > 0.1 else "warning",
        subject=name,
        problem=f"{name} answers {rate:.1%} of its requests with a server error (5xx) {window}",
        evidence={"requests": total, "errors": errors, "error_rate": round(rate, 4), "window": window},
        kind="errors",
        next_step=f"Look at {name}'s log for the failing requests (slowest_routes and service_stats show which "
        f"routes and dependencies); a dependency it calls may be down.",
    )


def _slow(name: str, stats: dict[str, Any], facts: Facts, limits: Thresholds) -> Finding | None:
    requests = _requests(stats)
    p95 = (requests.get("latency_ms") or {}).get("p95")
    history = facts.p95_history.get(name, [])
    # A handful of requests (a first login hashing a password) is no latency profile yet.
    enough = isinstance(requests.get("total"), int) and requests["total"] >= limits.min_requests
    if not isinstance(p95, int | float) or not enough or len(history) < limits.min_samples:
        return None
    usual = statistics.median(history)
    ceiling = max(usual * limits.p95_factor, usual + limits.p95_margin_ms)
    if p95 <= ceiling:
        return None
    return Finding(
        severity="warning",
        subject=name,
        problem=f"{name} is slow: p95 {p95:.0f} ms against a usual {usual:.0f} ms",
        evidence={
            "p95_ms": p95,
            "usual_p95_ms": round(usual, 1),
            "ceiling_ms": round(ceiling, 1),
            "samples": len(history),
        },
        kind="latency",
        next_step=f"slowest_routes('{name}') shows which routes; check its dependencies (database, Redis, the "
        f"services it calls) and the machine's CPU.",
    )


def _gateway_upstreams(stats: dict[str, Any], facts: Facts) -> list[Finding]:
    found = []
    before = ((facts.since.services.get("api-gateway") or {}).get("upstreams") or {}) if facts.since else {}
    for upstream, figures in (stats.get("upstreams") or {}).items():
        replicas = (figures.get("replicas") or {}).get("members") or []
        down = [r for r in replicas if isinstance(r, dict) and r.get("healthy") is False]
        old = before.get(upstream) or {}
        failures = {k: figures.get(k, 0) - old.get(k, 0) for k in ("timeouts", "unavailable")} if old else {}
        if down or any(v > 0 for v in failures.values()):
            found.append(
                Finding(
                    severity="critical" if down and len(down) == len(replicas) else "warning",
                    subject=f"api-gateway → {upstream}",
                    problem=f"the gateway reports {upstream} as failing"
                    + (f": {len(down)} of {len(replicas)} replicas unhealthy" if down else ""),
                    evidence={
                        "unhealthy_replicas": [{"url": r.get("url"), "last_error": r.get("last_error")} for r in down],
                        "recent_timeouts_and_unavailable": failures,
                        "totals": {k: figures.get(k) for k in ("requests", "errors", "timeouts", "unavailable")},
                    },
                    next_step=f"Requests to {upstream} get 502/504 from the gateway; see the {upstream} finding "
                    f"or its log.",
                )
            )
    return found


def _balancer(balancer: dict[str, Any]) -> list[Finding]:
    pool = (balancer.get("pools") or {}).get("api-gateway") or {}
    healthy = pool.get("healthy") if isinstance(pool.get("healthy"), int) else None
    if balancer.get("service_status") == "degraded" or healthy == 0:
        return [
            Finding(
                severity="critical",
                subject="load-balancer",
                problem="the load balancer has no healthy api-gateway replica: every API request fails",
                evidence={"degraded_reasons": balancer.get("degraded_reasons", []), "gateway_pool": pool},
                next_step="Start the api-gateway (or see why its health checks fail in its log).",
            )
        ]
    return []


def _nodes(nodes: list[dict[str, Any]]) -> list[Finding]:
    return [
        Finding(
            severity="critical",
            subject=f"node {node.get('name')}",
            problem=f"node {node.get('name')} in cluster {node.get('cluster')} is NotReady",
            evidence={k: node.get(k) for k in ("name", "cluster", "status", "roles", "version", "internalIP")},
            next_step="Its pods cannot run there: check the node's kubelet and network (kubectl describe node); "
            "recent_events shows when it went NotReady.",
        )
        for node in nodes
        if node.get("status") != "Ready"
    ]


def _pods(pods: list[dict[str, Any]], facts: Facts) -> list[Finding]:
    found = []
    before = facts.restarts_before
    for pod in pods:
        restarts = int(pod.get("restarts") or 0)
        earlier = before.get(pod_key(pod)) if before is not None else None
        restarted = earlier is not None and restarts > earlier
        if pod.get("status") in RUNNING_POD_STATES and not restarted:
            continue
        evidence = {k: pod.get(k) for k in ("name", "namespace", "cluster", "node", "status", "ready", "restarts")}
        if restarted:
            evidence["restarts_before"] = earlier
            evidence["window_s"] = facts.restarts_window_s
        found.append(
            Finding(
                severity="warning",
                subject=f"pod {pod.get('namespace')}/{pod.get('name')}",
                problem=f"pod {pod.get('name')} "
                + (f"restarted {restarts - earlier} time(s) recently" if restarted else f"is {pod.get('status')}"),
                evidence=evidence,
                next_step="Read its previous container's log (kubectl logs --previous) and its events; a node "
                "going NotReady restarts its pods too.",
            )
        )
    return found


def _devices(devices: list[dict[str, Any]]) -> list[Finding]:
    return [
        Finding(
            severity="warning",
            subject=f"edge device {device.get('device_id')}",
            problem=f"edge device {device.get('device_id')} is {device.get('status')}",
            evidence={k: device.get(k) for k in ("device_id", "status", "error", "last_seen", "checked_at")},
            next_step="Check the device is powered and on the network, and that its exporter answers "
            "GET /health on its reload port; reload_edge_device tells it to fetch its config again.",
        )
        for device in devices
        if device.get("status") in UNHEALTHY_DEVICE_STATES
    ]


def _alerts(alerts: AlertList) -> list[Finding]:
    """Every firing alert, as the finding Prometheus' rules made it: a page is critical, a ticket a warning."""
    return [
        Finding(
            severity="critical" if alert.severity == "page" else "warning",
            subject=alert.service or alert.name,
            problem=f"alert {alert.name} is firing: {alert.summary}",
            evidence={"labels": alert.labels, "description": alert.description, "since": alert.starts_at},
            next_step=f"Follow its runbook ({alert.runbook_url})." if alert.runbook_url else alert.description,
            kind=ALERT_KINDS.get(alert.name),
        )
        for alert in alerts.alerts
    ]


def _missing(source: str, why: str) -> Finding:
    return Finding(
        severity="warning",
        subject=source,
        problem=f"could not read {why}",
        evidence={},
        next_step=f"See the {source} finding above; these checks run again when it answers.",
    )


def findings(facts: Facts, limits: Thresholds) -> list[Finding]:
    """Every finding, the critical ones first."""
    found: list[Finding] = []
    for name, stats in facts.services.items():
        if (down := _unreachable(name, stats)) is not None:
            found.append(down)
            continue
        found.extend(_dependencies(name, stats))
        found.extend(f for f in (_error_rate(name, stats, facts, limits), _slow(name, stats, facts, limits)) if f)
        if name == "api-gateway":
            found.extend(_gateway_upstreams(stats, facts))
    if facts.balancer is not None:
        found.extend(_balancer(facts.balancer))
    if facts.nodes is None:
        found.append(_missing("cluster-monitor", "the clusters' nodes and pods"))
    else:
        found.extend(_nodes(facts.nodes))
        found.extend(_pods(facts.pods or [], facts))
    if facts.devices is None:
        found.append(_missing("edge-config", "the edge devices"))
    else:
        found.extend(_devices(facts.devices))
    if facts.alerts is not None:
        found.extend(_alerts(facts.alerts))
    return sorted(found, key=lambda f: f.severity != "critical")


def summary(found: list[Finding]) -> str:
    if not found:
        return "Nothing wrong: every service answers, no node, pod or device reports a problem."
    critical = sum(f.severity == "critical" for f in found)
    head = "; ".join(f.problem for f in found[:3])
    more = f" (and {len(found) - 3} more)" if len(found) > 3 else ""
    return f"{len(found)} finding(s), {critical} critical: {head}{more}."
