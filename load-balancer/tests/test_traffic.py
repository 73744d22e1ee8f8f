"""Real-traffic accounting: the window's edges with an injected clock, and what counts through the
real balancer."""

import asyncio

import aiohttp
import pytest

from load_balancer.traffic import TrafficMeter, is_real_traffic


class Clock:
    def __init__(self, now: float = 5000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("method", "path", "heartbeat", "counted"),
    [
        ("GET", "/api/users", None, True),
        ("POST", "/api/posts", "false", True),
        ("HEAD", "/api/users", None, False),
        ("GET", "/api/users", "true", False),
        ("GET", "/api/users", "TRUE", False),
        ("GET", "/blog/", None, False),
        ("GET", "/", None, False),
        ("GET", "/apix", None, False),
        ("GET", "/ws/clusters", None, False),
    ],
)
def test_what_counts_as_real_traffic(method, path, heartbeat, counted):
    assert is_real_traffic(method, path, heartbeat) is counted


def test_a_request_at_t_is_in_the_window_until_t_plus_10s():
    clock = Clock()
    meter = TrafficMeter(window_s=10.0, clock=clock)
    assert meter.snapshot()["state"] == "IDLE"
    meter.record("GET", "/api/users", None, 200, 0.020)
    clock.now += 9.85
    seen = meter.snapshot()
    assert (seen["has_real_traffic"], seen["state"], seen["requests_per_second"]) == (True, "ACTIVE", 0.1)
    assert seen["avg_response_time_ms"] == 20.0
    clock.now += 0.15  # t + 10 s: gone
    gone = meter.snapshot()
    assert (gone["has_real_traffic"], gone["state"], gone["requests_per_second"]) == (False, "IDLE", 0.0)
    assert gone["avg_response_time_ms"] == 0.0
    assert gone["avg_response_time_ms_lifetime"] == 20.0
    assert gone["total_requests"] == 1


def test_the_window_slides_rather_than_resets():
    clock = Clock()
    meter = TrafficMeter(window_s=10.0, clock=clock)
    for _ in range(30):  # one request a second for 30 s
        meter.record("GET", "/api/x", None, 200, 0.001)
        clock.now += 1.0
    # Half-way between requests the last 10 s always hold 10 of them: a bucket reset every 10 s would show 0 to 10.
    clock.now -= 0.5
    for _ in range(10):
        assert meter.snapshot()["requests_per_second"] == 1.0
        clock.now += 0.5
        meter.record("GET", "/api/x", None, 200, 0.001)
        clock.now += 0.5


def test_success_rate_follows_the_window_and_falls_back_to_lifetime():
    clock = Clock()
    meter = TrafficMeter(window_s=10.0, clock=clock)
    assert meter.snapshot()["success_rate"] == 100.0
    for status in (200, 404, 502, 503):
        meter.record("GET", "/api/x", None, status, 0.001)
    assert meter.snapshot()["success_rate"] == 50.0
    clock.now += 11
    for _ in range(4):
        meter.record("GET", "/api/x", None, 200, 0.001)
    assert meter.snapshot()["success_rate"] == 100.0
    clock.now += 11
    assert meter.snapshot()["success_rate"] == 75.0  # lifetime: 6 of 8


def test_excluded_requests_are_proxied_but_not_real_traffic():
    clock = Clock()
    meter = TrafficMeter(clock=clock)
    meter.record("HEAD", "/api/x", None, 200, 0.001)
    meter.record("GET", "/api/x", "true", 200, 0.001)
    meter.record("GET", "/index.html", None, 200, 0.001)
    seen = meter.snapshot()
    assert seen["total_requests"] == 3
    assert (seen["real_requests"], seen["has_real_traffic"]) == (0, False)


def test_websocket_activity_keeps_it_active_for_the_window():
    clock = Clock()
    meter = TrafficMeter(clock=clock)
    meter.record_ws_activity()
    clock.now += 9.9
    assert meter.snapshot()["state"] == "ACTIVE"
    assert meter.snapshot()["requests_per_second"] == 0.0
    clock.now += 0.1
    assert meter.snapshot()["state"] == "IDLE"


async def lb_stats(http: aiohttp.ClientSession, lb) -> dict:
    async with http.get(f"{lb.url}/stats") as answer:
        assert answer.status == 200
        return (await answer.json())["load-balancer"]


