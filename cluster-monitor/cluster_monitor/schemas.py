"""The response models of cluster-monitor's API: the shapes `views.py` and `queries.py` build, declared so that the
OpenAPI shows them and every answer is checked against them."""

from typing import Literal

from pydantic import BaseModel

from .events import EventType


class DiskIO(BaseModel):
    read_bytes: int
    write_bytes: int


class NetworkIO(BaseModel):
    bytes_sent: int
    bytes_recv: int


class HumanBytes(BaseModel):
    value: float
    unit: str
    bytes: int


class UsageFields(BaseModel):
    """Current usage; every figure is null while `metrics` is "unavailable"; percentages are of allocatable."""

    metrics: Literal["available", "unavailable"]
    cpu_millicores: float | None
    cpu_cores: float | None
    cpu_percentage: float | None
    memory_bytes: int | None
    memory_percentage: float | None
    memory_human: HumanBytes | None
    disk_io: DiskIO | None
    disk_io_human: dict[str, HumanBytes] | None
    network_io: NetworkIO | None
    network_io_human: dict[str, HumanBytes] | None


class NodeInfo(BaseModel):
    name: str
    status: Literal["Ready", "NotReady"]
    roles: str
    age: str
    version: str
    internalIP: str
    osImage: str
    kernelVersion: str
    containerRuntime: str


class PodInfo(BaseModel):
    name: str
    namespace: str
    ready: str
    status: str
    restarts: int
    age: str
    ip: str
    node: str


class ClusterInfo(BaseModel):
    """`sessions` is the number of running pods."""

    id: str
    name: str
    status: Literal["ready", "failure"]
    pods: int
    region: str
    sessions: int
    nodes: list[NodeInfo]
    podList: list[PodInfo]
    metrics: Literal["available", "unavailable"]
    metrics_error: str | None
    karmada_ready: bool | None
    error: str | None


class Resources(BaseModel):
    cpu_millicores: float
    memory_bytes: int


class NodeView(NodeInfo, UsageFields):
    cluster: str
    created_at: str | None
    capacity: Resources
    allocatable: Resources
    pod_count: int


class PodView(PodInfo, UsageFields):
    cluster: str
    deployment: str | None
    created_at: str | None


class NamespaceView(UsageFields):
    name: str
    clusters: list[str]
    status: str
    pod_count: int
    running_pods: int
    deployment_count: int


class Placement(BaseModel):
    cluster: str
    replicas: int
    ready_replicas: int


class DeploymentView(UsageFields):
    name: str
    namespace: str
    clusters: list[str]
    replicas: int
    ready_replicas: int
    available_replicas: int
    placement: list[Placement]
    pod_count: int
    pods: list[str]


class Event(BaseModel):
    type: EventType
    message: str
    timestamp: str
    cluster: str | None


class Listing(BaseModel):
    total: int
    timestamp: str


class ClusterList(Listing):
    clusters: list[ClusterInfo]


class EventList(Listing):
    events: list[Event]


class NodeList(Listing):
    nodes: list[NodeView]


class PodList(Listing):
    pods: list[PodView]


class NamespaceList(Listing):
    namespaces: list[NamespaceView]


class DeploymentList(Listing):
    deployments: list[DeploymentView]


class Point(BaseModel):
    timestamp: str
    cpu_millicores: float
    memory_bytes: int
    disk_io: DiskIO
    network_io: NetworkIO


class Series(BaseModel):
    """One object's usage over `window` seconds: `samples` kept, `points` shown after down-sampling."""

    kind: Literal["node", "pod", "namespace", "deployment"]
    name: str
    cluster: str | None = None
    namespace: str | None = None
    clusters: list[str] | None = None
    window: int
    samples: int
    points: int
    data: list[Point]


class SeriesSet(BaseModel):
    kind: Literal["nodes", "pods", "namespaces", "deployments"]
    window: int
    count: int
    series: list[Series]


class NodePushed(BaseModel):
    status: Literal["recorded"]
    node: str
    cluster: str
    timestamp: str


class PodPushed(BaseModel):
    status: Literal["recorded"]
    pod: str
    namespace: str
    cluster: str
    timestamp: str
