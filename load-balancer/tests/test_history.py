"""The balancer's hour of history: slots from the meter (in memory, bounded), the figures of a slot, the endpoint's
bounds, and, with real processes sharing a real Redis, one history that two replicas serve alike and that outlives
a replica's restart."""

import aiohttp
import pytest

from load_balancer.history import BOUNDS_MS, History, Slot, percentile, point
from load_balancer.traffic import TrafficMeter
from tests.support.polling import eventually

from .test_shared_traffic import replica_env

RESOLUTION_S = 1.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_slot_is_what_changed_in_the_meter_since_the_last():
    clock = Clock(1000.0)
    meter = TrafficMeter(wall_clock=clock)
    meter.record("GET", "/api/posts", None, 200, 0.004)  # before the history starts: not in its first slot
    history = History(meter, "lb-a", clock=clock)
    for ms, status in ((4, 200), (40, 200), (400, 503)):
        meter.record("GET", "/api/posts", None, status, ms / 1000)
    meter.record("GET", "/stats", None, 200, 0.001)  # not real traffic
    meter.heartbeat_sockets = 2
    slot = history.take(99)
    assert (slot.real, slot.failed, slot.sockets) == (3, 1, {"lb-a": 2})
    assert sum(slot.buckets) == 3
    assert history.take(100).real == 0
    figures = point(99, slot, 10.0)
    assert figures["requests_per_second"] == 0.3
    assert figures["success_rate"] == 66.67
    assert figures["open_sockets"] == 2
    assert 3 <= figures["latency_ms"]["p50"] <= 50
    assert figures["latency_ms"]["p95"] > 300
    assert point(100, Slot(), 10.0)["success_rate"] is None


def test_percentiles_interpolate_inside_a_bucket():
    buckets = [0] * (len(BOUNDS_MS) + 1)
    buckets[BOUNDS_MS.index(10)] = 100  # every request between 7.5 and 10 ms
    assert percentile(buckets, 0.5) == 8.75
    assert percentile(buckets, 0.95) == pytest.approx(9.88, abs=0.01)
    assert percentile([0] * len(buckets), 0.5) is None


async def test_memory_holds_one_hour_of_slots():
    clock = Clock(0.0)
    history = History(TrafficMeter(wall_clock=clock), "lb-a", resolution_s=10.0, clock=clock)
    for slot_id in range(500):
        clock.now = (slot_id + 1) * 10.0
        await history.step(slot_id)
    assert len(history.local) == 360
    body = await history.read(3600)
    assert (body["scope"], len(body["points"])) == ("replica", 360)
    assert len((await history.read(60))["points"]) == 6


async def test_window_outside_ten_seconds_to_an_hour_is_refused(start_lb, lb_settings):
    lb = await start_lb(lb_settings())
    async with aiohttp.ClientSession() as http:
        for window in ("9", "3601", "-5", "ten", "1.5"):
            async with http.get(f"{lb.url}/stats/history", params={"window": window}) as answer:
                assert answer.status == 422, window
                assert "window" in (await answer.json())["detail"]
        async with http.get(f"{lb.url}/stats/history", params={"window": "300"}) as answer:
            assert answer.status == 200
            body = await answer.json()
            assert (body["window_s"], body["resolution_s"], body["scope"]) == (300, 10.0, "replica")
        # Asking for the history is not traffic.
        async with http.get(f"{lb.url}/stats") as answer:
            assert (await answer.json())["load-balancer"]["real_requests"] == 0


async def history_of(http: aiohttp.ClientSession, lb, window: int = 60) -> dict:
    async with http.get(f"{lb.url}/stats/history", params={"window": str(window)}) as answer:
        assert answer.status == 200
        return await answer.json()


def requests_in(body: dict) -> float:
    return sum(p["requests_per_second"] for p in body["points"]) * body["resolution_s"]


async def test_two_replicas_serve_one_history_that_outlives_a_restart(servers, backend_app, lb_process, redis_target):
    gateway = await servers(backend_app("gw"))
    env = {"HISTORY_RESOLUTION_S": str(RESOLUTION_S)}
    a = await lb_process(replica_env(gateway.url, redis_target.url, redis_target.prefix, "lb-a") | env)
    b_env = replica_env(gateway.url, redis_target.url, redis_target.prefix, "lb-b") | env
    b = await lb_process(b_env)
    async with aiohttp.ClientSession() as http:
        for i in range(30):
            async with http.get(f"{a.url}/api/posts/{i}") as answer:
                assert answer.status == 200
        for i in range(20):
            async with http.get(f"{b.url}/api/posts/{i}") as answer:
                assert answer.status == 200

        async def both_have_all() -> dict | None:
            first, second = await history_of(http, a), await history_of(http, b)
            return first if requests_in(first) == requests_in(second) == 50 else None

        shared = await eventually(both_have_all, timeout_s=20, every_s=0.2)
        assert shared["scope"] == "suite"
        assert all(p["success_rate"] in (None, 100.0) for p in shared["points"])
        assert any(p["latency_ms"]["p95"] is not None for p in shared["points"])

        # b restarts (a new process, same replica name): the history is still there, on both.
        await b.stop()
        b = await lb_process(b_env)
        after = await history_of(http, b)
        assert after["scope"] == "suite"
        assert requests_in(after) == 50

        async def alike() -> bool:
            # Read together; a slot that closes between the two reads makes them differ once, not twice.
            first, second = await history_of(http, a), await history_of(http, b)
            return first["points"] == second["points"]

        assert await eventually(alike, timeout_s=10, every_s=0.2)
