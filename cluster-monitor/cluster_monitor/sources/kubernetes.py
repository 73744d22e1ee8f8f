"""Clusters read with kubernetes_asyncio: kubeconfig contexts or in-cluster config, metrics.k8s.io, Karmada.

Only get/list is used (RBAC in README.md). Each cluster has its own client from titanium_common.kube (its rules
choose the configuration; every request ends within KUBERNETES_TIMEOUT_S), opened once and closed on shutdown.
"""

import asyncio
import logging
from typing import Any

from kubernetes_asyncio import client

from titanium_common.kube import connect, failure_reason

from ..quantities import cpu_millicores, memory_bytes
from ..resources import Cluster, Deployment, Namespace, Node, Pod, Usage, display_name
from ..settings import ClusterMonitorSettings

log = logging.getLogger("cluster_monitor.kubernetes")

ROLE_LABEL = "node-role.kubernetes.io/"
REGION_LABEL = "topology.kubernetes.io/region"
KARMADA = ("cluster.karmada.io", "v1alpha1", "clusters")


async def open_clients(settings: ClusterMonitorSettings) -> dict[str, client.ApiClient]:
    """One client per monitored cluster: each of CLUSTER_CONTEXTS in the kubeconfig; without them the kubeconfig's
    current context, else the pod's service account (named CLUSTER_NAME). Raises KubeConfigError."""
    timeout_s = settings.kubernetes_timeout_s
    if not settings.contexts:
        connection = await connect(kubeconfig=settings.kubeconfig, timeout_s=timeout_s)
        return {connection.context or settings.cluster_name: connection.api_client}
    clients: dict[str, client.ApiClient] = {}
    try:
        for context in settings.contexts:
            connection = await connect(
                kubeconfig=settings.kubeconfig, context=context, mode="kubeconfig", timeout_s=timeout_s
            )
            clients[context] = connection.api_client
    except BaseException:
        await asyncio.gather(*(api.close() for api in clients.values()))
        raise
    return clients


async def open_karmada(settings: ClusterMonitorSettings) -> client.ApiClient | None:
    if not settings.karmada_kubeconfig:
        return None
    connection = await connect(
        kubeconfig=settings.karmada_kubeconfig, mode="kubeconfig", timeout_s=settings.kubernetes_timeout_s
    )
    return connection.api_client


def _is_ready(conditions: list[Any] | None) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in conditions or ())


def _node(cluster: str, item: client.V1Node) -> Node:
    status = item.status or client.V1NodeStatus()
    labels = item.metadata.labels or {}
    info = status.node_info
    roles = sorted(key[len(ROLE_LABEL) :] for key in labels if key.startswith(ROLE_LABEL))
    address = next((a.address for a in status.addresses or () if a.type == "InternalIP"), "")
    allocatable = status.allocatable or {}
    capacity = status.capacity or {}
    return Node(
        cluster=cluster,
        name=item.metadata.name,
        ready=_is_ready(status.conditions),
        created=item.metadata.creation_timestamp,
        roles=",".join(roles) or "<none>",
        version=info.kubelet_version if info else "",
        internal_ip=address,
        os_image=info.os_image if info else "",
        kernel_version=info.kernel_version if info else "",
        container_runtime=info.container_runtime_version if info else "",
        cpu_allocatable_m=cpu_millicores(allocatable.get("cpu", capacity.get("cpu", 0))),
        memory_allocatable_bytes=memory_bytes(allocatable.get("memory", capacity.get("memory", 0))),
        cpu_capacity_m=cpu_millicores(capacity.get("cpu", 0)),
        memory_capacity_bytes=memory_bytes(capacity.get("memory", 0)),
        labels=labels,
    )


def _pod(cluster: str, item: client.V1Pod) -> Pod:
    status = item.status or client.V1PodStatus()
    statuses = status.container_statuses or []
    containers = item.spec.containers if item.spec else []
    # kubectl's STATUS: the phase unless the pod is being deleted or a container is waiting (CrashLoopBackOff, …).
    waiting = next((s.state.waiting.reason for s in statuses if s.state and s.state.waiting), None)
    phase = "Terminating" if item.metadata.deletion_timestamp else waiting or status.phase or "Unknown"
    return Pod(
        cluster=cluster,
        namespace=item.metadata.namespace,
        name=item.metadata.name,
        node=(item.spec.node_name if item.spec else None) or "",
        phase=phase,
        ready_containers=sum(1 for s in statuses if s.ready),
        total_containers=len(containers),
        restarts=sum(s.restart_count or 0 for s in statuses),
        ip=status.pod_ip or "",
        created=item.metadata.creation_timestamp,
        labels=item.metadata.labels or {},
    )


def _deployment(cluster: str, item: client.V1Deployment) -> Deployment:
    status = item.status or client.V1DeploymentStatus()
    selector = item.spec.selector.match_labels if item.spec and item.spec.selector else None
    return Deployment(
        cluster=cluster,
        namespace=item.metadata.namespace,
        name=item.metadata.name,
        replicas=item.spec.replicas if item.spec and item.spec.replicas is not None else 1,
        ready_replicas=status.ready_replicas or 0,
        available_replicas=status.available_replicas or 0,
        selector=selector or {},
        created=item.metadata.creation_timestamp,
    )


def _namespace(cluster: str, item: client.V1Namespace) -> Namespace:
    phase = (item.status.phase if item.status else None) or "Active"
    return Namespace(cluster, item.metadata.name, phase, item.metadata.creation_timestamp)


