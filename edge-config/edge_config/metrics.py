"""edge-config's own Prometheus figures: devices by their latest probed health (the edge alerts read these)."""

from prometheus_client import Metric
from prometheus_client.core import GaugeMetricFamily

from .health import STATUSES, HealthMonitor


class DeviceMetrics:
    """`titanium_edge_devices{status}` from the latest probe round (this replica's or, as a follower, the lease
    holder's): every status, 0 included, so that a query over it is never empty."""

    def __init__(self, monitor: HealthMonitor) -> None:
        self.monitor = monitor

    def collect(self) -> list[Metric]:
        last_round = self.monitor.last_round or {}
        by_status = last_round.get("by_status", {})
        gauge = GaugeMetricFamily("titanium_edge_devices", "Devices by their latest probed health", labels=["status"])
        for status in STATUSES:
            gauge.add_metric([status], float(by_status.get(status, 0)))
        return [gauge]
