import time
import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from titanium_dev.suite import SERVICES


def services_that_logged(suite, request_id: str, within_s: float = 5.0) -> set[str]:
    """Names of the services whose log has a line with this request id (logs arrive asynchronously)."""
    deadline = time.monotonic() + within_s
    seen: set[str] = set()
    while time.monotonic() < deadline:
        seen = {name for name, p in suite.processes.items() if any(request_id in line for line in p.lines)}
        if {"load-balancer", "api-gateway"} <= seen and len(seen) >= 3:
            break
        time.sleep(0.05)
    return seen


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("/api/users/7", "user-service"),
        ("/api/auth/verify", "auth-service"),
        ("/api/posts?page=1", "blog-service"),
        ("/api/nodes", "cluster-monitor"),
        ("/api/edge/config", "edge-config"),
    ],
)
def test_a_request_crosses_all_three_hops_with_one_request_id(suite, path, service):
    request_id = f"sys-{uuid.uuid4().hex}"
    answer = httpx.get(suite.url("load-balancer") + path, headers={"X-Request-ID": request_id})
    assert answer.headers["X-Request-ID"] == request_id
    assert answer.headers["content-type"].startswith("application/json")
    assert services_that_logged(suite, request_id) == {"load-balancer", "api-gateway", service}


def test_internal_paths_are_not_reachable_from_outside(suite):
    answer = httpx.post(suite.url("load-balancer") + "/internal/credentials/verify", json={})
    assert answer.status_code == 404
    assert answer.json()["detail"] == "no route for /internal/credentials/verify"


@pytest.mark.parametrize("name", [spec.name for spec in SERVICES])
def test_every_service_answers_health_ready_stats_metrics(suite, name):
    base = suite.url(name)
    assert httpx.get(base + "/health").json()["status"] == "ok"
    assert httpx.get(base + "/ready").status_code == 200
    stats = httpx.get(base + "/stats").json()
    if name == "load-balancer":  # its /stats is the whole suite's, keyed by service name
        stats = stats[name]
    assert stats["service"] == name
    assert stats["service_status"] in ("online", "degraded")
    assert {"p50", "p95", "p99"} <= set(stats["requests"]["latency_ms"])
    families = {f.name for f in text_string_to_metric_families(httpx.get(base + "/metrics").text)}
    assert "http_requests" in families
    assert "process_cpu_seconds" in families
