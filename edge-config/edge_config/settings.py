from typing import Literal

from pydantic import Field

from titanium_common.addresses import DEFAULT_PORTS, local_url
from titanium_common.db import DatabaseSettings
from titanium_common.lease import LeaseSettings
from titanium_common.revocations import RevocationSettings


class EdgeConfigSettings(DatabaseSettings, LeaseSettings, RevocationSettings):
    service_name: str = "edge-config"
    port: int = DEFAULT_PORTS["edge-config"]
    # With several replicas: the lease (LEASE_*, REDIS_URL) makes probes and the periodic sync run on one of them,
    # and the probe results reach the others through Redis under this prefix.
    redis_prefix: str = "titanium:edge-config:"

    # Admin tokens are verified by auth-service; revocations are heard on REVOCATION_CHANNEL (REDIS_URL).
    auth_service_url: str = local_url("auth-service")

    # Outbound address policy for device addresses: loopback, link-local (cloud metadata included) and the suite's
    # own service addresses are refused unless one of these CIDRs (comma-separated) admits them. Unset: loopback is
    # admitted in development and test (local device doubles), nothing outside them.
    device_allowed_cidrs: str | None = None
    # The suite's own services (comma-separated URLs): a device may never be one of them (the launcher sets it).
    suite_urls: str = ",".join(map(local_url, DEFAULT_PORTS))

    # Device health: every device is probed concurrently once per interval; answers come from the latest round.
    health_interval_s: float = Field(default=10.0, gt=0)
    health_timeout_s: float = Field(default=2.0, gt=0)
    probe_concurrency: int = Field(default=64, ge=1)
    # Consecutive failed probes before a managed Kubernetes object of the device is deleted by a sync.
    unhealthy_grace: int = Field(default=3, ge=1)

    # Reload after a config change: POST /reload with bounded retries, in the background.
    reload_timeout_s: float = Field(default=2.0, gt=0)
    reload_attempts: int = Field(default=3, ge=1, le=10)
    reload_backoff_s: float = Field(default=0.5, ge=0)
    local_config_timeout_s: float = Field(default=5.0, gt=0)

    # Kubernetes: auto = KUBECONFIG_PATH, else $KUBECONFIG or ~/.kube/config if present, else in-cluster if running
    # in a pod, else none (the /kubernetes/* calls answer 503; manifests still work).
    kube_mode: Literal["auto", "kubeconfig", "in-cluster", "off"] = "auto"
    kubeconfig_path: str = ""
    kube_context: str = ""
    kube_namespace: str = "monitoring"
    kube_timeout_s: float = Field(default=5.0, gt=0)
    kube_sync_concurrency: int = Field(default=8, ge=1)
    # Periodic sync of healthy devices into `kube_namespace`; 0 turns it off.
    sync_interval_s: float = Field(default=0.0, ge=0)
