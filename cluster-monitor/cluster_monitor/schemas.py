"""The request and response models of cluster-monitor's API: the shapes `views.py` and `queries.py` build, declared
so that the OpenAPI shows them and every answer is checked against them, and the samples metric collectors push."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from .events import EventType
from .resources import Usage


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


# ---- what metric collectors push ----------------------------------------------------------------------------
def _not_a_boolean(value: Any) -> Any:
    # JSON true/false would otherwise pass as 1/0.
    if isinstance(value, bool):
        raise ValueError("a number is required, not a boolean")
    return value


Bytes = Annotated[int, BeforeValidator(_not_a_boolean), Field(ge=0, le=2**63 - 1)]


class PushedDiskIO(BaseModel):
    model_config = ConfigDict(extra="forbid")
    read_bytes: Bytes
    write_bytes: Bytes


class PushedNetworkIO(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bytes_sent: Bytes
    bytes_recv: Bytes


class NodeSample(BaseModel):
    """A metric collector's push of one sample."""

    model_config = ConfigDict(extra="forbid")
    cpu_millicores: Annotated[float, BeforeValidator(_not_a_boolean), Field(ge=0, le=1e9, allow_inf_nan=False)]
    memory_bytes: Bytes
    disk_io: PushedDiskIO
    network_io: PushedNetworkIO
    cluster: Annotated[str | None, Field(max_length=253)] = None

    def usage(self) -> Usage:
        return Usage(
            self.cpu_millicores,
            self.memory_bytes,
            self.disk_io.read_bytes,
            self.disk_io.write_bytes,
            self.network_io.bytes_sent,
            self.network_io.bytes_recv,
        )


class PodSample(NodeSample):
    node_name: Annotated[str, Field(min_length=1, max_length=253)]
