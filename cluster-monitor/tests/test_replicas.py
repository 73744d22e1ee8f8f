"""Two cluster-monitor processes on one Redis (a key prefix of the test's own): one collects, both serve the same
events and series; the collector killed with SIGKILL, the other takes over within the lease time, with no event
lost or raised twice and no gap in the series longer than the lease time. Metric pushes acknowledged by either
replica show on both (and on a replica started later), survive the collector's death, are applied once, and are
refused with 503 while Redis is away."""

import asyncio
import itertools
import signal
import time
from datetime import datetime

import httpx
import pytest
import redis.asyncio as redis

from cluster_monitor.collector import Monitor
from cluster_monitor.resources import Node, Usage
from cluster_monitor.settings import ClusterMonitorSettings
from cluster_monitor.shared import Collection, Push, PushBatch, PushesRefused, SharedFeed
from cluster_monitor.sources.simulated import SimulatedSource
from tests.support.polling import eventually
from tests.support.servers import ServiceProcess
from titanium_common.lease import Lease
from titanium_common.loops import stop_tasks

LEASE_TTL_S = 1.5
COLLECT_S = 0.3
COLLECTOR = {"Authorization": "Bearer replica-test-collector"}
PUSHED_NODE = "edge-pusher"  # a node only pushes know: its series holds exactly the pushed samples


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
        "COLLECTOR_TOKENS": COLLECTOR["Authorization"].removeprefix("Bearer "),
    }
    return ServiceProcess("cluster_monitor", env, ready_path="/ready")


async def node_series(http: httpx.AsyncClient, replica: ServiceProcess, node: str) -> list[str]:
    answer = await http.get(f"{replica.url}/api/nodes/{node}/timeseries", params={"window": 3600, "points": 1000})
    assert answer.status_code == 200, answer.text
    return [point["timestamp"] for point in answer.json()["data"]]


async def events(http: httpx.AsyncClient, replica: ServiceProcess) -> list[dict]:
    return (await http.get(f"{replica.url}/api/events")).json()["events"]


async def same_on_both(read, a, b, what: str) -> tuple:
    async def both() -> tuple:
        return await read(a), await read(b)

    return await eventually(both, 5.0, until=lambda seen: seen[0] == seen[1], what=f"the same {what} on both")


async def test_one_collector_many_readers_and_a_takeover_after_sigkill(redis_target):
    async with httpx.AsyncClient(timeout=10) as http:
        a = await monitor_process("monitor-a", redis_target.url, redis_target.prefix).start()
        b = await monitor_process("monitor-b", redis_target.url, redis_target.prefix).start()
        try:
            stats_a = (await http.get(f"{a.url}/stats")).json()
            stats_b = (await http.get(f"{b.url}/stats")).json()
            assert stats_a["lease"]["mode"] == "holder" and stats_b["lease"]["mode"] == "follower"
            await asyncio.sleep(COLLECT_S * 6)
            node = (await http.get(f"{a.url}/api/nodes")).json()["nodes"][0]["name"]
            events_a, _ = await same_on_both(lambda r: events(http, r), a, b, "events")
            assert events_a
            series_a, _ = await same_on_both(lambda r: node_series(http, r, node), a, b, "series")
            assert len(series_a) >= 5
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
        finally:
            await a.stop()
            await b.stop()


def sample(cpu: float) -> dict:
    return {
        "cpu_millicores": cpu,
        "memory_bytes": 2**20,
        "disk_io": {"read_bytes": 1, "write_bytes": 2},
        "network_io": {"bytes_sent": 3, "bytes_recv": 4},
    }


async def push(http: httpx.AsyncClient, replica: ServiceProcess, cpu: float) -> tuple[str, float]:
    """One push of PUSHED_NODE's sample; the acknowledged (timestamp, cpu)."""
    answer = await http.post(f"{replica.url}/api/nodes/{PUSHED_NODE}/metrics", json=sample(cpu), headers=COLLECTOR)
    assert answer.status_code == 201, answer.text
    return answer.json()["timestamp"], cpu


async def pushed_points(http: httpx.AsyncClient, replica: ServiceProcess) -> list[tuple[str, float]]:
    answer = await http.get(f"{replica.url}/api/nodes/{PUSHED_NODE}/timeseries", params={"points": 1000})
    if answer.status_code == 404:  # no push applied yet
        return []
    assert answer.status_code == 200, answer.text
    return [(point["timestamp"], point["cpu_millicores"]) for point in answer.json()["data"]]


