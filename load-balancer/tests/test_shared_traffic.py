"""Several balancer replicas tell one story: real processes sharing a real Redis (the machine's, under a key
prefix of the test's own, or a private redis-server that the test stops and starts again)."""

import asyncio
import time

import aiohttp
import pytest

from load_balancer.settings import LoadBalancerSettings
from tests.support.polling import eventually

WINDOW_S = 4  # a short traffic window keeps the test short; the 10 s default behaves the same
HEARTBEAT_S = 1.0


def replica_env(gateway_url: str, redis_url: str, prefix: str, name: str) -> dict[str, str]:
    return {
        "GATEWAY_URLS": gateway_url,
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": prefix,
        "REPLICA_NAME": name,
        "TRAFFIC_WINDOW_S": str(WINDOW_S),
        "WS_HEARTBEAT_S": str(HEARTBEAT_S),
        "HEALTH_CHECK_INTERVAL_S": "0.5",
    }


async def own_stats(http: aiohttp.ClientSession, lb) -> dict:
    async with http.get(f"{lb.url}/stats") as answer:
        assert answer.status == 200
        return (await answer.json())["load-balancer"]


async def wait_for(http, lb, condition, timeout_s: float) -> dict:
    """The replica's own /stats once `condition` holds for them."""
    return await eventually(lambda: own_stats(http, lb), timeout_s, 0.1, until=condition, what=f"{lb.url}'s /stats")


async def test_requests_through_one_replica_show_on_the_other_and_a_heartbeat_keeps_both_active(
    servers, backend_app, lb_process, redis_target
):
    gateway = await servers(backend_app("gw"))
    a = await lb_process(replica_env(gateway.url, redis_target.url, redis_target.prefix, "lb-a"))
    b = await lb_process(replica_env(gateway.url, redis_target.url, redis_target.prefix, "lb-b"))
    async with aiohttp.ClientSession() as http:
        assert (await own_stats(http, b))["state"] == "IDLE"

        async def one(i: int) -> int:
            async with http.get(f"{a.url}/api/users/{i}") as answer:
                await answer.read()
                return answer.status

        statuses = []
        for start in range(0, 200, 20):
            statuses += await asyncio.gather(*(one(i) for i in range(start, start + 20)))
        assert statuses == [200] * 200
        on_b = await wait_for(http, b, lambda s: s["real_requests"] >= 200, 3.0)
        on_a = await own_stats(http, a)
        for seen in (on_a, on_b):
            assert seen["scope"] == "suite"
            assert (seen["has_real_traffic"], seen["state"], seen["real_requests"]) == (True, "ACTIVE", 200)
            assert seen["success_rate"] == 100.0
            assert seen["avg_response_time_ms"] > 0
        # Both read the same buckets: equal unless a second boundary fell between the two reads.
        assert abs(on_a["requests_per_second"] - on_b["requests_per_second"]) <= 200 / WINDOW_S / WINDOW_S
        assert on_b["requests_per_second"] > 0
        assert on_b["replica"] == "lb-b"
        assert on_b["replicas"]["lb-a"]["real_requests"] == 200
        assert on_b["replicas"]["lb-b"]["real_requests"] == 0

        # Nothing more: IDLE on both once the window has passed.
        idle_b = await wait_for(http, b, lambda s: s["state"] == "IDLE", WINDOW_S + 3)
        assert (idle_b["has_real_traffic"], idle_b["requests_per_second"]) == (False, 0.0)
        assert (await own_stats(http, a))["state"] == "IDLE"

        # A heartbeat socket on A that only answers pings keeps B ACTIVE, sample after sample, for two windows.
        async with http.ws_connect(f"{a.url}/api/ws-heartbeat", autoping=True) as ws:
            reader = asyncio.create_task(ws.receive())
            seen_states = []
            await asyncio.sleep(0.5)
            deadline = time.monotonic() + 2 * WINDOW_S
            while time.monotonic() < deadline:
                stats = await own_stats(http, b)
                seen_states.append(stats["state"])
                assert stats["open_websockets"] == 1
                await asyncio.sleep(0.25)
            reader.cancel()
        assert set(seen_states) == {"ACTIVE"}, seen_states
        assert (await own_stats(http, b))["requests_per_second"] == 0.0


async def test_redis_stopped_mid_run_each_replica_reports_itself_and_shares_again_when_it_is_back(
    servers, backend_app, lb_process, private_redis
):
    gateway = await servers(backend_app("gw"))
    a = await lb_process(replica_env(gateway.url, private_redis.url, "lb:", "lb-a"))
    b = await lb_process(replica_env(gateway.url, private_redis.url, "lb:", "lb-b"))
    statuses: list[int] = []
    stop = asyncio.Event()
    async with aiohttp.ClientSession() as http:

        async def traffic() -> None:
            while not stop.is_set():
                async with http.get(f"{a.url}/api/x") as answer:
                    await answer.read()
                    statuses.append(answer.status)
                await asyncio.sleep(0.01)

        flowing = asyncio.create_task(traffic())
        try:
            shared = await wait_for(http, b, lambda s: s["real_requests"] > 0, 3.0)
            assert shared["scope"] == "suite"
            private_redis.stop()
            alone_a = await wait_for(http, a, lambda s: s["scope"] == "replica", 3.0)
            alone_b = await wait_for(http, b, lambda s: s["scope"] == "replica", 3.0)
            assert alone_a["scope"] == alone_b["scope"] == "replica"
            assert "Redis" in alone_a["shared_error"]
            # Each reports its own figures: A its traffic, B none.
            assert alone_a["has_real_traffic"] and alone_a["real_requests"] > 0
            assert alone_b["real_requests"] == 0
            before = len(statuses)
            await asyncio.sleep(1.0)
            assert len(statuses) > before  # requests kept flowing while Redis was away
            private_redis.start()
            back = await wait_for(http, b, lambda s: s["scope"] == "suite" and s["real_requests"] > 0, 5.0)
            assert back["scope"] == "suite"
            assert back["has_real_traffic"]
            assert back["replicas"]["lb-a"]["real_requests"] > 0
        finally:
            stop.set()
            await flowing
    assert statuses and set(statuses) == {200}


def test_a_heartbeat_slower_than_half_the_window_is_refused():
    with pytest.raises(ValueError, match="flicker to IDLE"):
        LoadBalancerSettings(env="test", ws_heartbeat_s=10.0, traffic_window_s=10.0)
    assert LoadBalancerSettings(env="test").ws_heartbeat_s <= LoadBalancerSettings(env="test").traffic_window_s / 2
