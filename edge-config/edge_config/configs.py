"""What a device config is: its id rules, its fields and defaults, and what a device is shown."""

import re
from typing import Any

from titanium_common.errors import ServiceError

SERVICE_PREFIX = "edge-device-"
# Kubernetes object names are DNS-1123 labels of at most 63 characters, and ours are `edge-device-<id>`.
DEVICE_ID_MAX = 63 - len(SERVICE_PREFIX)
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# A Kubernetes label value (the device type becomes one).
LABEL_VALUE = r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"

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


def checked_namespace(namespace: str) -> str:
    if not is_dns_label(namespace):
        raise ValueError(f"namespace {namespace[:80]!r} is not a DNS-1123 label (a Kubernetes namespace name)")
    return namespace


def normalise_device_id(raw: str) -> str:
    """Ids are host names, which are case-insensitive: every path lower-cases them the same way (the original edge
    server did not)."""
    device_id = raw.lower()
    if not is_dns_label(device_id, DEVICE_ID_MAX):
        raise InvalidConfig(
            f"device_id {raw[:80]!r} must be a DNS-1123 label (lower-case letters, digits and '-', starting and ending"
            f" with a letter or digit) of at most {DEVICE_ID_MAX} characters, so that the Kubernetes name"
            f" '{SERVICE_PREFIX}<device_id>' fits in 63"
        )
    return device_id


def public_config(config: dict[str, Any]) -> dict[str, Any]:
    """What GET /config/{id} answers a device (the original edge server's shape): null optional fields are left out."""
    return {key: value for key, value in config.items() if not (key in DEFAULTS and value is None)}
