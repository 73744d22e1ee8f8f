"""cluster-monitor's own Prometheus figures: clusters and their nodes' Ready condition (the cluster alerts read
these)."""

from collections.abc import Callable

from prometheus_client import Metric
from prometheus_client.core import GaugeMetricFamily

from .collector import Monitor


class ClusterMetrics:
    """`titanium_cluster_ready{cluster}` and `titanium_cluster_node_ready{cluster, node}` (1 Ready, 0 NotReady), as
    the latest collection found them."""

    def __init__(self, current_monitor: Callable[[], Monitor | None]) -> None:
        # The monitor exists once the app has started; a scrape before that finds no cluster.
        self.current_monitor = current_monitor

    def collect(self) -> list[Metric]:
        clusters = GaugeMetricFamily("titanium_cluster_ready", "1 when the cluster is ready", labels=["cluster"])
        nodes = GaugeMetricFamily(
            "titanium_cluster_node_ready", "1 when the node's Ready condition holds", labels=["cluster", "node"]
        )
        monitor = self.current_monitor()
        for cluster in monitor.clusters if monitor is not None else ():
            clusters.add_metric([cluster.name], 1.0 if cluster.ready else 0.0)
            for node in cluster.nodes:
                nodes.add_metric([cluster.name, node.name], 1.0 if node.ready else 0.0)
        return [clusters, nodes]
