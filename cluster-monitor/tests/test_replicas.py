"""Two cluster-monitor processes on one Redis (a key prefix of the test's own): one collects, both serve the same
events and series; the collector killed with SIGKILL, the other takes over within the lease time, with no event
lost or raised twice and no gap in the series longer than the lease time."""

import asyncio
import itertools
import signal
import time
from datetime import datetime

import httpx

from tests.support.servers import ServiceProcess

LEASE_TTL_S = 1.5
COLLECT_S = 0.3


def monitor_process(name: str, redis_url: str, prefix: str) -> ServiceProcess:
    """One cluster-monitor replica as its own process, ready once /ready answers (its lease role is settled)."""
    env = {
        "CLUSTER_SOURCE": "simulated",
        "SIMULATION_SEED": "7",
        "COLLECT_INTERVAL_S": str(COLLECT_S),
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": prefix,
        "LEASE_BACKEND": "redis",
        "LEASE_TTL_S": str(LEASE_TTL_S),
        "REPLICA_NAME": name,
    }
    return ServiceProcess("cluster_monitor", env, ready_path="/ready")


async def node_series(http: httpx.AsyncClient, replica: ServiceProcess, node: str) -> list[str]:
    answer = await http.get(f"{replica.url}/api/nodes/{node}/timeseries", params={"window": 3600, "points": 1000})
    assert answer.status_code == 200, answer.text
    return [point["timestamp"] for point in answer.json()["data"]]


async def events(http: httpx.AsyncClient, replica: ServiceProcess) -> list[dict]:
    return (await http.get(f"{replica.url}/api/events")).json()["events"]


async def same_on_both(read, a, b, timeout_s: float = 5.0):
    deadline = time.monotonic() + timeout_s
    while True:
        seen_a, seen_b = await read(a), await read(b)
        if seen_a == seen_b or time.monotonic() > deadline:
            return seen_a, seen_b
        await asyncio.sleep(0.05)


async def test_one_collector_many_readers_and_a_takeover_after_sigkill(redis_target):
    async with (
        httpx.AsyncClient(timeout=10) as http,
        monitor_process("monitor-a", redis_target.url, redis_target.prefix) as a,
        monitor_process("monitor-b", redis_target.url, redis_target.prefix) as b,
    ):
        stats_a = (await http.get(f"{a.url}/stats")).json()
        stats_b = (await http.get(f"{b.url}/stats")).json()
        assert stats_a["lease"]["mode"] == "holder" and stats_b["lease"]["mode"] == "follower"
        await asyncio.sleep(COLLECT_S * 6)
        node = (await http.get(f"{a.url}/api/nodes")).json()["nodes"][0]["name"]
        events_a, events_b = await same_on_both(lambda r: events(http, r), a, b)
        assert events_a == events_b and events_a
        series_a, series_b = await same_on_both(lambda r: node_series(http, r, node), a, b)
        assert series_a == series_b and len(series_a) >= 5
        # The follower collected nothing itself: everything it serves came from the collector.
        stats_b = (await http.get(f"{b.url}/stats")).json()
        assert stats_b["collections"] == 0 and stats_b["collections_applied"] >= 5
        before_events = events_a

        a.proc.send_signal(signal.SIGKILL)
        await a.proc.wait()
        killed_at = time.monotonic()
        deadline = killed_at + LEASE_TTL_S * 3
        while time.monotonic() < deadline:
            if (await http.get(f"{b.url}/stats")).json()["lease"]["mode"] == "holder":
                break
            await asyncio.sleep(0.05)
        took_over_s = time.monotonic() - killed_at
        assert took_over_s <= LEASE_TTL_S + LEASE_TTL_S / 3 + 1.0
        await asyncio.sleep(COLLECT_S * 5)
        after = await events(http, b)
        assert after[: len(before_events)] == before_events  # nothing lost
        keys = [(e["timestamp"], e["message"]) for e in after]
        assert len(keys) == len(set(keys))  # nothing raised twice
        assert not any(e["message"].startswith("monitoring ") for e in after[len(before_events) :])
        series = await node_series(http, b, node)
        assert series[: len(series_a)] == series_a
        stamps = [datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() for s in series]
        gaps = [later - earlier for earlier, later in itertools.pairwise(stamps)]
        assert max(gaps) <= LEASE_TTL_S + LEASE_TTL_S / 3 + COLLECT_S + 0.5, gaps
        assert stamps[-1] > stamps[len(series_a) - 1]  # B collects now
