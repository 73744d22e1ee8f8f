"""Where cluster state comes from: a Kubernetes API (one or many clusters) or the simulated cluster."""

import logging
from typing import Protocol

from ..resources import Cluster

log = logging.getLogger("cluster_monitor.sources")


class Source(Protocol):
    name: str

    async def snapshot(self) -> list[Cluster]:
        """Every monitored cluster now; a cluster that cannot be read is reported with `error` set."""

    async def close(self) -> None: ...


async def open_source(settings) -> Source:
    """The configured source; with `auto`, Kubernetes only when at least one configured cluster answers."""
    from titanium_common.kube import KubeConfigError

    from .kubernetes import KubernetesSource, open_clients, open_karmada
    from .simulated import SimulatedSource

    if settings.cluster_source == "simulated":
        log.info("cluster source: simulated (CLUSTER_SOURCE=simulated)")
        return SimulatedSource(settings.simulation_seed)
    try:
        clients = await open_clients(settings)
    except KubeConfigError as exc:  # no usable kubeconfig or in-cluster config
        if settings.cluster_source == "kubernetes":
            raise RuntimeError(f"CLUSTER_SOURCE=kubernetes but no cluster configuration: {exc}") from exc
        log.info("cluster source: simulated (no Kubernetes configuration: %s)", exc)
        return SimulatedSource(settings.simulation_seed)
    source = KubernetesSource(
        clients, await open_karmada(settings), settings.metrics_api_version, settings.kubernetes_timeout_s
    )
    if settings.cluster_source == "kubernetes":
        log.info("cluster source: kubernetes (contexts %s)", ", ".join(clients))
        return source
    reasons = await source.probe()
    if any(reason is None for reason in reasons.values()):
        log.info("cluster source: kubernetes (answering: %s)", ", ".join(c for c, r in reasons.items() if r is None))
        return source
    await source.close()
    why = "; ".join(f"{c}: {r}" for c, r in reasons.items())
    log.info("cluster source: simulated (no configured cluster answers: %s)", why)
    return SimulatedSource(settings.simulation_seed)
