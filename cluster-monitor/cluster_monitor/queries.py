"""Lookups and aggregates over the latest snapshot and the series (the API turns the errors into 404/409)."""

from collections.abc import Iterable
from typing import Any

from titanium_common.errors import ServiceError

from .collector import Monitor
from .resources import Cluster, Deployment, Node, Pod, Usage
from .schemas import ClusterInfo, DeploymentView, NamespaceView, NodeView, Placement, PodView, Series, SeriesSet
from .timeseries import downsample, sum_by_time
from .views import cluster_view, node_view, pod_view, point_view, usage_fields


class NotFound(ServiceError, LookupError):
    status_code = 404


class Ambiguous(ServiceError, LookupError):
    """A name found in several clusters: `?cluster=` must say which."""

    status_code = 409


def _one(found: list, what: str, where: Iterable[str]) -> Any:
    if not found:
        raise NotFound(f"{what} not found")
    if len(found) > 1:
        raise Ambiguous(f"{what} exists in {', '.join(sorted(set(where)))}: say which with ?cluster= or ?namespace=")
    return found[0]


class Catalog:
    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    @property
    def now(self) -> float:
        return self.monitor.clock()

    def _clusters(self, cluster: str | None) -> list[Cluster]:
        if cluster is None:
            return self.monitor.clusters
        found = [c for c in self.monitor.clusters if c.id == cluster]
        if not found:
            raise NotFound(f"cluster '{cluster}' not found")
        return found

    def _allocatable(self, clusters: Iterable[str]) -> tuple[float, int]:
        ids = set(clusters)
        nodes = [n for c in self.monitor.clusters if c.id in ids for n in c.nodes]
        return sum(n.cpu_allocatable_m for n in nodes), sum(n.memory_allocatable_bytes for n in nodes)

    def _deployment_of(self, pod: Pod) -> str | None:
        cluster = next((c for c in self.monitor.clusters if c.id == pod.cluster), None)
        return next((d.name for d in cluster.deployments if d.selects(pod)), None) if cluster else None

    def _node_of(self, pod: Pod) -> Node | None:
        nodes = (n for c in self.monitor.clusters if c.id == pod.cluster for n in c.nodes if n.name == pod.node)
        return next(nodes, None)

    # ---- clusters ----------------------------------------------------------------------------------------------
    def clusters(self) -> list[ClusterInfo]:
        return [cluster_view(c, self.now) for c in self.monitor.clusters]

    def cluster(self, cluster_id: str) -> ClusterInfo:
        return cluster_view(self._clusters(cluster_id)[0], self.now)

    # ---- nodes -------------------------------------------------------------------------------------------------
    def _node_view(self, cluster: Cluster, node: Node) -> NodeView:
        pods = sum(1 for p in cluster.pods if p.node == node.name)
        return node_view(node, self.monitor.current(("node", cluster.id, node.name)), pods, self.now)

    def nodes(self, cluster: str | None = None) -> list[NodeView]:
        return [self._node_view(c, n) for c in self._clusters(cluster) for n in c.nodes]

    def find_node(self, name: str, cluster: str | None = None) -> tuple[Cluster, Node]:
        found = [(c, n) for c in self._clusters(cluster) for n in c.nodes if n.name == name]
        return _one(found, f"node '{name}'", (c.id for c, _ in found))

    def node(self, name: str, cluster: str | None = None) -> NodeView:
        return self._node_view(*self.find_node(name, cluster))

    # ---- pods --------------------------------------------------------------------------------------------------
    def _pod_view(self, pod: Pod) -> PodView:
        usage = self.monitor.current(("pod", *pod.key))
        return pod_view(pod, self._node_of(pod), self._deployment_of(pod), usage, self.now)

    def _pods(self, cluster: str | None = None) -> list[Pod]:
        return [p for c in self._clusters(cluster) for p in c.pods]

    def pods(self, cluster: str | None = None, namespace: str | None = None) -> list[PodView]:
        return [self._pod_view(p) for p in self._pods(cluster) if namespace in (None, p.namespace)]

    def node_pods(self, name: str, cluster: str | None = None) -> list[PodView]:
        owner, node = self.find_node(name, cluster)
        return [self._pod_view(p) for p in owner.pods if p.node == node.name]

    def find_pod(self, name: str, namespace: str | None = None, cluster: str | None = None) -> Pod:
        found = [p for p in self._pods(cluster) if p.name == name and namespace in (None, p.namespace)]
        what = f"pod '{name}'" + (f" in namespace '{namespace}'" if namespace else "")
        return _one(found, what, (f"{p.cluster}/{p.namespace}" for p in found))

    def pod(self, name: str, namespace: str | None = None, cluster: str | None = None) -> PodView:
        return self._pod_view(self.find_pod(name, namespace, cluster))

    # ---- namespaces (one entry per name, over every cluster that has it) ----------------------------------------
    def _namespace_view(self, name: str, clusters: list[Cluster]) -> NamespaceView:
        here = [c for c in clusters if any(ns.name == name for ns in c.namespaces)]
        pods = [p for c in here for p in c.pods if p.namespace == name]
        usages = [u for p in pods if (u := self.monitor.current(("pod", *p.key))) is not None]
        phases = {ns.phase for c in here for ns in c.namespaces if ns.name == name}
        return NamespaceView(
            name=name,
            clusters=[c.id for c in here],
            status="Active" if phases == {"Active"} else ",".join(sorted(phases)),
            pod_count=len(pods),
            running_pods=sum(1 for p in pods if p.phase == "Running"),
            deployment_count=sum(1 for c in here for d in c.deployments if d.namespace == name),
            **dict(usage_fields(Usage.total(usages), *self._allocatable(c.id for c in here))),
        )

    def namespaces(self, cluster: str | None = None) -> list[NamespaceView]:
        clusters = self._clusters(cluster)
        names = sorted({ns.name for c in clusters for ns in c.namespaces})
        return [self._namespace_view(name, clusters) for name in names]

    def namespace(self, name: str, cluster: str | None = None) -> NamespaceView:
        clusters = self._clusters(cluster)
        if not any(ns.name == name for c in clusters for ns in c.namespaces):
            raise NotFound(f"namespace '{name}' not found")
        return self._namespace_view(name, clusters)

    def namespace_pods(self, name: str, cluster: str | None = None) -> list[PodView]:
        self.namespace(name, cluster)
        return self.pods(cluster, name)

    # ---- deployments (one entry per namespace/name, over every cluster that runs it: Karmada propagates them) --
    def _deployment_view(self, namespace: str, name: str, clusters: list[Cluster]) -> DeploymentView:
        parts: list[Deployment] = [
            d for c in clusters for d in c.deployments if d.namespace == namespace and d.name == name
        ]
        pods = [p for c in clusters for p in c.pods for d in parts if d.selects(p)]
        usages = [u for p in pods if (u := self.monitor.current(("pod", *p.key))) is not None]
        return DeploymentView(
            name=name,
            namespace=namespace,
            clusters=[d.cluster for d in parts],
            replicas=sum(d.replicas for d in parts),
            ready_replicas=sum(d.ready_replicas for d in parts),
            available_replicas=sum(d.available_replicas for d in parts),
            placement=[
                Placement(cluster=d.cluster, replicas=d.replicas, ready_replicas=d.ready_replicas) for d in parts
            ],
            pod_count=len(pods),
            pods=[p.name for p in pods],
            **dict(usage_fields(Usage.total(usages), *self._allocatable(d.cluster for d in parts))),
        )

    def _deployment_keys(self, clusters: list[Cluster], namespace: str | None = None) -> list[tuple[str, str]]:
        keys = {(d.namespace, d.name) for c in clusters for d in c.deployments if namespace in (None, d.namespace)}
        return sorted(keys)

    def deployments(self, cluster: str | None = None, namespace: str | None = None) -> list[DeploymentView]:
        clusters = self._clusters(cluster)
        return [self._deployment_view(ns, name, clusters) for ns, name in self._deployment_keys(clusters, namespace)]

    def find_deployment(self, name: str, namespace: str | None, cluster: str | None) -> tuple[str, list[Cluster]]:
        clusters = self._clusters(cluster)
        if namespace is not None:
            self.namespace(namespace, cluster)
        found = [ns for ns, n in self._deployment_keys(clusters, namespace) if n == name]
        what = f"deployment '{name}'" + (f" in namespace '{namespace}'" if namespace else "")
        return _one(found, what, found), clusters

    def deployment(self, name: str, namespace: str | None = None, cluster: str | None = None) -> DeploymentView:
        ns, clusters = self.find_deployment(name, namespace, cluster)
        return self._deployment_view(ns, name, clusters)

    def deployment_pods(self, name: str, namespace: str, cluster: str | None = None) -> list[PodView]:
        ns, clusters = self.find_deployment(name, namespace, cluster)
        parts = [d for c in clusters for d in c.deployments if d.namespace == ns and d.name == name]
        return [self._pod_view(p) for c in clusters for p in c.pods if any(d.selects(p) for d in parts)]

    # ---- time series ---------------------------------------------------------------------------------------------
    def _series(self, keys: list[tuple], window: int, points: int, **identity: Any) -> Series:
        """The summed series of `keys`; `identity` says whose it is (kind, name, and where)."""
        series = self.monitor.series
        raw = sum_by_time(series.window(key, window, self.now) for key in keys)
        shown = downsample(raw, points)
        data = [point_view(p) for p in shown]
        return Series(**identity, window=window, samples=len(raw), points=len(shown), data=data)

    def node_series(self, name: str, cluster: str | None, window: int, points: int) -> Series:
        owner, node = self.find_node(name, cluster)
        return self._series([("node", owner.id, node.name)], window, points, kind="node", name=name, cluster=owner.id)

    def pod_series(self, name: str, namespace: str | None, cluster: str | None, window: int, points: int) -> Series:
        pod = self.find_pod(name, namespace, cluster)
        where = {"namespace": pod.namespace, "cluster": pod.cluster}
        return self._series([("pod", *pod.key)], window, points, kind="pod", name=name, **where)

    def namespace_series(self, name: str, cluster: str | None, window: int, points: int) -> Series:
        clusters = self.namespace(name, cluster).clusters
        keys = [("namespace", cid, name) for cid in clusters]
        return self._series(keys, window, points, kind="namespace", name=name, clusters=clusters)

    def deployment_series(self, name: str, namespace: str | None, cluster: str | None, window: int, points: int):
        ns, clusters = self.find_deployment(name, namespace, cluster)
        owners = [d.cluster for c in clusters for d in c.deployments if d.namespace == ns and d.name == name]
        keys = [("deployment", cid, ns, name) for cid in owners]
        return self._series(keys, window, points, kind="deployment", name=name, namespace=ns, clusters=owners)

    def all_series(self, kind: str, cluster: str | None, window: int, points: int) -> SeriesSet:
        clusters = self._clusters(cluster)
        if kind == "nodes":
            series = [
                self._series([("node", c.id, n.name)], window, points, kind="node", name=n.name, cluster=c.id)
                for c in clusters
                for n in c.nodes
            ]
        elif kind == "pods":
            series = [
                self._series(
                    [("pod", *p.key)], window, points, kind="pod", name=p.name, namespace=p.namespace, cluster=c.id
                )
                for c in clusters
                for p in c.pods
            ]
        elif kind == "namespaces":
            names = sorted({ns.name for c in clusters for ns in c.namespaces})
            series = [self.namespace_series(name, cluster, window, points) for name in names]
        else:
            keys = self._deployment_keys(clusters)
            series = [self.deployment_series(name, ns, cluster, window, points) for ns, name in keys]
        return SeriesSet(kind=kind, window=window, count=len(series), series=series)
