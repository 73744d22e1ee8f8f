"""What a write of a device's config goes through: a PUT or PATCH body becomes the stored config, the outbound
address policy, the original device-facing registration rules, and the reload that follows a change."""

import json
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from fastapi import HTTPException
from pydantic import BaseModel

from .access import Caller
from .addresses import AddressPolicy
from .configs import DEFAULTS, KNOWN_FIELDS, MAX_CONFIG_BYTES, MAX_EXTRA_KEY, ConfigTooLarge, InvalidConfig
from .reloads import Reloader
from .schemas import BasicChange, ConfigBody
from .store import DeviceNotFound, DeviceStore


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


def patched(device_id: str, current: dict[str, Any], change: BasicChange) -> dict[str, Any]:
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


def checked_address(policy: AddressPolicy, config: dict[str, Any]) -> dict[str, Any]:
    """A config whose address and ports pass the outbound policy, else 422 saying why."""
    refusal = policy.check(config.get("ip_address"), config["reload_port"], config["port"])
    if refusal is not None:
        raise HTTPException(422, f"ip_address refused: {refusal}")
    return config


def registration(config: dict[str, Any], current: dict[str, Any] | None, caller: Caller) -> dict[str, Any]:
    """A PUT on the device-facing paths, as the original edge server took it: without `ip_address`, a device that
    registers itself is recorded at the connection's source address, and an update from loopback keeps a known
    address. Without a token a device may not move a registered device elsewhere (that takes the admin token)."""
    known = current["config"].get("ip_address") if current else None
    source = caller.source
    if caller.identity is None and known:
        from_elsewhere = source is None or (str(source) != known and not source.is_loopback)
        if from_elsewhere or config.get("ip_address") not in (None, known):
            raise HTTPException(
                403, f"device is registered at {known}: without an admin token only it may update it, and not its"
                " address", headers={"WWW-Authenticate": "Bearer"},
            )  # fmt: skip
    if config.get("ip_address") is None:
        if known:
            config["ip_address"] = known
        elif caller.identity is None and source is not None:
            config["ip_address"] = str(source)
    return config


async def current_record(store: DeviceStore, device_id: str) -> dict[str, Any] | None:
    try:
        return await store.get(device_id)
    except DeviceNotFound:
        return None


def reload_after_change(reloader: Reloader, record: dict[str, Any]) -> bool:
    """A changed device with a known address is told to reload (in the background)."""
    config = record["config"]
    if not config.get("ip_address"):
        return False
    reloader.schedule(record["device_id"], config["ip_address"], config["reload_port"])
    return True
