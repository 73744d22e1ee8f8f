"""The event log (last N events) and the events a change between two snapshots means."""

from collections import deque
from collections.abc import Callable
from typing import Any, Literal

from titanium_common.clock import utc_iso

from .resources import Cluster

EventType = Literal["info", "critical", "auto", "success"]
Listener = Callable[[dict[str, Any]], None]


class EventLog:
    def __init__(self, size: int = 100) -> None:
        self._events: deque[dict[str, Any]] = deque(maxlen=size)
        self.listeners: list[Listener] = []

    def add(self, kind: EventType, message: str, cluster: str | None = None) -> dict[str, Any]:
        event = {"type": kind, "message": message, "timestamp": utc_iso(), "cluster": cluster}
        self._events.append(event)
        for listener in self.listeners:
            listener(event)
        return event

    def take(self, event: dict[str, Any]) -> None:
        """An event another replica raised: kept and pushed like one of ours, never raised again."""
        self._events.append(event)
        for listener in self.listeners:
            listener(event)

    def replace(self, events: list[dict[str, Any]]) -> None:
        self._events.clear()
        self._events.extend(events)

    def recent(self) -> list[dict[str, Any]]:
        return list(self._events)

    def __len__(self) -> int:
        return len(self._events)


def changes(before: list[Cluster], after: list[Cluster]) -> list[tuple[EventType, str, str]]:
    """(type, message, cluster) for every state change: not ready → critical, recovery → success,
    restarts → auto, new objects and scaling → info."""
    found: list[tuple[EventType, str, str]] = []
    previous = {cluster.id: cluster for cluster in before}
    for cluster in after:
        old = previous.get(cluster.id)
        if old is None:
            found.append(("info", f"{cluster.name}: now monitored", cluster.id))
            continue
        found += _cluster_changes(old, cluster)
    for gone in previous.keys() - {cluster.id for cluster in after}:
        found.append(("critical", f"{previous[gone].name}: no longer reported", gone))
    return found


def _cluster_changes(old: Cluster, new: Cluster) -> list[tuple[EventType, str, str]]:
    found: list[tuple[EventType, str, str]] = []
    cid = new.id
    if old.ready and not new.ready:
        reason = new.error or ("Karmada reports it not ready" if new.karmada_ready is False else "no node is Ready")
        found.append(("critical", f"{new.name} is in failure: {reason}", cid))
    elif not old.ready and new.ready:
        found.append(("success", f"{new.name} recovered: ready again", cid))
    if new.error is not None:
        return found  # nothing below is known while the cluster cannot be read
    old_nodes = {node.name: node for node in old.nodes}
    for node in new.nodes:
        was = old_nodes.get(node.name)
        if was is None:
            found.append(("info", f"{new.name}: node {node.name} joined", cid))
        elif was.ready and not node.ready:
            found.append(("critical", f"{new.name}: node {node.name} is NotReady", cid))
        elif not was.ready and node.ready:
            found.append(("success", f"{new.name}: node {node.name} is Ready again", cid))
    for name in old_nodes.keys() - {node.name for node in new.nodes}:
        found.append(("info", f"{new.name}: node {name} left the cluster", cid))
    old_pods = {pod.key: pod for pod in old.pods}
    for pod in new.pods:
        was = old_pods.get(pod.key)
        if was is None:
            found.append(("info", f"{new.name}: pod {pod.namespace}/{pod.name} started on {pod.node}", cid))
        elif pod.restarts > was.restarts:
            found.append(("auto", f"{new.name}: pod {pod.namespace}/{pod.name} restarted ({pod.restarts})", cid))
    old_deployments = {(d.namespace, d.name): d for d in old.deployments}
    for deployment in new.deployments:
        was = old_deployments.get((deployment.namespace, deployment.name))
        if was is not None and was.replicas != deployment.replicas:
            found.append(
                (
                    "info",
                    f"{new.name}: deployment {deployment.namespace}/{deployment.name} scaled "
                    f"from {was.replicas} to {deployment.replicas}",
                    cid,
                )
            )
    return found
