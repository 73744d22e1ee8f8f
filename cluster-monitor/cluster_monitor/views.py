"""The answers, built as the models of `schemas.py`: ClusterInfo/NodeInfo/PodInfo as the original cluster dashboard
reads them (docs/compatibility.md), and usage with computed fields."""

from datetime import UTC, datetime
from typing import TypeVar

from titanium_common.clock import utc_iso

from .quantities import human_bytes
from .resources import Cluster, Node, Pod, Usage
from .schemas import (
    ClusterInfo,
    DiskIO,
    Listing,
    NetworkIO,
    NodeInfo,
    NodeView,
    PodInfo,
    PodView,
    Resources,
    UsageFields,
)
from .schemas import Point as SeriesPoint
from .timeseries import Point

ListingModel = TypeVar("ListingModel", bound=Listing)

NO_USAGE = UsageFields(
    metrics="unavailable",
    cpu_millicores=None,
    cpu_cores=None,
    cpu_percentage=None,
    memory_bytes=None,
    memory_percentage=None,
    memory_human=None,
    disk_io=None,
    disk_io_human=None,
    network_io=None,
    network_io_human=None,
)


def age(created: datetime | None, now: float) -> str:
    """kubectl's AGE: 45s, 12m, 3h, 5d."""
    if created is None:
        return ""
    seconds = max(0, int(now - created.timestamp()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _percent(part: float, whole: float) -> float | None:
    return round(100.0 * part / whole, 2) if whole > 0 else None


def usage_fields(usage: Usage | None, cpu_total_m: float = 0.0, memory_total: int = 0) -> UsageFields:
    """Usage figures; percentages are of the real allocatable CPU and memory given (none when unknown)."""
    if usage is None:
        return NO_USAGE
    return UsageFields(
        metrics="available",
        cpu_millicores=usage.cpu_millicores,
        cpu_cores=round(usage.cpu_millicores / 1000, 3),
        cpu_percentage=_percent(usage.cpu_millicores, cpu_total_m),
        memory_bytes=usage.memory_bytes,
        memory_percentage=_percent(usage.memory_bytes, memory_total),
        memory_human=human_bytes(usage.memory_bytes),
        disk_io=_disk_io(usage),
        disk_io_human={"read": human_bytes(usage.disk_read_bytes), "write": human_bytes(usage.disk_write_bytes)},
        network_io=_network_io(usage),
        network_io_human={"sent": human_bytes(usage.net_bytes_sent), "recv": human_bytes(usage.net_bytes_recv)},
    )


def _disk_io(usage: Usage) -> DiskIO:
    return DiskIO(read_bytes=usage.disk_read_bytes, write_bytes=usage.disk_write_bytes)


def _network_io(usage: Usage) -> NetworkIO:
    return NetworkIO(bytes_sent=usage.net_bytes_sent, bytes_recv=usage.net_bytes_recv)


def node_info(node: Node, now: float) -> NodeInfo:
    """NodeInfo, as the original cluster dashboard reads it."""
    return NodeInfo(
        name=node.name,
        status="Ready" if node.ready else "NotReady",
        roles=node.roles,
        age=age(node.created, now),
        version=node.version,
        internalIP=node.internal_ip,
        osImage=node.os_image,
        kernelVersion=node.kernel_version,
        containerRuntime=node.container_runtime,
    )


def pod_info(pod: Pod, now: float) -> PodInfo:
    """PodInfo, as the original cluster dashboard reads it."""
    return PodInfo(
        name=pod.name,
        namespace=pod.namespace,
        ready=f"{pod.ready_containers}/{pod.total_containers}",
        status=pod.phase,
        restarts=pod.restarts,
        age=age(pod.created, now),
        ip=pod.ip,
        node=pod.node,
    )


def cluster_view(cluster: Cluster, now: float) -> ClusterInfo:
    """ClusterInfo, as the original cluster dashboard reads it; `sessions` is the number of running pods here."""
    return ClusterInfo(
        id=cluster.id,
        name=cluster.name,
        status="ready" if cluster.ready else "failure",
        pods=len(cluster.pods),
        region=cluster.region,
        sessions=sum(1 for pod in cluster.pods if pod.phase == "Running"),
        nodes=[node_info(node, now) for node in cluster.nodes],
        podList=[pod_info(pod, now) for pod in cluster.pods],
        metrics="available" if cluster.metrics_available else "unavailable",
        metrics_error=cluster.metrics_error,
        karmada_ready=cluster.karmada_ready,
        error=cluster.error,
    )


def node_view(node: Node, usage: Usage | None, pod_count: int, now: float) -> NodeView:
    return NodeView(
        **dict(node_info(node, now)),
        cluster=node.cluster,
        created_at=utc_iso(node.created) if node.created else None,
        capacity=Resources(cpu_millicores=node.cpu_capacity_m, memory_bytes=node.memory_capacity_bytes),
        allocatable=Resources(cpu_millicores=node.cpu_allocatable_m, memory_bytes=node.memory_allocatable_bytes),
        pod_count=pod_count,
        **dict(usage_fields(usage, node.cpu_allocatable_m, node.memory_allocatable_bytes)),
    )


def pod_view(pod: Pod, node: Node | None, deployment: str | None, usage: Usage | None, now: float) -> PodView:
    cpu_total_m, memory_total = (node.cpu_allocatable_m, node.memory_allocatable_bytes) if node else (0.0, 0)
    return PodView(
        **dict(pod_info(pod, now)),
        cluster=pod.cluster,
        deployment=deployment,
        created_at=utc_iso(pod.created) if pod.created else None,
        **dict(usage_fields(usage, cpu_total_m, memory_total)),
    )


def point_view(point: Point) -> SeriesPoint:
    return SeriesPoint(
        timestamp=utc_iso(datetime.fromtimestamp(point.ts, UTC)),
        cpu_millicores=point.usage.cpu_millicores,
        memory_bytes=point.usage.memory_bytes,
        disk_io=_disk_io(point.usage),
        network_io=_network_io(point.usage),
    )


def listing(model: type[ListingModel], **entries: list) -> ListingModel:
    """A list answer: `entries` under its one name, with their number and the time of the answer."""
    (items,) = entries.values()
    return model(**entries, total=len(items), timestamp=utc_iso())