async def test_only_real_api_traffic_counts_through_the_balancer(servers, start_lb, backend_app, lb_settings):
    gateway = await servers(backend_app("gw"))
    dashboard = await servers(backend_app("dash"))
    clock = Clock()
    meter = TrafficMeter(clock=clock)
    lb = await start_lb(lb_settings(gateway_urls=[gateway.url], dashboard_urls=[dashboard.url]), meter=meter)
    async with aiohttp.ClientSession() as http:
        async with http.head(f"{lb.url}/api/users") as r:
            assert r.status == 200
        async with http.get(f"{lb.url}/api/users", headers={"X-Heartbeat": "true"}) as r:
            assert (await r.json())["backend"] == "gw"
        async with http.get(f"{lb.url}/index.html") as r:
            assert (await r.json())["backend"] == "dash"
        async with http.get(f"{lb.url}/blog/") as r:
            assert (await r.json())["backend"] == "gw"
        async with http.get(f"{lb.url}/health") as r:
            assert (await r.json())["status"] == "ok"
        idle = await lb_stats(http, lb)
        assert (idle["has_real_traffic"], idle["state"], idle["total_requests"]) == (False, "IDLE", 4)
        for _ in range(5):
            async with http.get(f"{lb.url}/api/users/1") as r:
                assert r.status == 200
        busy = await lb_stats(http, lb)
        assert (busy["has_real_traffic"], busy["state"], busy["requests_per_second"]) == (True, "ACTIVE", 0.5)
        assert busy["success_rate"] == 100.0
        assert busy["latency_ms"]["p50"] > 0
        clock.now += 10.0
        assert (await lb_stats(http, lb))["state"] == "IDLE"


async def test_heartbeat_socket_answers_hb_and_counts_as_activity(start_lb, lb_settings):
    clock = Clock()
    meter = TrafficMeter(clock=clock)
    lb = await start_lb(lb_settings(), meter=meter)
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{lb.url}/api/ws-heartbeat") as ws:
            assert meter.ws_events == 1  # the open
            for _ in range(3):
                await ws.send_str("hb")
                assert (await ws.receive_json(timeout=5))["type"] == "hb"
            stats = await lb_stats(http, lb)
            assert (stats["state"], stats["open_websockets"]) == ("ACTIVE", 1)
            assert stats["websockets"]["activity_total"] == 4
            assert stats["requests_per_second"] == 0.0
            clock.now += 10.0
            assert (await lb_stats(http, lb))["state"] == "IDLE"
            await ws.send_str("hb")
            await ws.receive_json(timeout=5)
            assert (await lb_stats(http, lb))["state"] == "ACTIVE"
        for _ in range(100):
            if meter.heartbeat_sockets == 0:
                break
            await asyncio.sleep(0.02)
        assert (await lb_stats(http, lb))["open_websockets"] == 0


async def test_heartbeat_pings_idle_clients_counts_pongs_and_closes_dead_ones(start_lb, lb_settings):
    meter = TrafficMeter()
    lb = await start_lb(lb_settings(ws_heartbeat_s=0.4), meter=meter)
    async with aiohttp.ClientSession() as http:
        # A live client: it stays silent, gets pinged, answers; each pong counts.
        async with http.ws_connect(f"{lb.url}/api/ws-heartbeat", autoping=False) as ws:
            for _ in range(2):
                ping = await ws.receive(timeout=5)
                assert ping.type is aiohttp.WSMsgType.PING
                before = meter.ws_events
                await ws.pong(ping.data)
                for _ in range(100):
                    if meter.ws_events > before:
                        break
                    await asyncio.sleep(0.01)
                assert meter.ws_events == before + 1
        # A dead client: never answers the ping, so the balancer closes it.
        dead = await http.ws_connect(f"{lb.url}/api/ws-heartbeat", autoping=False)
        assert (await dead.receive(timeout=5)).type is aiohttp.WSMsgType.PING
        closed = await dead.receive(timeout=5)
        assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
        await dead.close()
        for _ in range(100):
            if meter.heartbeat_sockets == 0:
                break
            await asyncio.sleep(0.02)
        assert meter.heartbeat_sockets == 0