async def shows(http: httpx.AsyncClient, replica: ServiceProcess, expected: list, timeout_s: float = 10.0) -> None:
    """Wait until the replica's series of PUSHED_NODE is exactly `expected`."""
    await eventually(
        lambda: pushed_points(http, replica),
        timeout_s,
        until=lambda seen: seen == expected,
        what=f"the pushes {expected} on {replica.env['REPLICA_NAME']}",
    )


async def test_a_push_to_any_replica_shows_on_every_replica(redis_target):
    async with httpx.AsyncClient(timeout=10) as http:
        a = await monitor_process("monitor-a", redis_target.url, redis_target.prefix).start()
        b = await monitor_process("monitor-b", redis_target.url, redis_target.prefix).start()
        c = None
        try:
            assert (await http.get(f"{b.url}/stats")).json()["lease"]["mode"] == "follower"
            acknowledged = [await push(http, b if i % 2 == 0 else a, float(i + 1)) for i in range(6)]
            pod = {**sample(7.5), "node_name": PUSHED_NODE}
            answer = await http.post(f"{b.url}/api/namespaces/edge/pods/probe-1/metrics", json=pod, headers=COLLECTOR)
            assert answer.status_code == 201, answer.text
            for replica in (a, b):
                await shows(http, replica, acknowledged)
                # The pod's push came after the node's six, so a replica may show those a moment before it.
                pod_view = await eventually(
                    lambda replica=replica: http.get(f"{replica.url}/api/pods/probe-1", params={"namespace": "edge"}),
                    10.0,
                    until=lambda answer: answer.status_code == 200,
                    what=f"the pushed pod on {replica.env['REPLICA_NAME']}",
                )
                assert (pod_view.json()["cpu_millicores"], pod_view.json()["node"]) == (7.5, PUSHED_NODE)
                nodes = (await http.get(f"{replica.url}/api/nodes")).json()["nodes"]
                assert PUSHED_NODE in {n["name"] for n in nodes}
            # A replica started later replays them with the rest of the shared history.
            c = await monitor_process("monitor-c", redis_target.url, redis_target.prefix).start()
            assert await pushed_points(http, c) == acknowledged
            stats = [(await http.get(f"{r.url}/stats")).json() for r in (a, b, c)]
            assert [s["pushes_applied"] for s in stats] == [7, 7, 7]
        finally:
            for replica in (a, b, c):
                if replica is not None:
                    await replica.stop()


async def test_pushes_taken_while_the_collector_is_dead_are_applied_once_after_the_takeover(redis_target):
    async with httpx.AsyncClient(timeout=10) as http:
        a = await monitor_process("monitor-a", redis_target.url, redis_target.prefix).start()
        b = await monitor_process("monitor-b", redis_target.url, redis_target.prefix).start()
        try:
            before = [await push(http, b, 1.0)]
            await shows(http, b, before)
            a.proc.send_signal(signal.SIGKILL)
            await a.proc.wait()
            # B is still a follower for about the lease time: it acknowledges, nobody applies yet.
            during = [await push(http, b, float(i)) for i in range(2, 8)]
            assert (await http.get(f"{b.url}/stats")).json()["lease"]["mode"] == "follower"
            expected = before + during
            await shows(http, b, expected, LEASE_TTL_S * 4)
            await asyncio.sleep(COLLECT_S * 4)  # a double apply would show up by now
            assert await pushed_points(http, b) == expected
            assert (await http.get(f"{b.url}/stats")).json()["lease"]["mode"] == "holder"
        finally:
            await a.stop()
            await b.stop()


async def test_with_redis_away_a_push_is_refused_not_kept_by_one_replica(private_redis):
    async with httpx.AsyncClient(timeout=10) as http:
        a = await monitor_process("monitor-a", private_redis.url, "cm:").start()
        b = await monitor_process("monitor-b", private_redis.url, "cm:").start()
        try:
            private_redis.stop()
            for replica in (b, a):  # the follower, and the collector (which soon works alone)
                answer = await http.post(
                    f"{replica.url}/api/nodes/{PUSHED_NODE}/metrics", json=sample(1), headers=COLLECTOR, timeout=5
                )
                assert answer.status_code == 503, answer.text
                assert "Redis" in answer.json()["detail"]
            assert await pushed_points(http, a) == [] and await pushed_points(http, b) == []
            private_redis.start()
            acknowledged = [await eventually_accepted(http, b)]
            for replica in (a, b):
                await shows(http, replica, acknowledged)
        finally:
            await a.stop()
            await b.stop()


