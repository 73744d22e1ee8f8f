"""The collector: samples the source into the ring buffers, derives events, feeds /ws/clusters, takes pushes."""

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from titanium_common.clock import utc_iso
from titanium_common.lease import Lease
from titanium_common.loops import raise_if_cancelling

from .events import EventLog, changes
from .feed import FeedHub, message
from .resources import Cluster, Namespace, Node, Pod, Usage, display_name
from .settings import ClusterMonitorSettings
from .shared import Collection, Entry, Push, PushBatch, SharedFeed
from .sources import Source
from .timeseries import SeriesStore
from .views import cluster_view

log = logging.getLogger("cluster_monitor.collector")


@dataclass
class _Pushed:
    """An object only a push told us about; it lives until `pushed_ttl_s` after its last push."""

    obj: Node | Pod
    last_push: float


class Monitor:
    def __init__(
        self,
        settings: ClusterMonitorSettings,
        source: Source,
        clock=time.time,
        lease: Lease | None = None,
        shared: SharedFeed | None = None,
    ) -> None:
        self.settings = settings
        self.source = source
        self.clock = clock
        # With replicas: only the lease holder collects; everyone applies what it writes to `shared`.
        self.lease = lease
        self.shared = shared
        self.applied = 0
        self.pushes_applied = 0
        self.shared_error: str | None = None
        self.series = SeriesStore(settings.max_data_points)
        self.events = EventLog(settings.event_log_size)
        self.hub = FeedHub(settings.ws_queue_size, settings.ws_send_timeout_s)
        self.events.listeners.append(lambda event: self.hub.publish("event", event))
        self.clusters: list[Cluster] = []
        self.pushed: dict[tuple, _Pushed] = {}
        self.collections = 0
        self.failed_collections = 0
        self.last_collection: float | None = None
        self.last_duration_s: float | None = None
        self.last_error: str | None = None
        self._published: list | None = None

    # ---- freshness ---------------------------------------------------------------------------------------------
    @property
    def fresh_for_s(self) -> float:
        """A sample older than this is not "current" usage (metrics-server gone, pushes stopped)."""
        return max(3 * self.settings.collect_interval_s, 60.0)

    def current(self, key: tuple) -> Usage | None:
        point = self.series.latest(key)
        return point.usage if point is not None and point.ts >= self.clock() - self.fresh_for_s else None

    # ---- collection --------------------------------------------------------------------------------------------
    async def collect_once(self) -> None:
        if self.lease is not None and not self.lease.is_holder:
            return  # another replica collects; its collections arrive through follow()
        started = time.perf_counter()
        try:
            clusters = await self.source.snapshot()
        except Exception as exc:  # a broken source is reported and retried next interval, never fatal
            self.failed_collections += 1
            self.last_error = f"{exc.__class__.__name__}: {exc}"
            log.warning("collection failed: %s", self.last_error)
            return
        now = self.clock()
        self._merge_pushed(clusters, now)
        found = changes(self.clusters, clusters) if self.clusters else []
        first = not self.clusters and self.collections == 0
        self.clusters = clusters
        points = self._record(clusters, now)
        self.collections += 1
        self.last_collection = now
        self.last_duration_s = time.perf_counter() - started
        self.last_error = None
        raised = []
        if first:
            names = ", ".join(c.name for c in clusters) or "no cluster"
            raised.append(self.events.add("info", f"monitoring {names} ({self.source.name} source)"))
        for kind, text, cluster in found:
            raised.append(self.events.add(kind, text, cluster))
        self.publish_clusters(only_if_changed=True)
        if self.shared is not None:
            await self._share(Collection(now, self.clusters, points, self.series.keys(), raised, self._origin))

    @property
    def _origin(self) -> str:
        return self.lease.holder if self.lease is not None else ""

    async def _share(self, collection: Collection) -> None:
        try:
            await self.shared.write(collection)
            self.shared_error = None
        except Exception as exc:  # Redis down: this replica keeps its own history (the lease makes it work alone)
            raise_if_cancelling()
            self.shared_error = f"writing the collection to Redis failed: {exc}"
            log.warning("%s", self.shared_error)

    # ---- following the collector ---------------------------------------------------------------------------------
    def _take(self, entry: Entry) -> None:
        """What the holder wrote, applied exactly as it applied it: a collection's points, series kept and clusters,
        or a batch of pushes."""
        if isinstance(entry, PushBatch):
            for push in entry.pushes:
                self.take_push(push)
            self.pushes_applied += len(entry.pushes)
            return
        for key, usage in entry.points:
            self.series.record(key, entry.ts, usage)
        self.clusters = entry.clusters
        self._merge_pushed(self.clusters, entry.ts)  # expires what the holder expired; its clusters have the rest
        # Pushed objects keep their series even when the collection did not know them yet (while the lease store
        # is away, two replicas work alone and write at once; one's collection may predate the other's pushes).
        self.series.retain([*entry.keep, *self.pushed])
        self.last_collection = entry.ts
        self.applied += 1

    def apply(self, entry: Entry) -> None:
        """An entry another replica wrote, with the events it raised."""
        self._take(entry)
        if isinstance(entry, Collection):
            for event in entry.events:
                self.events.take(event)
        self.publish_clusters(only_if_changed=True)

    async def replay(self) -> None:
        """The shared history so far (at start-up): series, the latest clusters, pushed objects and the event log."""
        entries, events = await self.shared.replay()
        for entry in entries:
            self._take(entry)
        self.events.replace(events)

    async def follow(self) -> None:
        """Apply every entry the holder writes. Our own collections are skipped (applied when collected); push
        batches are applied from here by every replica, the one that wrote them included: a write whose answer was
        lost (a timeout on a loaded machine) may have worked, and only the feed knows."""
        while True:
            try:
                for entry in await self.shared.follow():
                    if isinstance(entry, PushBatch) or entry.origin != self._origin:
                        self.apply(entry)
                self.shared_error = None
            except Exception as exc:  # Redis gone: retried; meanwhile the lease has this replica work alone
                raise_if_cancelling()
                self.shared_error = f"following the collector failed: {exc}"
                log.warning("%s", self.shared_error)
                await asyncio.sleep(1.0)

    def _record(self, clusters: list[Cluster], now: float) -> list[tuple[tuple, Usage]]:
        """Record the collection's samples; returns them (the points a follower records)."""
        keep: set[tuple] = set()
        points: list[tuple[tuple, Usage]] = []
        for cluster in clusters:
            for node in cluster.nodes:
                key = ("node", cluster.id, node.name)
                keep.add(key)
                if node.usage is not None:
                    points.append((key, node.usage))
                    self.series.record(key, now, node.usage)
            groups: dict[tuple, list[Usage]] = {}
            for pod in cluster.pods:
                key = ("pod", *pod.key)
                keep.add(key)
                if pod.usage is not None:
                    points.append((key, pod.usage))
                    self.series.record(key, now, pod.usage)
                usage = self.current(key)
                if usage is None:
                    continue
                groups.setdefault(("namespace", cluster.id, pod.namespace), []).append(usage)
                for deployment in cluster.deployments:
                    if deployment.selects(pod):
                        groups.setdefault(("deployment", cluster.id, pod.namespace, deployment.name), []).append(usage)
            # Namespace and deployment series are the sums of their pods' current usage.
            for key, usages in groups.items():
                keep.add(key)
                points.append((key, Usage.total(usages)))
                self.series.record(key, now, points[-1][1])
            keep.update(("namespace", cluster.id, ns.name) for ns in cluster.namespaces)
            keep.update(("deployment", cluster.id, d.namespace, d.name) for d in cluster.deployments)
        self.series.retain(keep)
        return points

    async def run(self) -> None:
        """Collect every interval (the app's start-up did the first collection)."""
        while True:
            await asyncio.sleep(self.settings.collect_interval_s)
            await self.collect_once()

    async def heartbeat(self) -> None:
        """`clusters` every 5 s even without a change, so a client that missed one catches up."""
        while True:
            await asyncio.sleep(self.settings.ws_push_interval_s)
            if self.hub.clients:
                self.publish_clusters(only_if_changed=False)

    # ---- the live feed -----------------------------------------------------------------------------------------
    def clusters_data(self) -> list[dict]:
        now = self.clock()
        return [cluster_view(cluster, now).model_dump(mode="json") for cluster in self.clusters]

    def publish_clusters(self, only_if_changed: bool) -> None:
        data = self.clusters_data()
        comparable = [{k: v for k, v in c.items() if k != "nodes" and k != "podList"} for c in data]
        comparable += [[(n["name"], n["status"]) for n in c["nodes"]] for c in data]
        comparable += [[(p["name"], p["status"], p["ready"], p["restarts"]) for p in c["podList"]] for c in data]
        if only_if_changed and comparable == self._published:
            return
        self._published = comparable
        self.hub.publish("clusters", data)

    def greeting(self) -> list[str]:
        return [message("clusters", self.clusters_data()), message("events", self.events.recent())]

    # ---- pushed samples (metric collectors) --------------------------------------------------------------------
    def _cluster(self, cluster_id: str | None) -> str:
        if cluster_id:
            return cluster_id
        return self.clusters[0].id if self.clusters else "local"

    def push_node(self, name: str, usage: Usage, cluster_id: str | None = None) -> Push:
        """A node's pushed sample, taken now (`accept` records it)."""
        nodes = [n for c in self.clusters for n in c.nodes if n.name == name and cluster_id in (None, c.id)]
        node = nodes[0] if nodes else Node(self._cluster(cluster_id), name, ready=True)
        return Push(("node", node.cluster, name), self.clock(), usage, node, new=not nodes)

    def push_pod(self, namespace: str, name: str, node_name: str, usage: Usage, cluster_id: str | None = None) -> Push:
        """A pod's pushed sample, taken now (`accept` records it)."""
        pods = [
            p
            for c in self.clusters
            for p in c.pods
            if p.name == name and p.namespace == namespace and cluster_id in (None, c.id)
        ]
        if pods:
            pod = pods[0]
        else:
            owner = next((n.cluster for c in self.clusters for n in c.nodes if n.name == node_name), None)
            pod = Pod(self._cluster(cluster_id or owner), namespace, name, node_name, "Running", 1, 1)
        return Push(("pod", *pod.key), self.clock(), usage, pod, new=not pods)

    async def accept(self, push: Push) -> None:
        """Record a push. With a shared feed it goes to the collector replica through Redis and this returns once
        Redis holds it (PushesRefused otherwise), so every replica shows it and none loses it; alone, it is
        recorded here."""
        if self.shared is None:
            self.take_push(push)
        else:
            await self.shared.enqueue(push)

    def take_push(self, push: Push) -> None:
        if push.new or push.key in self.pushed:
            self.pushed[push.key] = _Pushed(push.obj, push.ts)
        self.series.record(push.key, push.ts, push.usage)
        self._merge_pushed(self.clusters, push.ts)

    async def drain_pushes(self) -> None:
        """On the holder: move the pushes any replica acknowledged into the feed as soon as they come (`follow`
        applies them here as on every replica)."""
        while True:
            # Any number of replicas may drain at once (while a lease changes hands, or each alone): a batch is
            # written by whoever takes it off the queue first, the others write nothing.
            if not self.lease.is_holder:
                await asyncio.sleep(self.lease.ttl_s / 6)
                continue
            try:
                pending = await self.shared.pending_pushes()
                if not pending:
                    continue
                batch = PushBatch([push for _, push in pending], self._origin)
                await self.shared.apply_pushes([entry_id for entry_id, _ in pending], batch)
            except Exception as exc:  # Redis gone: the pushes wait in it (or are in the feed already); retried
                raise_if_cancelling()
                self.shared_error = f"applying pushed metrics failed: {exc}"
                log.warning("%s", self.shared_error)
                await asyncio.sleep(1.0)

    def _merge_pushed(self, clusters: list[Cluster], now: float) -> None:
        """Put live pushed-only objects into the snapshot (and forget expired ones)."""
        for key in [k for k, p in self.pushed.items() if p.last_push < now - self.settings.pushed_ttl_s]:
            del self.pushed[key]
        by_id = {cluster.id: cluster for cluster in clusters}
        for pushed in self.pushed.values():
            obj = pushed.obj
            cluster = by_id.get(obj.cluster)
            if cluster is None:
                cluster = by_id[obj.cluster] = Cluster(obj.cluster, display_name(obj.cluster))
                clusters.append(cluster)
            if isinstance(obj, Node):
                if all(n.name != obj.name for n in cluster.nodes):
                    cluster.nodes.append(obj)
            elif all(p.key != obj.key for p in cluster.pods):
                cluster.pods.append(obj)
                if all(ns.name != obj.namespace for ns in cluster.namespaces):
                    cluster.namespaces.append(Namespace(cluster.id, obj.namespace))

    # ---- /stats --------------------------------------------------------------------------------------------------
    async def stats(self) -> dict:
        last, duration = self.last_collection, self.last_duration_s
        return {
            "source": self.source.name,
            "clusters": len(self.clusters),
            "nodes": sum(len(c.nodes) for c in self.clusters),
            "pods": sum(len(c.pods) for c in self.clusters),
            "collections": self.collections,
            "collections_applied": self.applied,
            "pushes_applied": self.pushes_applied,
            **({"lease": self.lease.snapshot()} if self.lease is not None else {}),
            **({"shared_error": self.shared_error} if self.shared is not None else {}),
            "failed_collections": self.failed_collections,
            "last_collection": None if last is None else iso(last),
            "last_collection_duration_ms": None if duration is None else round(duration * 1e3, 1),
            "last_collection_error": self.last_error,
            "series": len(self.series),
            "series_points": self.series.total_points,
            "events": len(self.events),
            "ws_clients": len(self.hub.clients),
            "ws_messages_published": self.hub.sent_total,
            "ws_messages_dropped": self.hub.dropped_total + sum(c.dropped for c in self.hub.clients),
        }


def iso(ts: float) -> str:
    return utc_iso(datetime.fromtimestamp(ts, UTC))
