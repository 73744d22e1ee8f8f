"""What a source reports about its clusters at one moment (plain data; the views decide the JSON)."""

from dataclasses import dataclass, field
from datetime import datetime


def display_name(cluster_id: str) -> str:
    """The original cluster dashboard (docs/compatibility.md) shows member1 as "Member1 Cluster"."""
    return f"{cluster_id[:1].upper()}{cluster_id[1:]} Cluster"


@dataclass(frozen=True)
class Usage:
    """One sample; disk and network figures come only from pushes and the simulation (metrics.k8s.io has none)."""

    cpu_millicores: float
    memory_bytes: int
    disk_read_bytes: int = 0
    disk_write_bytes: int = 0
    net_bytes_sent: int = 0
    net_bytes_recv: int = 0

    @classmethod
    def total(cls, usages: list["Usage"]) -> "Usage | None":
        """The sum of several samples (a namespace's or a deployment's pods); None for none."""
        if not usages:
            return None
        return cls(
            round(sum(u.cpu_millicores for u in usages), 3),
            sum(u.memory_bytes for u in usages),
            sum(u.disk_read_bytes for u in usages),
            sum(u.disk_write_bytes for u in usages),
            sum(u.net_bytes_sent for u in usages),
            sum(u.net_bytes_recv for u in usages),
        )


@dataclass
class Node:
    cluster: str
    name: str
    ready: bool
    created: datetime | None = None
    roles: str = "<none>"
    version: str = ""
    internal_ip: str = ""
    os_image: str = ""
    kernel_version: str = ""
    container_runtime: str = ""
    cpu_allocatable_m: float = 0.0
    memory_allocatable_bytes: int = 0
    cpu_capacity_m: float = 0.0
    memory_capacity_bytes: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    usage: Usage | None = None


@dataclass
class Pod:
    cluster: str
    namespace: str
    name: str
    node: str
    phase: str
    ready_containers: int = 0
    total_containers: int = 0
    restarts: int = 0
    ip: str = ""
    created: datetime | None = None
    labels: dict[str, str] = field(default_factory=dict)
    usage: Usage | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return self.cluster, self.namespace, self.name


@dataclass
class Deployment:
    cluster: str
    namespace: str
    name: str
    replicas: int
    ready_replicas: int
    available_replicas: int
    selector: dict[str, str]
    created: datetime | None = None

    def selects(self, pod: Pod) -> bool:
        return (
            bool(self.selector)
            and pod.cluster == self.cluster
            and pod.namespace == self.namespace
            and all(pod.labels.get(k) == v for k, v in self.selector.items())
        )


@dataclass
class Namespace:
    cluster: str
    name: str
    phase: str = "Active"
    created: datetime | None = None


@dataclass
class Cluster:
    id: str
    name: str
    region: str = ""
    # Karmada's Ready condition for the member (None: not a Karmada member or no Karmada).
    karmada_ready: bool | None = None
    # Why the cluster could not be read (None: it answered).
    error: str | None = None
    # False for a Karmada member with no context here: only Karmada's word about it is known.
    observed: bool = True
    metrics_available: bool = False
    metrics_error: str | None = None
    nodes: list[Node] = field(default_factory=list)
    pods: list[Pod] = field(default_factory=list)
    deployments: list[Deployment] = field(default_factory=list)
    namespaces: list[Namespace] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        """A cluster with no Ready node is a failure; so is one Karmada or the API calls not ready."""
        if self.error is not None or self.karmada_ready is False:
            return False
        return any(node.ready for node in self.nodes) if self.observed else bool(self.karmada_ready)