def _usage(item: dict[str, Any]) -> Usage:
    usage = item.get("usage") or {}
    return Usage(cpu_millicores(usage.get("cpu", 0)), memory_bytes(usage.get("memory", 0)))


def _pod_usage(item: dict[str, Any]) -> Usage:
    """PodMetrics carry one usage per container: the pod's is their sum."""
    parts = [_usage(container) for container in item.get("containers") or ()]
    return Usage(round(sum(p.cpu_millicores for p in parts), 3), sum(p.memory_bytes for p in parts))


class KubernetesSource:
    name = "kubernetes"

    def __init__(
        self,
        clients: dict[str, client.ApiClient],
        karmada: client.ApiClient | None = None,
        metrics_version: str = "v1beta1",
        timeout_s: float = 5.0,
    ) -> None:
        """`timeout_s`: the clients' request timeout (titanium_common.kube), named when a cluster does not answer."""
        self.clients = clients
        self.karmada = karmada
        self.metrics_version = metrics_version
        self.timeout_s = timeout_s

    async def probe(self) -> dict[str, str | None]:
        """Each cluster's reason for not answering /version (None: it answers)."""

        async def one(api: client.ApiClient) -> str | None:
            try:
                await client.VersionApi(api).get_code()
            except Exception as exc:  # any failure means "not reachable" here; the reason is reported
                return failure_reason(exc, self.timeout_s)
            return None

        reasons = await asyncio.gather(*(one(api) for api in self.clients.values()))
        return dict(zip(self.clients, reasons, strict=True))

    async def snapshot(self) -> list[Cluster]:
        members, *clusters = await asyncio.gather(
            self._karmada_members(), *(self._cluster(cid, api) for cid, api in self.clients.items())
        )
        known = {cluster.id: cluster for cluster in clusters}
        for member_id, (ready, region) in members.items():
            cluster = known.get(member_id)
            if cluster is None:  # a Karmada member this service has no context for: its state is Karmada's word
                cluster = known[member_id] = Cluster(member_id, display_name(member_id), observed=False)
            cluster.karmada_ready = ready
            cluster.region = region or cluster.region
        return list(known.values())

    async def _karmada_members(self) -> dict[str, tuple[bool, str]]:
        if self.karmada is None:
            return {}
        try:
            listing = await client.CustomObjectsApi(self.karmada).list_cluster_custom_object(*KARMADA)
        except Exception as exc:  # Karmada down must not hide the members that answer themselves
            log.warning("Karmada clusters unavailable: %s", failure_reason(exc, self.timeout_s))
            return {}
        members = {}
        for item in listing.get("items", []):
            conditions = (item.get("status") or {}).get("conditions") or []
            ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
            members[item["metadata"]["name"]] = (ready, (item.get("spec") or {}).get("region", ""))
        return members

    async def _cluster(self, cluster_id: str, api: client.ApiClient) -> Cluster:
        cluster = Cluster(cluster_id, display_name(cluster_id))
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        try:
            nodes, pods, namespaces, deployments = await asyncio.gather(
                core.list_node(),
                core.list_pod_for_all_namespaces(),
                core.list_namespace(),
                apps.list_deployment_for_all_namespaces(),
            )
        except Exception as exc:  # the cluster is reported as failing, with the reason, instead of breaking others
            cluster.error = failure_reason(exc, self.timeout_s)
            return cluster
        try:
            cluster.nodes = [_node(cluster_id, item) for item in nodes.items]
        except ValueError as exc:  # a malformed quantity: say so rather than guess
            cluster.error = f"unreadable node: {exc}"
            return cluster
        cluster.pods = [_pod(cluster_id, item) for item in pods.items]
        cluster.namespaces = [_namespace(cluster_id, item) for item in namespaces.items]
        cluster.deployments = [_deployment(cluster_id, item) for item in deployments.items]
        cluster.region = next((n.labels[REGION_LABEL] for n in cluster.nodes if REGION_LABEL in n.labels), "")
        await self._metrics(cluster, api)
        return cluster

    async def _metrics(self, cluster: Cluster, api: client.ApiClient) -> None:
        custom = client.CustomObjectsApi(api)
        try:
            node_metrics, pod_metrics = await asyncio.gather(
                custom.list_cluster_custom_object("metrics.k8s.io", self.metrics_version, "nodes"),
                custom.list_cluster_custom_object("metrics.k8s.io", self.metrics_version, "pods"),
            )
        except Exception as exc:  # no metrics-server (404) or a broken one: objects are still listed
            missing = getattr(exc, "status", 0) == 404
            cluster.metrics_error = "metrics-server not installed" if missing else failure_reason(exc, self.timeout_s)
            return
        try:
            by_node = {item["metadata"]["name"]: _usage(item) for item in node_metrics.get("items", [])}
            by_pod = {
                (item["metadata"].get("namespace"), item["metadata"]["name"]): _pod_usage(item)
                for item in pod_metrics.get("items", [])
            }
        except (ValueError, KeyError, TypeError) as exc:
            cluster.metrics_error = f"unreadable metrics: {exc!r}"
            return
        cluster.metrics_available = True
        for node in cluster.nodes:
            node.usage = by_node.get(node.name)
        for pod in cluster.pods:
            pod.usage = by_pod.get((pod.namespace, pod.name))

    async def close(self) -> None:
        apis = [*self.clients.values(), *([self.karmada] if self.karmada else [])]
        await asyncio.gather(*(api.close() for api in apis))
