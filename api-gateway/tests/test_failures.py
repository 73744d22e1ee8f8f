"""An upstream that is down or hung gives a fast 502/504 naming it, and never slows the others."""

import asyncio
import time

import aiohttp
import pytest

from api_gateway.settings import GatewaySettings
from tests.support.polling import eventually
from tests.support.probes import MALFORMED_REQUESTS, check_json_refusal
from tests.support.servers import ServiceProcess, free_port, raw_exchange

HUNG = {"X-Test-Hang": "1"}
# The response-header timeout is 2 s; a noisy 2-core machine gets generous slack, never a tight bound.
TIMEOUT_UPPER_BOUND_S = 4.0


async def test_refused_port_is_502_naming_the_upstream(start_gateway):
    gateway = await start_gateway(user_service_url=f"http://127.0.0.1:{free_port()}")
    async with aiohttp.ClientSession() as http:
        async with http.get(gateway.make_url("/api/users/1"), headers={"X-Request-ID": "refused-1"}) as r:
            assert r.status == 502
            body = await r.json()
        assert body["detail"].startswith("upstream user-service unavailable")
        assert body["request_id"] == "refused-1"
        # The others are not affected.
        async with http.get(gateway.make_url("/api/posts")) as r:
            assert r.status == 200


async def test_a_refusing_replica_is_skipped_then_ejected(start_gateway, upstreams):
    refused = f"http://127.0.0.1:{free_port()}"
    gateway = await start_gateway(user_service_url=f"{refused},{upstreams.urls['user-service']}")
    async with aiohttp.ClientSession() as http:
        for _ in range(6):
            # A GET whose connect failed was sent nowhere: it is retried on the other replica.
            async with http.get(gateway.make_url("/api/users")) as r:
                assert r.status == 200
        async with http.post(gateway.make_url("/api/users"), json={"username": "a"}) as r:
            assert r.status == 200
        async with http.get(gateway.make_url("/stats")) as r:
            replicas = (await r.json())["upstreams"]["user-service"]["replicas"]
    assert replicas["healthy"] == 1
    first = replicas["members"][0]
    assert (first["url"], first["healthy"], first["connect_failures"]) == (refused, False, 3)


async def test_hung_upstream_is_504_while_another_keeps_answering(upstreams, run_gateway_process):
    # The gateway runs as its own process; a pool of 4 makes the hung upstream exhaust its own pool.
    env = {**upstreams.environment(), "UPSTREAM_POOL_SIZE": "4"}
    async with run_gateway_process(env) as base, aiohttp.ClientSession() as http:

        async def hung_call(n: int) -> tuple[int, dict, float, str]:
            started = time.perf_counter()
            async with http.get(f"{base}/api/clusters", headers={**HUNG, "X-Request-ID": f"hung-{n}"}) as r:
                return r.status, await r.json(), time.perf_counter() - started, r.headers["X-Trace-Id"]

        hung = [asyncio.create_task(hung_call(n)) for n in range(8)]
        await upstreams.wait_hanging("cluster-monitor", 4)
        for _ in range(20):
            async with http.get(f"{base}/api/users/1") as r:
                assert r.status == 200
                assert (await r.json())["service"] == "user-service"
        assert upstreams.hanging["cluster-monitor"] == 4
        assert not all(task.done() for task in hung)

        results = await asyncio.gather(*hung)
        for n, (status, body, elapsed, trace_id) in enumerate(results):
            assert status == 504
            assert body == {
                "detail": "upstream cluster-monitor timed out",
                "request_id": f"hung-{n}",
                "trace_id": trace_id,
            }
            assert elapsed < TIMEOUT_UPPER_BOUND_S

        async with http.get(f"{base}/stats") as r:
            figures = (await r.json())["upstreams"]
        assert figures["cluster-monitor"]["timeouts"] == 8
        assert figures["cluster-monitor"]["errors"] == 8
        assert figures["cluster-monitor"]["in_flight"] == 0
        assert figures["user-service"]["requests"] == 20
        assert figures["user-service"]["errors"] == 0


async def test_stats_count_each_upstream(start_gateway):
    gateway = await start_gateway(edge_config_url=f"http://127.0.0.1:{free_port()}")
    async with aiohttp.ClientSession() as http:
        for _ in range(3):
            async with http.get(gateway.make_url("/api/posts")) as r:
                assert r.status == 200
        async with http.get(gateway.make_url("/api/posts"), headers={"X-Test-Status": "503"}) as r:
            assert r.status == 503
        async with http.get(gateway.make_url("/api/edge/devices")) as r:
            assert r.status == 502
        async with http.get(gateway.make_url("/stats")) as r:
            stats = await r.json()
    assert stats["service"] == "api-gateway"
    assert stats["service_status"] == "online"
    blog = stats["upstreams"]["blog-service"]
    assert (blog["requests"], blog["errors"], blog["timeouts"], blog["unavailable"]) == (4, 1, 0, 0)
    assert set(blog["latency_ms"]) == {"p50", "p95", "p99"}
    assert blog["latency_ms"]["p99"] >= blog["latency_ms"]["p50"] > 0
    edge = stats["upstreams"]["edge-config"]
    assert (edge["requests"], edge["errors"], edge["unavailable"]) == (1, 1, 1)
    assert stats["upstreams"]["auth-service"]["requests"] == 0
    assert stats["requests"]["total"] == 5


async def test_a_route_with_its_own_budget_waits_longer_than_the_rest(start_gateway):
    gateway = await start_gateway(
        upstream_response_timeout_s=0.3, route_response_timeouts="/api/auth/login=3,/api/login=3"
    )
    slow = {"X-Test-Delay": "0.8"}
    async with aiohttp.ClientSession() as http:
        async with http.post(gateway.make_url("/api/auth/login"), headers=slow) as r:
            assert r.status == 200
            assert (await r.json())["service"] == "auth-service"
        async with http.get(gateway.make_url("/api/auth/verify"), headers=slow) as r:
            assert r.status == 504
            assert "auth-service" in (await r.json())["detail"]


@pytest.mark.parametrize("bad", ["/api/login", "api/login=3", "/api/login=soon", "/api/login=0"])
def test_route_budgets_must_be_prefix_equals_seconds(bad):
    with pytest.raises(ValueError, match="ROUTE_RESPONSE_TIMEOUTS"):
        GatewaySettings(env="test", route_response_timeouts=bad)


async def test_requests_the_parser_refuses_get_json_errors_and_one_warning_line_each(upstreams):
    async with ServiceProcess("api_gateway", upstreams.environment()) as gateway:
        for probe in MALFORMED_REQUESTS:
            check_json_refusal(await raw_exchange(gateway.port, probe.wire), probe)
        output = await eventually(
            lambda: (text := gateway.output()).count("refused a request") == len(MALFORMED_REQUESTS) and text
        )
    assert "Traceback" not in output and "ERROR" not in output, output
