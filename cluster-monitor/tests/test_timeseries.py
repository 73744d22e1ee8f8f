"""Ring buffers stay bounded: thousands of samples per object and thousands of churned pods."""

import pytest

from cluster_monitor.collector import Monitor
from cluster_monitor.queries import Ambiguous, Catalog, NotFound
from cluster_monitor.resources import Cluster, Deployment, Namespace, Node, Pod, Usage
from cluster_monitor.settings import ClusterMonitorSettings
from cluster_monitor.timeseries import Point, SeriesStore, downsample, sum_by_time


def test_a_series_keeps_only_the_last_max_points_samples():
    store = SeriesStore(max_points=1000)
    for second in range(5000):
        store.record("k", float(second), Usage(second, second))
    assert store.total_points == 1000
    assert store.latest("k").ts == 4999
    assert [p.ts for p in store.window("k", 10, now=4999)] == [float(s) for s in range(4989, 5000)]


def test_a_late_sample_is_filed_at_its_time_and_the_buffer_stays_bounded():
    store = SeriesStore(max_points=3)
    for ts in (10.0, 20.0, 30.0):
        store.record("k", ts, Usage(ts, 0))
    store.record("k", 25.0, Usage(25, 0))  # a push acknowledged before the collection at 30 s, applied after it
    assert [p.ts for p in store.window("k", 100, now=30)] == [20.0, 25.0, 30.0]
    assert store.latest("k").ts == 30.0
    store.record("k", 5.0, Usage(5, 0))  # older than all three kept: nothing to keep it for
    assert [p.ts for p in store.window("k", 100, now=30)] == [20.0, 25.0, 30.0]


def test_downsampling_averages_buckets_and_keeps_short_series_whole():
    points = [Point(float(i), Usage(i * 10, i)) for i in range(1000)]
    reduced = downsample(points, 100)
    assert len(reduced) == 100
    assert reduced[0] == Point(9.0, Usage(45, 4))  # mean of 0..9 (memory rounded), stamped with the bucket's last
    assert reduced[-1].ts == 999.0
    assert downsample(points[:50], 100) == points[:50]


def test_series_sampled_at_the_same_instants_add_up():
    a = [Point(1.0, Usage(100, 10, 1)), Point(2.0, Usage(200, 20, 2))]
    b = [Point(2.0, Usage(5, 5, 5))]
    assert sum_by_time([a, b]) == [Point(1.0, Usage(100, 10, 1)), Point(2.0, Usage(205, 25, 7))]


class ChurningSource:
    """Every snapshot has the same node and a brand-new pod (a crash-looping Job, say)."""

    name = "scripted"

    def __init__(self) -> None:
        self.tick = 0

    async def snapshot(self) -> list[Cluster]:
        self.tick += 1
        node = Node("c1", "n1", True, cpu_allocatable_m=2000, memory_allocatable_bytes=2**30, usage=Usage(500, 2**28))
        pods = [
            Pod("c1", "jobs", f"job-{self.tick}", "n1", "Running", 1, 1, labels={"app": "job"}, usage=Usage(10, 100)),
            Pod("c1", "jobs", "steady", "n1", "Running", 1, 1, labels={"app": "job"}, usage=Usage(20, 200)),
        ]
        deployment = Deployment("c1", "jobs", "job", 2, 2, 2, {"app": "job"})
        return [
            Cluster("c1", "C1", nodes=[node], pods=pods, deployments=[deployment], namespaces=[Namespace("c1", "jobs")])
        ]

    async def close(self) -> None:
        return None


async def test_vanished_pods_are_dropped_so_memory_stays_bounded():
    clock = iter(range(10**6))
    monitor = Monitor(ClusterMonitorSettings(env="test", max_data_points=1000), ChurningSource(), lambda: next(clock))
    for _ in range(3000):
        await monitor.collect_once()
    # node, the steady pod, the current job pod, the namespace and the deployment aggregates: nothing else.
    assert len(monitor.series) == 5
    assert monitor.series.total_points <= 4 * 1000 + 1
    assert len(monitor.events) == 100  # "pod started" every collection, only the last 100 kept
    steady = monitor.series.latest(("pod", "c1", "jobs", "steady"))
    assert steady.usage == Usage(20, 200)
    # Aggregates are the sums of the pods' usage at each collection.
    assert monitor.series.latest(("namespace", "c1", "jobs")).usage == Usage(30, 300)
    assert monitor.series.latest(("deployment", "c1", "jobs", "job")).usage == Usage(30, 300)


class TwinSource:
    """Two clusters that both have a node called "worker" (names are only unique within a cluster)."""

    name = "scripted"

    async def snapshot(self) -> list[Cluster]:
        return [Cluster(cid, cid, nodes=[Node(cid, "worker", True, usage=Usage(1, 1))]) for cid in ("east", "west")]

    async def close(self) -> None:
        return None


async def test_a_name_in_two_clusters_needs_the_cluster_said():
    monitor = Monitor(ClusterMonitorSettings(env="test"), TwinSource())
    await monitor.collect_once()
    catalog = Catalog(monitor)
    with pytest.raises(Ambiguous, match="node 'worker' exists in east, west"):
        catalog.node("worker")
    assert catalog.node("worker", cluster="west").cluster == "west"
    with pytest.raises(NotFound, match="cluster 'north' not found"):
        catalog.node("worker", cluster="north")
