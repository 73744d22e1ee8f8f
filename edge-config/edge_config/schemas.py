"""The response models of edge-config's API (the same at the root paths devices call and under /api/edge)."""

from ipaddress import IPv4Address, IPv6Address
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from .configs import DEFAULT_PORT, DEFAULT_RELOAD_PORT, LABEL_VALUE, checked_namespace

# ---- requests: a device config as PUT, POST and PATCH take it ----------------------------------------------
DeviceType = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=LABEL_VALUE)]
Port = Annotated[int, Field(strict=True, ge=1, le=65535)]
MetricName = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Metrics = Annotated[list[MetricName], Field(max_length=1000)]
Address = IPv4Address | IPv6Address


class ConfigBody(BaseModel):
    """PUT and POST /config/{id}: the known fields, validated; any other key is kept as extra config."""

    model_config = ConfigDict(extra="allow")
    device_type: DeviceType
    port: Port = DEFAULT_PORT
    reload_port: Port = DEFAULT_RELOAD_PORT
    ip_address: Address | None = None
    enabled_metrics: Metrics | None = None


class BasicChange(BaseModel):
    """A partial change: a field left out stays as it is, a field set to null goes back to its default."""

    device_type: DeviceType | None = None
    port: Port | None = None
    reload_port: Port | None = None
    ip_address: Address | None = None

    @model_validator(mode="after")
    def _device_type_stays(self):
        if "device_type" in self.model_fields_set and self.device_type is None:
            raise ValueError("device_type is required and cannot be reset to null")
        return self


class ConfigPatch(BasicChange):
    """PATCH /config/{id}: also enabled_metrics and extra keys (null removes an extra key)."""

    model_config = ConfigDict(extra="allow")
    enabled_metrics: Metrics | None = None


class DevicePatch(BasicChange):
    """PATCH /devices/{id}: the basic fields only."""

    model_config = ConfigDict(extra="forbid")


# ---- answers --------------------------------------------------------------------------------------------------
class DeviceConfig(BaseModel):
    """A device's config as it fetches it: the known fields (optional ones left out while unset) and any extra
    keys it was given."""

    model_config = ConfigDict(extra="allow")
    device_type: str
    port: int
    reload_port: int
    ip_address: str | None = None
    enabled_metrics: list[str] | None = None


class NamedConfig(DeviceConfig):
    device_id: str


class ConfigList(BaseModel):
    configs: list[NamedConfig]
    total: int


class ConfigStored(BaseModel):
    status: Literal["registered", "updated"]
    device_id: str
    reload_triggered: bool
    version: int
    changed: bool


class ConfigCreated(BaseModel):
    status: Literal["created"]
    device_id: str
    version: int


class ConfigPatched(BaseModel):
    status: Literal["patched"]
    device_id: str
    reload_triggered: bool
    version: int
    changed: bool
    config: DeviceConfig


class ConfigDeleted(BaseModel):
    status: Literal["deleted"]
    device_id: str


class ConfigVersion(BaseModel):
    version: int
    action: str
    config: DeviceConfig
    changed_at: str | None


class ConfigHistory(BaseModel):
    device_id: str
    versions: list[ConfigVersion]
    total: int


class LastReload(BaseModel):
    status: str
    at: str | None
    attempts: int | None
    error: str | None


class DeviceView(BaseModel):
    """A device, its health from the latest background probe round, and its reloads."""

    device_id: str
    device_type: str
    ip_address: str | None
    port: int
    reload_port: int
    status: str
    checked_at: str | None
    last_seen: str | None
    error: str | None
    consecutive_failures: int
    version: int
    last_reload: LastReload | None
    reload_pending: bool


class Counts(BaseModel):
    total: int
    healthy: int
    unhealthy: int
    by_status: dict[str, int]


class DeviceList(Counts):
    devices: list[DeviceView]
    last_probe_round: dict[str, Any] | None


class MetricsSummary(Counts):
    by_device_type: dict[str, int]
    last_probe_round: dict[str, Any] | None


class DevicePatched(BaseModel):
    status: Literal["updated"]
    device_id: str
    changed: bool
    device: DeviceView


class LocalConfig(BaseModel):
    device_id: str
    local_config: Any


class ReloadResult(BaseModel):
    device_id: str
    status: str
    error: str | None


class ReloadFailed(ReloadResult):
    """502: the device did not take the reload; `detail` and `request_id` are the error shape."""

    detail: str
    request_id: str


class ReloadAll(BaseModel):
    results: list[ReloadResult]
    total: int
    success: int
    failed: int


class SyncResult(BaseModel):
    """Each outcome lists the devices it applies to, with what was done."""

    status: Literal["synced"]
    namespace: str
    created: list[dict[str, Any]]
    updated: list[dict[str, Any]]
    deleted: list[dict[str, Any]]
    failed: list[dict[str, Any]]
    unchanged: list[dict[str, Any]]
    kept: list[dict[str, Any]]
    skipped: list[dict[str, Any]]
    total_healthy: int


class Cleaned(BaseModel):
    status: Literal["cleaned"]
    deleted_services: list[str]
    deleted_endpoints: list[str]
    deleted_endpointslices: list[str]
    namespace: str


class KubeStatus(BaseModel):
    status: Literal["connected"]
    api_server: str
    namespace: str
    managed_services: list[str]
    unhealthy_grace: int
    sync_interval_s: float
    last_sync: dict[str, Any] | None


class KubeHealth(BaseModel):
    status: Literal["healthy"]
    api_server: str
    namespace: str


class KubeResources(BaseModel):
    """The device's objects as the Kubernetes API server returns them (null where one is missing)."""

    device_id: str
    namespace: str
    service: dict[str, Any] | None
    endpoints: dict[str, Any] | None
    endpointslice: dict[str, Any] | None


class ObjectRef(BaseModel):
    kind: str
    name: str


class ResourcesDeleted(BaseModel):
    status: Literal["deleted"]
    device_id: str
    namespace: str
    deleted: list[ObjectRef]


class SyncRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    namespace: str | None = None

    _namespace = field_validator("namespace")(lambda value: value if value is None else checked_namespace(value))
