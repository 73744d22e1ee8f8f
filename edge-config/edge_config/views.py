"""A device as the device routes show it, and the counts over a list of them."""

from collections import Counter
from dataclasses import dataclass
from typing import Any

from .health import HealthMonitor
from .reloads import Reloader


@dataclass(frozen=True)
class DeviceViews:
    """A device as the device routes show it: its config, its latest probe result and its reloads."""

    monitor: HealthMonitor
    reloader: Reloader

    def of(self, record: dict[str, Any]) -> dict[str, Any]:
        config = record["config"]
        return {
            "device_id": record["device_id"],
            "device_type": config["device_type"],
            "ip_address": config.get("ip_address"),
            "port": config["port"],
            "reload_port": config["reload_port"],
            **self.monitor.of(record).public(),
            "version": record["version"],
            "last_reload": record["last_reload"],
            "reload_pending": self.reloader.pending(record["device_id"]),
        }


def counts(views: list[dict[str, Any]]) -> dict[str, Any]:
    healthy = sum(view["status"] == "healthy" for view in views)
    return {
        "total": len(views),
        "healthy": healthy,
        "unhealthy": len(views) - healthy,
        "by_status": dict(Counter(view["status"] for view in views)),
    }