async def eventually_accepted(http: httpx.AsyncClient, replica: ServiceProcess) -> tuple[str, float]:
    """The first push Redis takes again (the replica reconnects on its own)."""

    async def attempt() -> httpx.Response:
        return await http.post(f"{replica.url}/api/nodes/{PUSHED_NODE}/metrics", json=sample(2), headers=COLLECTOR)

    answer = await eventually(attempt, every_s=0.2, until=lambda a: a.status_code == 201, what="a push taken again")
    return answer.json()["timestamp"], 2.0


def node_push(cpu: float) -> Push:
    return Push(("node", "local", PUSHED_NODE), time.time(), Usage(cpu, 0), Node("local", PUSHED_NODE, True), True)


async def test_a_batch_is_applied_by_one_drainer_only_and_the_queue_is_bounded(redis_target):
    feeds = [SharedFeed(redis_target.url, redis_target.prefix, 10, 10, max_pending=3) for _ in range(2)]
    first, second = feeds
    try:
        for cpu in (1, 2, 3):
            await first.enqueue(node_push(cpu))
        with pytest.raises(PushesRefused, match="3 metric pushes are waiting"):
            await second.enqueue(node_push(4))
        # Two holders at once (one about to lose its lease) both read the queue; one writes, the other nothing.
        seen_first, seen_second = await first.pending_pushes(), await second.pending_pushes()
        assert [p.usage.cpu_millicores for _, p in seen_first] == [1, 2, 3]
        assert await second.apply_pushes([i for i, _ in seen_second], PushBatch([p for _, p in seen_second], "b"))
        assert not await first.apply_pushes([i for i, _ in seen_first], PushBatch([p for _, p in seen_first], "a"))
        entries, _ = await first.replay()
        assert [(e.origin, [p.usage.cpu_millicores for p in e.pushes]) for e in entries] == [("b", [1, 2, 3])]
        await first.enqueue(node_push(5))  # room again
        # A drainer that read and died before writing leaves the pushes for the next one.
        await first.pending_pushes()
        assert [p.usage.cpu_millicores for _, p in await second.pending_pushes()] == [5]
    finally:
        for feed in feeds:
            await feed.close()


async def test_a_batch_written_on_an_emptied_redis_reaches_a_follower_that_reads_late(redis_target):
    """Redis restarted empty: the holder's first writes are a push batch, then a collection. A follower still in
    its retry pause reads both afterwards; the stream is trimmed only once it holds a full history of collections."""
    keep = 3
    holder, follower = (SharedFeed(redis_target.url, redis_target.prefix, keep, 10, max_pending=10) for _ in range(2))
    try:
        await holder.enqueue(node_push(1))
        pending = await holder.pending_pushes()
        assert await holder.apply_pushes([i for i, _ in pending], PushBatch([p for _, p in pending], "holder"))
        await holder.write(Collection(time.time(), [], [], [], [], "holder"))
        assert [type(entry) for entry in await follower.follow()] == [PushBatch, Collection]
        for _ in range(keep):
            await holder.write(Collection(time.time(), [], [], [], [], "holder"))
        entries, _ = await follower.replay()
        assert [type(entry) for entry in entries] == [Collection] * keep
    finally:
        await holder.close()
        await follower.close()


class AnswerLost(SharedFeed):
    """Redis writes the batch, but its answer is read too late: a process not scheduled for longer than the socket
    timeout (a loaded machine) sees a TimeoutError for a write that worked."""

    async def apply_pushes(self, ids: list[bytes], batch: PushBatch) -> bool:
        await super().apply_pushes(ids, batch)
        raise redis.TimeoutError("Timeout reading from Redis")


async def test_a_push_batch_whose_answer_was_lost_still_reaches_the_replica_that_wrote_it(redis_target):
    shared = AnswerLost(redis_target.url, redis_target.prefix, 10, 10, max_pending=10)
    lease = Lease(None, "cluster-monitor", "monitor-a")  # no lease store: this replica drains the queue
    monitor = Monitor(ClusterMonitorSettings(env="test"), SimulatedSource(7), lease=lease, shared=shared)
    tasks = [asyncio.create_task(monitor.follow()), asyncio.create_task(monitor.drain_pushes())]
    try:
        push = monitor.push_node(PUSHED_NODE, Usage(5, 0))
        await monitor.accept(push)
        await eventually(lambda: monitor.series.latest(push.key), what="the push on the replica that wrote it")
        assert (monitor.pushes_applied, len(await shared.client.xrange(shared.feed))) == (1, 1)
    finally:
        await stop_tasks(tasks)
        await shared.close()
