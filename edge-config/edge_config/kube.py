"""Healthy edge devices as Kubernetes objects, so Prometheus scrapes them like pods.

Per device: a headless, selector-less Service `edge-device-<id>` (port `metrics`), its Endpoints and a
discovery.k8s.io/v1 EndpointSlice, all labelled `app=edge-exporter` (what the original edge server's ServiceMonitor
selects; docs/compatibility.md), `device_id`, `device_type`, `app.kubernetes.io/managed-by=edge-config` and the original
edge server's `managed_by=edge-metrics-server` (what its documented `kubectl -l managed_by=edge-metrics-server`
selects). Only objects with the first of those (or `managed_by=edge-config`, which earlier versions set) are ever
changed or deleted. A device whose address cannot be an endpoint (loopback, link-local) is skipped, with the reason. The
Endpoints carry `endpointslice.kubernetes.io/skip-mirror` so the cluster's mirroring controller does not add a second
slice beside ours.
"""

import asyncio
import contextlib
import ipaddress
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
import yaml
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from titanium_common import kube
from titanium_common.errors import ServiceError
from titanium_common.lease import Lease
from titanium_common.loops import raise_if_cancelling

from .addresses import kubernetes_refusal
from .configs import SERVICE_PREFIX
from .health import HealthMonitor
from .models import iso, utcnow
from .settings import EdgeConfigSettings
from .store import DeviceNotFound, DeviceStore

log = logging.getLogger("edge_config.kube")

MANAGER = "edge-config"
MANAGER_LABEL = "app.kubernetes.io/managed-by"
# The original edge server's label and value, kept so that its documented selector still finds the objects.
ORIGINAL_LABEL, ORIGINAL_MANAGER = "managed_by", "edge-metrics-server"
# What marks an object as ours: the standard label, or the original edge server's key with our name (set by earlier
# versions).
OWNED_SELECTORS = (f"{MANAGER_LABEL}={MANAGER}", f"{ORIGINAL_LABEL}={MANAGER}")
PORT_NAME = "metrics"
SYNC_OUTCOMES = ("created", "updated", "deleted", "failed", "unchanged", "kept", "skipped")


class KubeUnavailable(ServiceError):
    """The cluster cannot be used: not configured (503), unreachable (503), or it refused the call (502)."""

    def __init__(self, status_code: int, detail: str, error: str | None = None) -> None:
        # `error`: the original edge server's key for "no cluster", which its clients read.
        super().__init__(detail, status_code=status_code, extra={"error": error} if error else None)


NOT_INITIALIZED = "Kubernetes client not initialized"


def service_name(device_id: str) -> str:
    return SERVICE_PREFIX + device_id


def _labels(record: dict[str, Any]) -> dict[str, str]:
    return {
        "app": "edge-exporter",
        "device_id": record["device_id"],
        "device_type": record["config"]["device_type"],
        ORIGINAL_LABEL: ORIGINAL_MANAGER,
        MANAGER_LABEL: MANAGER,
    }


def is_ours(obj: dict[str, Any]) -> bool:
    labels = obj["metadata"].get("labels") or {}
    return labels.get(MANAGER_LABEL) == MANAGER or labels.get(ORIGINAL_LABEL) == MANAGER


def endpoint_refusal(record: dict[str, Any]) -> str | None:
    """Why the device cannot be an endpoint (no address, or one Kubernetes refuses), or None."""
    ip = record["config"].get("ip_address")
    return "device has no ip_address" if not ip else kubernetes_refusal(ip)


def _metadata(record: dict[str, Any], namespace: str, **extra_labels: str) -> dict[str, Any]:
    name = service_name(record["device_id"])
    return {"name": name, "namespace": namespace, "labels": _labels(record) | extra_labels}


def device_objects(record: dict[str, Any], namespace: str) -> list[dict[str, Any]]:
    """The Service, Endpoints and EndpointSlice of one device with an address."""
    config_ = record["config"]
    ip, port = config_["ip_address"], config_["port"]
    name = service_name(record["device_id"])
    ports = [{"name": PORT_NAME, "port": port, "protocol": "TCP"}]
    family = "IPv6" if ipaddress.ip_address(ip).version == 6 else "IPv4"
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _metadata(record, namespace),
            "spec": {"clusterIP": "None", "ports": [{**ports[0], "targetPort": port}]},
        },
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": _metadata(record, namespace, **{"endpointslice.kubernetes.io/skip-mirror": "true"}),
            "subsets": [{"addresses": [{"ip": ip}], "ports": ports}],
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": _metadata(
                record,
                namespace,
                **{"kubernetes.io/service-name": name, "endpointslice.kubernetes.io/managed-by": MANAGER},
            ),
            "addressType": family,
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}],
            "ports": ports,
        },
    ]


