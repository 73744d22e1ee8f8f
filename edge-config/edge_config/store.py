"""Device configs in the database: every change is a new version kept in `edge_config_versions`."""

import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import func, select, update

from titanium_common.db import ConflictError, Database, NotFoundError

from .configs import KNOWN_FIELDS
from .models import ConfigVersion, Device, iso, utcnow

log = logging.getLogger("edge_config.store")

T = TypeVar("T")


class DeviceNotFound(NotFoundError):
    """Answered in the original edge server's shape as well as the suite's (see api.py)."""

    def __init__(self, device_id: str, message: str | None = None) -> None:
        message = message or f"device {device_id!r} not found"
        # The original edge server's clients read error/device_id/message, the suite's read detail/request_id: both
        # are there.
        super().__init__(message, extra={"error": "Device not found", "device_id": device_id, "message": message})
        self.device_id = device_id


def _config_of(device: Device) -> dict[str, Any]:
    known = {name: getattr(device, name) for name in KNOWN_FIELDS}
    return known | (device.extra or {})


def _set_config(device: Device, config: dict[str, Any]) -> None:
    for name in KNOWN_FIELDS:
        setattr(device, name, config.get(name))
    device.extra = {key: value for key, value in config.items() if key not in KNOWN_FIELDS}


def _record(device: Device) -> dict[str, Any]:
    reload = None
    if device.reload_status is not None:
        reload = {
            "status": device.reload_status,
            "at": iso(device.reload_at),
            "attempts": device.reload_attempts,
            "error": device.reload_error,
        }
    return {
        "device_id": device.device_id,
        "config": _config_of(device),
        "version": device.version,
        "created_at": iso(device.created_at),
        "updated_at": iso(device.updated_at),
        "last_reload": reload,
    }


WRITE_ATTEMPTS = 5


async def _retrying(write: Callable[[], Awaitable[T]]) -> T:
    """Two first writers of a new device both find no row to lock and collide on its version number: the loser
    reads again and writes on top, so no change is lost or refused."""
    for _ in range(WRITE_ATTEMPTS - 1):
        with contextlib.suppress(ConflictError):
            return await write()
    return await write()


class DeviceStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def _next_version(self, session, device_id: str) -> int:
        query = select(func.max(ConfigVersion.version)).where(ConfigVersion.device_id == device_id)
        latest = await session.scalar(query)
        return (latest or 0) + 1

    async def _insert(self, session, device_id: str, config: dict[str, Any]) -> Device:
        version = await self._next_version(session, device_id)
        device = Device(device_id=device_id, version=version, extra={})
        _set_config(device, config)
        session.add(device)
        session.add(ConfigVersion(device_id=device_id, version=version, action="created", config=config))
        await session.flush()
        return device

    async def put(self, device_id: str, config: dict[str, Any]) -> tuple[str, dict[str, Any], bool]:
        """Upsert: ("registered" | "updated", the record, whether the config changed)."""
        return await _retrying(lambda: self._put(device_id, config))

    async def _put(self, device_id: str, config: dict[str, Any]) -> tuple[str, dict[str, Any], bool]:
        async with self.db.transaction(f"device {device_id!r} was changed concurrently") as session:
            device = await session.get(Device, device_id, with_for_update=True)
            if device is None:
                device = await self._insert(session, device_id, config)
                return "registered", _record(device), True
            changed = self._change(session, device, config, "updated")
            if changed:
                await session.flush()
            return "updated", _record(device), changed

    def _change(self, session, device: Device, config: dict[str, Any], action: str) -> bool:
        if _config_of(device) == config:
            return False
        device.version += 1
        device.updated_at = utcnow()
        _set_config(device, config)
        session.add(ConfigVersion(device_id=device.device_id, version=device.version, action=action, config=config))
        return True

    async def create(self, device_id: str, config: dict[str, Any]) -> dict[str, Any]:
        exists = f"device {device_id!r} already exists"
        async with self.db.transaction(exists) as session:
            if await session.get(Device, device_id) is not None:
                raise ConflictError(exists)
            return _record(await self._insert(session, device_id, config))

    async def patch(
        self, device_id: str, change: Callable[[dict[str, Any]], dict[str, Any]], action: str = "patched"
    ) -> tuple[dict[str, Any], bool]:
        """Apply `change` (current config → new config) under a row lock; (the record, whether it changed)."""
        return await _retrying(lambda: self._patch(device_id, change, action))

    async def _patch(
        self, device_id: str, change: Callable[[dict[str, Any]], dict[str, Any]], action: str
    ) -> tuple[dict[str, Any], bool]:
        async with self.db.transaction(f"device {device_id!r} was changed concurrently") as session:
            device = await session.get(Device, device_id, with_for_update=True)
            if device is None:
                raise DeviceNotFound(device_id)
            changed = self._change(session, device, change(_config_of(device)), action)
            if changed:
                await session.flush()
            return _record(device), changed

    async def delete(self, device_id: str) -> dict[str, Any]:
        """Remove the device; its last config stays in the history as a `deleted` version."""
        async with self.db.transaction() as session:
            device = await session.get(Device, device_id, with_for_update=True)
            if device is None:
                raise DeviceNotFound(device_id)
            record = _record(device)
            last = record["config"]
            session.add(ConfigVersion(device_id=device_id, version=device.version + 1, action="deleted", config=last))
            await session.delete(device)
        log.info("deleted device %s (its history is kept)", device_id)
        return record

    async def get(self, device_id: str) -> dict[str, Any]:
        async with self.db.sessions() as session:
            device = await session.get(Device, device_id)
        if device is None:
            raise DeviceNotFound(device_id)
        return _record(device)

    async def all(self) -> list[dict[str, Any]]:
        async with self.db.sessions() as session:
            devices = await session.scalars(select(Device).order_by(Device.device_id))
            return [_record(device) for device in devices]

    async def history(self, device_id: str) -> list[dict[str, Any]]:
        async with self.db.sessions() as session:
            versions = await session.scalars(
                select(ConfigVersion).where(ConfigVersion.device_id == device_id).order_by(ConfigVersion.version)
            )
            rows = [
                {"version": v.version, "action": v.action, "config": v.config, "changed_at": iso(v.changed_at)}
                for v in versions
            ]
        if not rows:
            raise DeviceNotFound(device_id)
        return rows

    async def record_reload(self, device_id: str, status: str, at: datetime, attempts: int, error: str | None) -> None:
        """The outcome of a reload; a device deleted meanwhile has nothing to record it on."""
        async with self.db.transaction() as session:
            await session.execute(
                update(Device)
                .where(Device.device_id == device_id)
                .values(reload_status=status, reload_at=at, reload_attempts=attempts, reload_error=error)
            )
