"""Reloads: after a config change the device is told to reload in the background, with bounded retries, and the
outcome is stored on the device; a newer change of the same device replaces a reload still in progress."""

import asyncio
import logging
from typing import Any

from fastapi import HTTPException

from titanium_common.loops import stop_tasks

from .devices import DeviceClient
from .models import utcnow
from .store import DeviceStore

log = logging.getLogger("edge_config.reloads")


class Reloader:
    def __init__(self, client: DeviceClient, store: DeviceStore, attempts: int, backoff_s: float) -> None:
        self.client = client
        self.store = store
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.tasks: dict[str, asyncio.Task] = {}
        self.outcomes = {"reloaded": 0, "failed": 0}

    def schedule(self, device_id: str, ip: str, port: int) -> None:
        previous = self.tasks.pop(device_id, None)
        if previous is not None:
            previous.cancel()
        task = asyncio.create_task(self._with_retries(device_id, ip, port), name=f"reload {device_id}")
        self.tasks[device_id] = task
        task.add_done_callback(lambda done: self.tasks.pop(device_id) if self.tasks.get(device_id) is done else None)

    def pending(self, device_id: str) -> bool:
        return device_id in self.tasks

    async def _with_retries(self, device_id: str, ip: str, port: int) -> None:
        for attempt in range(1, self.attempts + 1):
            error = await self.client.reload(ip, port)
            if error is None or attempt == self.attempts:
                break
            await asyncio.sleep(self.backoff_s * attempt)
        await self._record(device_id, attempt, error)

    async def reload_now(self, device_id: str, ip: str, port: int) -> dict[str, Any]:
        """One attempt, answered at once (what POST /devices/{id}/reload answers); also recorded."""
        error = await self.client.reload(ip, port)
        await self._record(device_id, 1, error)
        status = "reloaded" if error is None else "failed"
        return {"device_id": device_id, "status": status, "error": error}

    async def _record(self, device_id: str, attempts: int, error: str | None) -> None:
        status = "reloaded" if error is None else "failed"
        self.outcomes[status] += 1
        if error is not None:
            log.warning("reload of %s failed after %d attempt(s): %s", device_id, attempts, error)
        try:
            await self.store.record_reload(device_id, status, utcnow(), attempts, error)
        except Exception as exc:  # the outcome is also in the log and counters; the database may be down
            log.warning("could not record the reload of %s: %s", device_id, exc)

    async def close(self) -> None:
        await stop_tasks(list(self.tasks.values()))


def reload_address(record: dict[str, Any]) -> tuple[str, int]:
    config = record["config"]
    if not config.get("ip_address"):
        raise HTTPException(409, f"device {record['device_id']!r} has no ip_address")
    return config["ip_address"], config["reload_port"]
