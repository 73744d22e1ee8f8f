from typing import Literal

from pydantic import Field, field_validator

from titanium_common.addresses import DEFAULT_PORTS
from titanium_common.lease import LeaseSettings


class ClusterMonitorSettings(LeaseSettings):
    service_name: str = "cluster-monitor"
    port: int = DEFAULT_PORTS["cluster-monitor"]
    # With REDIS_URL: one replica (the lease holder) collects and writes series and events under this prefix; every
    # replica serves them. Without it, each replica collects for itself.
    redis_prefix: str = "titanium:cluster-monitor:"
    # auto: Kubernetes when a configured cluster answers, else the simulated cluster (the log says which and why).
    cluster_source: Literal["auto", "kubernetes", "simulated"] = "auto"
    # Kubeconfig contexts to monitor, comma-separated; empty: the current context (or in-cluster config).
    cluster_contexts: str = ""
    kubeconfig: str = ""
    # Karmada control plane: member clusters and their Ready condition from clusters.cluster.karmada.io.
    karmada_kubeconfig: str = ""
    # The cluster's id when running in-cluster without a kubeconfig.
    cluster_name: str = "in-cluster"
    metrics_api_version: str = "v1beta1"
    kubernetes_timeout_s: float = Field(default=5.0, gt=0)
    collect_interval_s: float = Field(default=5.0, gt=0)
    max_data_points: int = Field(default=1000, ge=10)
    default_time_window: int = Field(default=3600, ge=1, le=86400)
    default_points: int = Field(default=100, ge=1)
    event_log_size: int = Field(default=100, ge=1)
    # Pushed objects unknown to the source are dropped after this long without a push (bounded memory).
    pushed_ttl_s: float = Field(default=300.0, gt=0)
    # With REDIS_URL: pushes acknowledged but not yet applied by the collector replica, at most (then 503).
    max_pending_pushes: int = Field(default=10000, ge=1)
    simulation_seed: int | None = None
    ws_push_interval_s: float = Field(default=5.0, gt=0)
    ws_queue_size: int = Field(default=64, ge=2)
    ws_send_timeout_s: float = Field(default=10.0, gt=0)
    # Metric pushes (POST .../metrics) need `Authorization: Bearer <one of these>` (comma-separated, so that a
    # token can be rotated without downtime). Empty: pushes are refused.
    collector_tokens: str = ""

    @property
    def collector_token_list(self) -> list[str]:
        return [token.strip() for token in self.collector_tokens.split(",") if token.strip()]

    @field_validator("cluster_contexts")
    @classmethod
    def _strip(cls, value: str) -> str:
        return ",".join(part.strip() for part in value.split(",") if part.strip())

    @property
    def contexts(self) -> list[str]:
        return [part for part in self.cluster_contexts.split(",") if part]