def manifests_yaml(records: list[dict[str, Any]], namespace: str) -> str:
    """The objects of the devices that can be endpoints; each skipped one named in a comment with the reason."""
    skipped = [(r["device_id"], why) for r in records if (why := endpoint_refusal(r)) is not None]
    documents = [obj for r in records if endpoint_refusal(r) is None for obj in device_objects(r, namespace)]
    notes = "".join(f"# skipped {device_id}: {why}\n" for device_id, why in skipped)
    if not documents:
        return notes + f"# no healthy edge devices with an address to map into namespace {namespace}\n"
    return notes + yaml.safe_dump_all(documents, sort_keys=False)


def _contains(actual: Any, wanted: Any) -> bool:
    """Whether `actual` (as the server returns it, with its own defaults) already holds everything `wanted` sets."""
    if isinstance(wanted, dict):
        return isinstance(actual, dict) and all(_contains(actual.get(k), v) for k, v in wanted.items())
    if isinstance(wanted, list):
        return isinstance(actual, list) and len(actual) == len(wanted) and all(map(_contains, actual, wanted))
    return actual == wanted


@dataclass(frozen=True)
class _Kind:
    kind: str
    api: str  # "core" or "discovery"
    suffix: str  # as in read_namespaced_<suffix>


KINDS = (
    _Kind("Service", "core", "service"),
    _Kind("Endpoints", "core", "endpoints"),
    _Kind("EndpointSlice", "discovery", "endpoint_slice"),
)


class Refused(Exception):
    """An object of the device's name exists but is not ours: it is left alone and the device reported failed."""


async def connect(settings: EdgeConfigSettings) -> tuple[kube.KubeConnection | None, str]:
    """The configured cluster (titanium_common.kube's rules) and where it is, or None and why not. Never raises:
    edge-config works without a cluster."""
    if settings.kube_mode == "off":
        return None, "Kubernetes is turned off (KUBE_MODE=off)"
    try:
        connection = await kube.connect(
            kubeconfig=settings.kubeconfig_path,
            context=settings.kube_context,
            mode=settings.kube_mode,
            timeout_s=settings.kube_timeout_s,
        )
    except kube.KubeConfigError as exc:
        log.warning("no Kubernetes cluster: %s; /kubernetes/* answers 503 (manifests still work)", exc)
        return None, str(exc)
    return connection, connection.where


