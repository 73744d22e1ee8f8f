"""diagnose()'s rules over figures shaped as the services give them: each finding names the problem and carries
the figures it was read from; a healthy suite gives none."""

import time

from ops_mcp.diagnosis import Facts, Thresholds, findings, summary
from ops_mcp.sampler import Sample

LIMITS = Thresholds(error_rate=0.01, min_requests=20, p95_factor=2.0, p95_margin_ms=50.0, min_samples=3)


def stats(total: int = 100, errors: int = 0, p95: float = 20.0, **own) -> dict:
    return {
        "service_status": "online",
        "uptime_s": 60.0,
        "requests": {"total": total, "errors": errors, "requests_per_second": 1.0, "latency_ms": {"p95": p95}},
    } | own


def node(name: str, status: str = "Ready") -> dict:
    return {"name": name, "cluster": "member1", "status": status, "roles": "worker"}


def pod(name: str, restarts: int = 0, status: str = "Running") -> dict:
    return {
        "name": name,
        "namespace": "default",
        "cluster": "member1",
        "node": "node-1",
        "status": status,
        "restarts": restarts,
        "ready": "1/1",
    }


def healthy_facts(**changes) -> Facts:
    facts = Facts(
        services={"user-service": stats(), "blog-service": stats()},
        balancer={"service_status": "online", "state": "IDLE", "pools": {"api-gateway": {"healthy": 1}}},
        nodes=[node("node-1"), node("node-2")],
        pods=[pod("web-1"), pod("db-1")],
        devices=[{"device_id": "jetson-1", "status": "healthy"}],
    )
    for key, value in changes.items():
        setattr(facts, key, value)
    return facts


def test_a_healthy_suite_has_no_finding():
    found = findings(healthy_facts(), LIMITS)
    assert found == []
    assert summary(found).startswith("Nothing wrong")


def test_a_service_timing_out_or_offline_is_critical_with_what_was_read():
    down = {"service_status": "timeout", "error": "no answer within 1 s", "url": "http://127.0.0.1:1"}
    gone = {"service_status": "offline", "error": "Connect call failed", "url": "http://127.0.0.1:2"}
    found = findings(healthy_facts(services={"user-service": down, "blog-service": gone}), LIMITS)
    assert [(f.subject, f.severity) for f in found] == [("user-service", "critical"), ("blog-service", "critical")]
    assert "timing out" in found[0].problem and found[0].evidence == down
    assert "offline" in found[1].problem and found[1].evidence["error"] == "Connect call failed"
    assert "2 critical" in summary(found)


def test_error_rate_counts_the_recent_window_not_the_lifetime():
    # 50 errors long ago, none since the oldest sample: nothing to report now.
    since = Sample(time.monotonic() - 60, {"user-service": stats(total=1000, errors=50)}, None, None)
    quiet = healthy_facts(services={"user-service": stats(total=1500, errors=50)}, since=since, since_s=60.0)
    assert findings(quiet, LIMITS) == []
    failing = healthy_facts(services={"user-service": stats(total=1100, errors=60)}, since=since, since_s=60.0)
    [finding] = findings(failing, LIMITS)
    assert finding.evidence == {"requests": 100, "errors": 10, "error_rate": 0.1, "window": "in the last 60 s"}
    assert "10.0%" in finding.problem and finding.severity == "warning"


def test_error_rate_below_the_threshold_or_on_too_few_requests_is_not_reported():
    assert findings(healthy_facts(services={"user-service": stats(total=1000, errors=10)}), LIMITS) == []
    assert findings(healthy_facts(services={"user-service": stats(total=10, errors=5)}), LIMITS) == []


def test_p95_above_its_usual_range():
    history = {"blog-service": [20.0, 22.0, 18.0, 21.0]}
    usual = healthy_facts(services={"blog-service": stats(p95=60.0)}, p95_history=history)
    assert findings(usual, LIMITS) == []  # below max(2 x 20.5, 20.5 + 50)
    slow = healthy_facts(services={"blog-service": stats(p95=400.0)}, p95_history=history)
    [finding] = findings(slow, LIMITS)
    assert finding.subject == "blog-service"
    assert finding.evidence == {"p95_ms": 400.0, "usual_p95_ms": 20.5, "ceiling_ms": 70.5, "samples": 4}


def test_an_upstream_the_gateway_reports_failing():
    replicas = {"members": [{"url": "http://127.0.0.1:9", "healthy": False, "last_error": "connect refused"}]}
    gateway = stats(
        upstreams={"user-service": {"requests": 9, "errors": 3, "timeouts": 0, "unavailable": 3, "replicas": replicas}}
    )
    [finding] = findings(healthy_facts(services={"api-gateway": gateway}), LIMITS)
    assert finding.subject == "api-gateway → user-service"
    assert finding.severity == "critical"
    assert finding.evidence["unhealthy_replicas"] == [{"url": "http://127.0.0.1:9", "last_error": "connect refused"}]


def test_notready_nodes_restarting_pods_and_unhealthy_devices():
    facts = healthy_facts(
        nodes=[node("node-1"), node("node-2", "NotReady")],
        pods=[pod("web-1", restarts=4), pod("db-1", status="CrashLoopBackOff")],
        devices=[{"device_id": "jetson-1", "status": "unreachable", "error": "connection refused"}],
        restarts_before={("member1", "default", "web-1"): 2},
        restarts_window_s=30.0,
    )
    found = {f.subject: f for f in findings(facts, LIMITS)}
    assert set(found) == {"node node-2", "pod default/web-1", "pod default/db-1", "edge device jetson-1"}
    assert found["node node-2"].severity == "critical" and found["node node-2"].evidence["status"] == "NotReady"
    assert "restarted 2 time(s)" in found["pod default/web-1"].problem
    assert found["pod default/web-1"].evidence["restarts_before"] == 2
    assert found["pod default/db-1"].problem == "pod db-1 is CrashLoopBackOff"
    assert found["edge device jetson-1"].evidence["error"] == "connection refused"


def test_database_and_redis_down():
    user = stats(
        service_status="degraded",
        db={"status": "down", "error": "connection refused"},
        cache={"backend": "redis", "status": "down", "reason": "ping failed"},
    )
    found = findings(healthy_facts(services={"user-service": user}), LIMITS)
    assert [(f.subject, f.severity) for f in found] == [
        ("user-service database", "critical"),
        ("user-service Redis", "warning"),
    ]


def test_no_healthy_gateway_behind_the_balancer_and_unreadable_sources():
    balancer = {
        "service_status": "degraded",
        "degraded_reasons": ["no healthy api-gateway replica"],
        "pools": {"api-gateway": {"healthy": 0}},
    }
    found = findings(healthy_facts(balancer=balancer, nodes=None, devices=None), LIMITS)
    assert [f.subject for f in found] == ["load-balancer", "cluster-monitor", "edge-config"]
    assert found[0].severity == "critical"
