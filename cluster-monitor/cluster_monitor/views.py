"""The JSON shapes: ClusterInfo/NodeInfo/PodInfo as the PF Dashboard reads them, and usage with computed fields."""

from datetime import UTC, datetime
from typing import Any

from titanium_common.clock import utc_iso

from .model import Cluster, Node, Pod, Usage
from .quantities import human_bytes
from .timeseries import Point


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


def usage_fields(usage: Usage | None, cpu_total_m: float = 0.0, memory_total: int = 0) -> dict[str, Any]:
    """Usage figures; percentages are of the real allocatable CPU and memory given (none when unknown)."""
    if usage is None:
        return {
            "metrics": "unavailable",
            **dict.fromkeys(("cpu_millicores", "cpu_cores", "cpu_percentage", "memory_bytes", "memory_percentage")),
            **dict.fromkeys(("memory_human", "disk_io", "disk_io_human", "network_io", "network_io_human")),
        }
    return {
        "metrics": "available",
        "cpu_millicores": usage.cpu_millicores,
        "cpu_cores": round(usage.cpu_millicores / 1000, 3),
        "cpu_percentage": _percent(usage.cpu_millicores, cpu_total_m),
        "memory_bytes": usage.memory_bytes,
        "memory_percentage": _percent(usage.memory_bytes, memory_total),
        "memory_human": human_bytes(usage.memory_bytes),
        "disk_io": {"read_bytes": usage.disk_read_bytes, "write_bytes": usage.disk_write_bytes},
        "disk_io_human": {"read": human_bytes(usage.disk_read_bytes), "write": human_bytes(usage.disk_write_bytes)},
        "network_io": {"bytes_sent": usage.net_bytes_sent, "bytes_recv": usage.net_bytes_recv},
        "network_io_human": {"sent": human_bytes(usage.net_bytes_sent), "recv": human_bytes(usage.net_bytes_recv)},
    }


def node_info(node: Node, now: float) -> dict[str, Any]:
    """NodeInfo, as the PF Dashboard reads it."""
    return {
        "name": node.name,
        "status": "Ready" if node.ready else "NotReady",
        "roles": node.roles,
        "age": age(node.created, now),
        "version": node.version,
        "internalIP": node.internal_ip,
        "osImage": node.os_image,
        "kernelVersion": node.kernel_version,
        "containerRuntime": node.container_runtime,
    }


def pod_info(pod: Pod, now: float) -> dict[str, Any]:
    """PodInfo, as the PF Dashboard reads it."""
    return {
        "name": pod.name,
        "namespace": pod.namespace,
        "ready": f"{pod.ready_containers}/{pod.total_containers}",
        "status": pod.phase,
        "restarts": pod.restarts,
        "age": age(pod.created, now),
        "ip": pod.ip,
        "node": pod.node,
    }


def cluster_view(cluster: Cluster, now: float) -> dict[str, Any]:
    """ClusterInfo, as the PF Dashboard reads it; `sessions` is the number of running pods here."""
    return {
        "id": cluster.id,
        "name": cluster.name,
        "status": "ready" if cluster.ready else "failure",
        "pods": len(cluster.pods),
        "region": cluster.region,
        "sessions": sum(1 for pod in cluster.pods if pod.phase == "Running"),
        "nodes": [node_info(node, now) for node in cluster.nodes],
        "podList": [pod_info(pod, now) for pod in cluster.pods],
        "metrics": "available" if cluster.metrics_available else "unavailable",
        "metrics_error": cluster.metrics_error,
        "karmada_ready": cluster.karmada_ready,
        "error": cluster.error,
    }


def node_view(node: Node, usage: Usage | None, pod_count: int, now: float) -> dict[str, Any]:
    return {
        **node_info(node, now),
        "cluster": node.cluster,
        "created_at": utc_iso(node.created) if node.created else None,
        "capacity": {"cpu_millicores": node.cpu_capacity_m, "memory_bytes": node.memory_capacity_bytes},
        "allocatable": {"cpu_millicores": node.cpu_allocatable_m, "memory_bytes": node.memory_allocatable_bytes},
        "pod_count": pod_count,
        **usage_fields(usage, node.cpu_allocatable_m, node.memory_allocatable_bytes),
    }


def pod_view(pod: Pod, node: Node | None, deployment: str | None, usage: Usage | None, now: float) -> dict[str, Any]:
    return {
        **pod_info(pod, now),
        "cluster": pod.cluster,
        "deployment": deployment,
        "created_at": utc_iso(pod.created) if pod.created else None,
        **usage_fields(usage, node.cpu_allocatable_m if node else 0.0, node.memory_allocatable_bytes if node else 0),
    }


def point_view(point: Point) -> dict[str, Any]:
    usage = point.usage
    return {
        "timestamp": utc_iso(datetime.fromtimestamp(point.ts, UTC)),
        "cpu_millicores": usage.cpu_millicores,
        "memory_bytes": usage.memory_bytes,
        "disk_io": {"read_bytes": usage.disk_read_bytes, "write_bytes": usage.disk_write_bytes},
        "network_io": {"bytes_sent": usage.net_bytes_sent, "bytes_recv": usage.net_bytes_recv},
    }
