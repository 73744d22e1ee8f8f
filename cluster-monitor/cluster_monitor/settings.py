from typing import Literal

from pydantic import Field, field_validator

from titanium_common.addresses import DEFAULT_PORTS
from titanium_common.lease import LeaseSettings


class ClusterMonitorSettings(LeaseSettings):
    service_name: str = "cluster-monitor"
    port: int = DEFAULT_PORTS["cluster-monitor"]
    redis_prefix: str = Field(
        default="titanium:cluster-monitor:",
        description="With `REDIS_URL`: one replica (the lease holder) collects and writes series and events under "
        "this prefix; every replica serves them. Without it, each replica collects for itself.",
    )
    cluster_source: Literal["auto", "kubernetes", "simulated"] = Field(
        default="auto",
        description="Where clusters come from; auto: Kubernetes when a configured cluster answers, else the "
        "simulated cluster (the log says which and why).",
    )
    cluster_contexts: str = Field(
        default="",
        description="Kubeconfig contexts to monitor, comma-separated; empty: the current context (or in-cluster "
        "config).",
    )
    kubeconfig: str = Field(
        default="",
        description="The kubeconfig (several files joined by `:` are merged, as kubectl does); empty: "
        "`~/.kube/config` if present, else the pod's service account.",
    )
    karmada_kubeconfig: str = Field(
        default="",
        description="A Karmada control plane's kubeconfig: member clusters and their Ready condition from "
        "`clusters.cluster.karmada.io`; empty: no Karmada.",
    )
    cluster_name: str = Field(
        default="in-cluster", description="The cluster's id when running in-cluster without a kubeconfig."
    )
    metrics_api_version: str = Field(default="v1beta1", description="The version of `metrics.k8s.io` read for usage.")
    kubernetes_timeout_s: float = Field(default=5.0, gt=0, description="Every Kubernetes API request ends within it.")
    collect_interval_s: float = Field(default=5.0, gt=0, description="How often the source is collected.")
    max_data_points: int = Field(
        default=1000, ge=10, description="Points kept per series, and the most one timeseries answer has."
    )
    default_time_window: int = Field(
        default=3600, ge=1, le=86400, description="A timeseries answer's window without `window=`, in seconds."
    )
    default_points: int = Field(default=100, ge=1, description="A timeseries answer's points without `points=`.")
    event_log_size: int = Field(default=100, ge=1, description="Events kept (`GET /api/events`).")
    pushed_ttl_s: float = Field(
        default=300.0,
        gt=0,
        description="Pushed objects unknown to the source are dropped after this long without a push (bounded memory).",
    )
    max_pending_pushes: int = Field(
        default=10000,
        ge=1,
        description="With `REDIS_URL`: pushes acknowledged but not yet applied by the collecting replica, at most "
        "(then 503).",
    )
    simulation_seed: int | None = Field(
        default=None, description="The simulated cluster's random seed (the same seed, the same story); unset: random."
    )
    ws_push_interval_s: float = Field(
        default=5.0, gt=0, description="The WebSocket feed sends `clusters` at least this often."
    )
    ws_queue_size: int = Field(
        default=64, ge=2, description="Messages queued per WebSocket client; past it the oldest are dropped."
    )
    ws_send_timeout_s: float = Field(
        default=10.0, gt=0, description="A WebSocket client that takes no message for this long is closed."
    )
    collector_tokens: str = Field(
        default="",
        description="Metric pushes (POST .../metrics) need `Authorization: Bearer <one of these>` (comma-separated, "
        "so that a token can be rotated without downtime). Empty: pushes are refused.",
    )

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
