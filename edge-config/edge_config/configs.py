"""What a device config is: its id rules, its fields and defaults, and how a PUT or PATCH body becomes one."""

import json
import re
from ipaddress import IPv4Address, IPv6Address
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from titanium_common.errors import ServiceError

SERVICE_PREFIX = "edge-device-"
# Kubernetes object names are DNS-1123 labels of at most 63 characters, and ours are `edge-device-<id>`.
DEVICE_ID_MAX = 63 - len(SERVICE_PREFIX)
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# A Kubernetes label value (the device type becomes one).
_LABEL_VALUE = r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"

DEFAULT_PORT = 9100
DEFAULT_RELOAD_PORT = 9101
MAX_CONFIG_BYTES = 64 * 1024
MAX_EXTRA_KEY = 128
KNOWN_FIELDS = ("device_type", "port", "reload_port", "ip_address", "enabled_metrics")
DEFAULTS: dict[str, Any] = {"port": DEFAULT_PORT, "reload_port": DEFAULT_RELOAD_PORT, "ip_address": None,
                            "enabled_metrics": None}  # fmt: skip


class InvalidConfig(ServiceError, ValueError):
    """A body or id this service refuses (422), with a message saying why."""

    status_code = 422


class ConfigTooLarge(InvalidConfig):
    status_code = 413


def is_dns_label(value: str, max_length: int = 63) -> bool:
    return len(value) <= max_length and bool(_DNS_LABEL.match(value))


def normalise_device_id(raw: str) -> str:
    """Ids are host names, which are case-insensitive: every path lower-cases them the same way (the original server
    did not)."""
    device_id = raw.lower()
    if not is_dns_label(device_id, DEVICE_ID_MAX):
        raise InvalidConfig(
            f"device_id {raw[:80]!r} must be a DNS-1123 label (lower-case letters, digits and '-', starting and ending"
            f" with a letter or digit) of at most {DEVICE_ID_MAX} characters, so that the Kubernetes name"
            f" '{SERVICE_PREFIX}<device_id>' fits in 63"
        )
    return device_id


DeviceType = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=_LABEL_VALUE)]
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


class _BasicChange(BaseModel):
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


class ConfigPatch(_BasicChange):
    """PATCH /config/{id}: also enabled_metrics and extra keys (null removes an extra key)."""

    model_config = ConfigDict(extra="allow")
    enabled_metrics: Metrics | None = None


class DevicePatch(_BasicChange):
    """PATCH /devices/{id}: the basic fields only."""

    model_config = ConfigDict(extra="forbid")


def _known(body: BaseModel, fields) -> dict[str, Any]:
    values = {}
    for name in fields:
        value = getattr(body, name)
        values[name] = str(value) if isinstance(value, IPv4Address | IPv6Address) else value
    return values


def _checked_extra(device_id: str, extra: dict[str, Any]) -> dict[str, Any]:
    extra = dict(extra)
    claimed = extra.pop("device_id", device_id)
    if claimed != device_id:
        raise InvalidConfig(f"device_id in the body ({str(claimed)[:80]!r}) differs from the path ({device_id!r})")
    too_long = [key for key in extra if len(key) > MAX_EXTRA_KEY]
    if too_long:
        raise InvalidConfig(f"config keys are at most {MAX_EXTRA_KEY} characters long")
    return extra


def _checked_size(config: dict[str, Any]) -> dict[str, Any]:
    if len(json.dumps(config, separators=(",", ":"))) > MAX_CONFIG_BYTES:
        raise ConfigTooLarge(f"a device config is at most {MAX_CONFIG_BYTES} bytes as JSON")
    return config


def config_from_body(device_id: str, body: ConfigBody) -> dict[str, Any]:
    """The stored form of a full config: known fields (defaults filled in) plus extra keys."""
    config = _known(body, KNOWN_FIELDS) | _checked_extra(device_id, body.model_extra or {})
    return _checked_size(config)


def patched(device_id: str, current: dict[str, Any], change: _BasicChange) -> dict[str, Any]:
    """`current` with `change` applied: set fields replace, null fields go back to their defaults or away."""
    config = dict(current)
    known_set = [name for name in KNOWN_FIELDS if name in change.model_fields_set]
    for name, value in _known(change, known_set).items():
        config[name] = DEFAULTS[name] if value is None else value
    for key, value in _checked_extra(device_id, change.model_extra or {}).items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    return _checked_size(config)


def public_config(config: dict[str, Any]) -> dict[str, Any]:
    """What GET /config/{id} answers a device (the original server's shape): null optional fields are left out."""
    return {key: value for key, value in config.items() if not (key in DEFAULTS and value is None)}
