"""Two cluster-monitor processes on one Redis (a key prefix of the test's own): one collects, both serve the same
events and series; the collector killed with SIGKILL, the other takes over within the lease time, with no event
lost or raised twice and no gap in the series longer than the lease time."""

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx

from tests.support.servers import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
LEASE_TTL_S = 1.5
COLLECT_S = 0.3


class MonitorProcess:
    def __init__(self, name: str, redis_url: str, prefix: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = os.environ | {
            "PORT": str(self.port),
            "ENV": "test",
            "LOG_LEVEL": "WARNING",
            "CLUSTER_SOURCE": "simulated",
            "SIMULATION_SEED": "7",
            "COLLECT_INTERVAL_S": str(COLLECT_S),
            "REDIS_URL": redis_url,
            "REDIS_PREFIX": prefix,
            "LEASE_BACKEND": "redis",
            "LEASE_TTL_S": str(LEASE_TTL_S),
            "REPLICA_NAME": name,
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cluster_monitor"],
            env=env,
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def ready(self, http: httpx.AsyncClient) -> "MonitorProcess":
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None
            try:
                if (await http.get(f"{self.url}/ready")).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
        raise TimeoutError("cluster-monitor did not become ready")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def node_series(http: httpx.AsyncClient, replica: MonitorProcess, node: str) -> list[str]:
    answer = await http.get(f"{replica.url}/api/nodes/{node}/timeseries", params={"window": 3600, "points": 1000})
    assert answer.status_code == 200, answer.text
    return [point["timestamp"] for point in answer.json()["data"]]


async def events(http: httpx.AsyncClient, replica: MonitorProcess) -> list[dict]:
    return (await http.get(f"{replica.url}/api/events")).json()["events"]


async def same_on_both(read, a, b, timeout_s: float = 5.0):
    deadline = time.monotonic() + timeout_s
    while True:
        seen_a, seen_b = await read(a), await read(b)
        if seen_a == seen_b or time.monotonic() > deadline:
            return seen_a, seen_b
        await asyncio.sleep(0.05)


async def test_one_collector_many_readers_and_a_takeover_after_sigkill(redis_target):
    async with httpx.AsyncClient(timeout=10) as http:
        a = await MonitorProcess("monitor-a", redis_target.url, redis_target.prefix).ready(http)
        b = await MonitorProcess("monitor-b", redis_target.url, redis_target.prefix).ready(http)
        try:
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
            a.proc.wait()
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
        finally:
            a.stop()
            b.stop()