class KubeSync:
    """`connection` None: every cluster call answers 503 with `where` (why there is none)."""

    def __init__(
        self,
        store: DeviceStore,
        monitor: HealthMonitor,
        settings: EdgeConfigSettings,
        connection: kube.KubeConnection | None,
        where: str,
    ) -> None:
        self.store = store
        self.monitor = monitor
        self.grace = settings.unhealthy_grace
        self.timeout_s = settings.kube_timeout_s
        self.concurrency = settings.kube_sync_concurrency
        self.default_namespace = settings.kube_namespace
        self.sync_interval_s = settings.sync_interval_s
        self.connection = connection
        self.where = where
        self.last_sync: dict[str, Any] | None = None
        self._lock = asyncio.Lock()
        self._apis: dict[str, Any] = {}
        if connection is not None:
            api_client = connection.api_client
            self._apis = {"core": client.CoreV1Api(api_client), "discovery": client.DiscoveryV1Api(api_client)}

    # ---- plumbing -------------------------------------------------------------------------------------------

    def _require(self) -> None:
        if self.connection is None:
            raise KubeUnavailable(503, self.where, NOT_INITIALIZED)

    async def _call(self, kind: _Kind, verb: str, *args, **kwargs) -> Any:
        method = getattr(self._apis[kind.api], f"{verb}_namespaced_{kind.suffix}")
        return await method(*args, **kwargs)

    def _plain(self, obj: Any) -> dict[str, Any]:
        plain = self.connection.api_client.sanitize_for_serialization(obj)
        plain.get("metadata", {}).pop("managedFields", None)
        return plain

    async def _read(self, kind: _Kind, name: str, namespace: str) -> dict[str, Any] | None:
        try:
            return self._plain(await self._call(kind, "read", name, namespace))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def _managed(self, kind: _Kind, namespace: str) -> list[dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for selector in OWNED_SELECTORS:
            listing = await self._call(kind, "list", namespace, label_selector=selector)
            for item in listing.items:
                plain = self._plain(item)
                found[plain["metadata"]["name"]] = plain
        return list(found.values())

    @contextlib.asynccontextmanager
    async def _cluster_errors(self):
        """Failures of the whole call (not of one device) as 502/503/504 naming the Kubernetes API."""
        try:
            yield
        except ApiException as exc:
            raise KubeUnavailable(502, kube.failure_reason(exc)) from exc
        except TimeoutError as exc:  # before OSError, which it is
            raise KubeUnavailable(504, kube.failure_reason(exc, self.timeout_s)) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise KubeUnavailable(503, kube.failure_reason(exc)) from exc

    # ---- one device -----------------------------------------------------------------------------------------

    async def _apply(self, record: dict[str, Any], namespace: str) -> str:
        """Create or update the device's three objects: "created", "updated" or "unchanged"."""
        outcome = "unchanged"
        for kind, wanted in zip(KINDS, device_objects(record, namespace), strict=True):
            name = wanted["metadata"]["name"]
            existing = await self._read(kind, name, namespace)
            if existing is None:
                await self._call(kind, "create", namespace, wanted)
                # A new Service means a new device; a missing Endpoints or slice beside an old one is a repair.
                outcome = "created" if kind.kind == "Service" else outcome if outcome == "created" else "updated"
                continue
            if not is_ours(existing):
                raise Refused(f"{kind.kind} {namespace}/{name} exists and is not managed by {MANAGER}")
            if not _contains(existing, wanted):
                wanted["metadata"]["resourceVersion"] = existing["metadata"].get("resourceVersion")
                await self._call(kind, "replace", name, namespace, wanted)
                if outcome == "unchanged":
                    outcome = "updated"
        return outcome

    async def _remove(self, device_id: str, namespace: str) -> list[dict[str, str]]:
        """Delete the device's objects that we manage; the ones that were there."""
        name = service_name(device_id)
        deleted = []
        for kind in KINDS:
            existing = await self._read(kind, name, namespace)
            if existing is None or not is_ours(existing):
                continue
            try:
                await self._call(kind, "delete", name, namespace)
            except ApiException as exc:
                if exc.status != 404:
                    raise
            deleted.append({"kind": kind.kind, "name": name})
        return deleted

    def _verdict(self, device_id: str, record: dict[str, Any] | None) -> tuple[str, str | None]:
        """What a sync does with a device: ("apply" | "delete" | "skip" | "keep", why)."""
        if record is None:
            return "delete", "device is no longer registered"
        if not record["config"].get("ip_address"):
            return "delete", "device has no ip_address"
        refusal = kubernetes_refusal(record["config"]["ip_address"])
        if refusal is not None:
            return "skip", refusal
        health = self.monitor.of(record)
        if health.status == "healthy":
            return "apply", None
        if health.status == "unknown":
            return "keep", "not probed yet at its current address"
        if health.consecutive_failures >= self.grace:
            return "delete", f"{health.status} for {health.consecutive_failures} consecutive probes"
        return "keep", f"{health.status}, {health.consecutive_failures} of {self.grace} failed probes before removal"

    async def _sync_one(self, device_id: str, record: dict[str, Any] | None, namespace: str) -> dict[str, Any]:
        item: dict[str, Any] = {"device_id": device_id, "service": service_name(device_id), "error": None}
        verdict, why = self._verdict(device_id, record)
        try:
            if verdict == "apply":
                item["status"] = await self._apply(record, namespace)
            elif verdict == "delete":
                # Nothing left to delete means another call removed it first: the cluster is as wanted.
                item["status"] = "deleted" if await self._remove(device_id, namespace) else "unchanged"
                item["reason"] = why
            elif verdict == "skip":
                # Objects of an earlier, valid address are stale now: they go.
                await self._remove(device_id, namespace)
                item["status"], item["reason"] = "skipped", why
            else:
                item["status"], item["reason"] = "kept", why
        except Refused as exc:
            item["status"], item["error"] = "failed", str(exc)
        except (ApiException, aiohttp.ClientError, OSError) as exc:  # OSError includes TimeoutError
            item["status"], item["error"] = "failed", kube.failure_reason(exc, self.timeout_s)
        if item["status"] == "failed":
            log.warning("sync of %s into %s failed: %s", device_id, namespace, item["error"])
        return item

    # ---- the API ----------------------------------------------------------------------------------------------

    async def sync(self, namespace: str, device_id: str | None = None) -> dict[str, Any]:
        """Healthy devices → objects; managed objects of devices gone (or failing past the grace) → deleted."""
        self._require()
        try:
            return await self._sync(namespace, device_id)
        except KubeUnavailable as exc:
            self.last_sync = {"at": iso(utcnow()), "namespace": namespace, "device_id": device_id, "error": exc.detail}
            raise

    async def _sync(self, namespace: str, device_id: str | None) -> dict[str, Any]:
        async with self._lock, self._cluster_errors():
            records = {r["device_id"]: r for r in await self.store.all()}
            managed: set[str] = set()
            for kind in KINDS:
                for obj in await self._managed(kind, namespace):
                    managed.add(obj["metadata"].get("labels", {}).get("device_id") or "")
            managed.discard("")
            healthy = {i for i, r in records.items() if self._verdict(i, r)[0] == "apply"}
            skipped = {i for i, r in records.items() if self._verdict(i, r)[0] == "skip"}
            wanted = healthy | managed | skipped
            if device_id is not None:
                if device_id not in records and device_id not in managed:
                    raise DeviceNotFound(device_id)
                wanted &= {device_id}
                healthy &= {device_id}
            limit = asyncio.Semaphore(self.concurrency)

            async def one(i: str) -> dict[str, Any]:
                async with limit:
                    return await self._sync_one(i, records.get(i), namespace)

            items = await asyncio.gather(*(one(i) for i in sorted(wanted)))
        result: dict[str, Any] = {"status": "synced", "namespace": namespace}
        for status in SYNC_OUTCOMES:
            result[status] = [item for item in items if item["status"] == status]
        result["total_healthy"] = len(healthy)
        self.last_sync = {
            "at": iso(utcnow()),
            "namespace": namespace,
            "device_id": device_id,
            **{key: len(result[key]) for key in SYNC_OUTCOMES},
            "total_healthy": result["total_healthy"],
        }
        return result

    async def cleanup(self, namespace: str) -> dict[str, Any]:
        """Delete every object we manage in `namespace` (and nothing else)."""
        self._require()
        deleted: dict[str, list[str]] = {kind.kind: [] for kind in KINDS}
        async with self._lock, self._cluster_errors():
            for kind in KINDS:
                for name in sorted(obj["metadata"]["name"] for obj in await self._managed(kind, namespace)):
                    try:
                        await self._call(kind, "delete", name, namespace)
                    except ApiException as exc:
                        if exc.status != 404:
                            raise
                    deleted[kind.kind].append(name)
        return {
            "status": "cleaned",
            "deleted_services": deleted["Service"],
            "deleted_endpoints": deleted["Endpoints"],
            "deleted_endpointslices": deleted["EndpointSlice"],
            "namespace": namespace,
        }

    async def resources(self, namespace: str, device_id: str) -> dict[str, Any]:
        self._require()
        name = service_name(device_id)
        async with self._cluster_errors():
            found = {kind.kind: await self._read(kind, name, namespace) for kind in KINDS}
        if not any(found.values()):
            raise DeviceNotFound(device_id, f"no Kubernetes objects named {name} in namespace {namespace}")
        return {
            "device_id": device_id,
            "namespace": namespace,
            "service": found["Service"],
            "endpoints": found["Endpoints"],
            "endpointslice": found["EndpointSlice"],
        }

    async def delete_resources(self, namespace: str, device_id: str) -> dict[str, Any]:
        self._require()
        async with self._lock, self._cluster_errors():
            deleted = await self._remove(device_id, namespace)
        if not deleted:
            name = service_name(device_id)
            raise DeviceNotFound(device_id, f"no objects named {name} managed by {MANAGER} in namespace {namespace}")
        return {"status": "deleted", "device_id": device_id, "namespace": namespace, "deleted": deleted}

    async def health(self) -> dict[str, Any]:
        """The API server answers a list of our own kind in the default namespace (what our RBAC allows)."""
        self._require()
        async with self._cluster_errors():
            await self._call(KINDS[0], "list", self.default_namespace, limit=1)
        return {"status": "healthy", "api_server": self.where, "namespace": self.default_namespace}

    async def status(self) -> dict[str, Any]:
        self._require()
        async with self._cluster_errors():
            managed = await self._managed(KINDS[0], self.default_namespace)
        return {
            "status": "connected",
            "api_server": self.where,
            "namespace": self.default_namespace,
            "managed_services": sorted(obj["metadata"]["name"] for obj in managed),
            "unhealthy_grace": self.grace,
            "sync_interval_s": self.sync_interval_s,
            "last_sync": self.last_sync,
        }

    def stats(self) -> dict[str, Any]:
        return {"configured": self.connection is not None, "api_server": self.where, "last_sync": self.last_sync}

    async def run(self, lease: Lease | None = None) -> None:
        """The optional periodic sync into the default namespace, on the lease holder only (replicas would race)."""
        while True:
            await asyncio.sleep(self.sync_interval_s)
            if lease is not None and not lease.is_holder:
                continue
            try:
                await self.sync(self.default_namespace)
            except Exception as exc:  # the loop must outlive any one failed sync (recorded in last_sync)
                raise_if_cancelling()
                log.warning("periodic Kubernetes sync failed: %s", exc)

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()
