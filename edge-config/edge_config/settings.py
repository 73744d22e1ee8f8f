from typing import Literal

from pydantic import Field

from titanium_common.addresses import DEFAULT_PORTS, local_url
from titanium_common.db import DatabaseSettings
from titanium_common.lease import LeaseSettings
from titanium_common.revocations import RevocationSettings


class EdgeConfigSettings(DatabaseSettings, LeaseSettings, RevocationSettings):
    service_name: str = "edge-config"
    port: int = DEFAULT_PORTS["edge-config"]
    redis_prefix: str = Field(
        default="titanium:edge-config:",
        description="With several replicas the lease makes probes and the periodic sync run on one of them, and "
        "the probe results reach the others through Redis under this prefix.",
    )
    auth_service_url: str = Field(
        default=local_url("auth-service"),
        description="Where auth-service verifies admin tokens (revocations are heard on `REVOCATION_CHANNEL`).",
    )
    device_allowed_cidrs: str | None = Field(
        default=None,
        description="Outbound address policy for device addresses: loopback, link-local (cloud metadata included) "
        "and the suite's own service addresses are refused unless one of these CIDRs (comma-separated) admits "
        "them. Unset: loopback is admitted in development and test (local device doubles), nothing outside them.",
    )
    suite_urls: str = Field(
        default=",".join(map(local_url, DEFAULT_PORTS)),
        description="The suite's own services (comma-separated URLs): a device may never be one of them (the "
        "launcher sets it).",
    )
    # Device health: every device is probed concurrently once per interval; answers come from the latest round.
    health_interval_s: float = Field(default=10.0, gt=0, description="How often every device is probed.")
    health_timeout_s: float = Field(default=2.0, gt=0, description="The wait for one device's `GET /health`.")
    probe_concurrency: int = Field(default=64, ge=1, description="Devices probed at once.")
    unhealthy_grace: int = Field(
        default=3,
        ge=1,
        description="Consecutive failed probes before a sync deletes a device's managed Kubernetes objects.",
    )
    # Reload after a config change: POST /reload with bounded retries, in the background.
    reload_timeout_s: float = Field(default=2.0, gt=0, description="The wait for a device's `POST /reload`.")
    reload_attempts: int = Field(default=3, ge=1, le=10, description="Reload attempts after a config change.")
    reload_backoff_s: float = Field(default=0.5, ge=0, description="The pause before a reload's next attempt.")
    local_config_timeout_s: float = Field(
        default=5.0, gt=0, description="The wait for a device's own `GET /config` (`/devices/{id}/local-config`)."
    )
    kube_mode: Literal["auto", "kubeconfig", "in-cluster", "off"] = Field(
        default="auto",
        description="How to reach Kubernetes (docs/architecture.md, Reaching Kubernetes); auto: a kubeconfig "
        "(`KUBECONFIG_PATH`, else `$KUBECONFIG`, else `~/.kube/config` if present) when there is one or "
        "`KUBE_CONTEXT` asks for one, else the pod's service account in a pod, else none (the `/kubernetes/*` calls "
        "answer 503 saying what is missing; manifests still work).",
    )
    kubeconfig_path: str = Field(default="", description="The kubeconfig file (empty: see `KUBE_MODE`).")
    kube_context: str = Field(default="", description="The kubeconfig context; empty: the current one.")
    kube_namespace: str = Field(
        default="monitoring", description="Where the devices' Services, Endpoints and EndpointSlices go."
    )
    kube_timeout_s: float = Field(default=5.0, gt=0, description="Every Kubernetes API request ends within it.")
    kube_sync_concurrency: int = Field(default=8, ge=1, description="Devices a sync writes at once.")
    sync_interval_s: float = Field(
        default=0.0, ge=0, description="Periodic sync of healthy devices into `KUBE_NAMESPACE`; 0 turns it off."
    )
