"""edge-config's API (routes only): the device-facing paths at the root, mounted again under /api/edge."""

import asyncio
from collections import Counter
from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException
from fastapi.responses import JSONResponse, PlainTextResponse

from titanium_common.contracts import errors
from titanium_common.deps import AdminUser, from_state
from titanium_common.errors import error_body

from .access import DeviceOrAdmin, PolicyDep, Reader
from .configs import checked_namespace, normalise_device_id
from .configs import public_config as shown
from .devices import DeviceClient
from .health import HealthMonitor
from .kube import KubeSync, manifests_yaml
from .registration import checked_address, config_from_body, current_record, patched, registration, reload_after_change
from .reloads import Reloader, reload_address
from .schemas import (
    Cleaned,
    ConfigBody,
    ConfigCreated,
    ConfigDeleted,
    ConfigHistory,
    ConfigList,
    ConfigPatch,
    ConfigPatched,
    ConfigStored,
    DeviceConfig,
    DeviceList,
    DevicePatch,
    DevicePatched,
    DeviceView,
    KubeHealth,
    KubeResources,
    KubeStatus,
    LocalConfig,
    MetricsSummary,
    ReloadAll,
    ReloadFailed,
    ReloadResult,
    ResourcesDeleted,
    SyncRequest,
    SyncResult,
)
from .settings import EdgeConfigSettings
from .store import DeviceStore
from .views import DeviceViews, counts

router = APIRouter()

# Readers need a token (401) of the right role (403); writes also refuse bad addresses (422) and oversized configs
# (413); Kubernetes calls answer 503 when no cluster is configured or reachable.
READ = errors(401, 403)
LOOKUP = errors(401, 403, 404)
WRITE = errors(401, 403, 404, 409, 413)
KUBE = errors(401, 403, 404, 502, 503, 504)


async def _device_id(device_id: str) -> str:
    return normalise_device_id(device_id)


DeviceId = Annotated[str, Depends(_device_id)]


SettingsDep = Annotated[EdgeConfigSettings, Depends(from_state("settings"))]
StoreDep = Annotated[DeviceStore, Depends(from_state("store"))]
MonitorDep = Annotated[HealthMonitor, Depends(from_state("monitor"))]
ReloaderDep = Annotated[Reloader, Depends(from_state("reloader"))]
KubeDep = Annotated[KubeSync, Depends(from_state("kube"))]
DevicesDep = Annotated[DeviceClient, Depends(from_state("devices"))]


async def _namespace(settings: SettingsDep, namespace: str | None = None) -> str:
    if namespace is None:
        return settings.kube_namespace
    try:
        return checked_namespace(namespace)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc


Namespace = Annotated[str, Depends(_namespace)]


async def _views(monitor: MonitorDep, reloader: ReloaderDep) -> DeviceViews:
    return DeviceViews(monitor, reloader)


ViewsDep = Annotated[DeviceViews, Depends(_views)]


# ---- configs ------------------------------------------------------------------------------------------------


@router.get("/config", responses=READ, response_model_exclude_unset=True)
async def list_configs(store: StoreDep, _: Reader) -> ConfigList:
    records = await store.all()
    return {"configs": [{"device_id": r["device_id"], **shown(r["config"])} for r in records], "total": len(records)}


@router.get("/config/{device_id}", responses=LOOKUP, response_model_exclude_unset=True)
async def get_config(device_id: DeviceId, store: StoreDep, _: DeviceOrAdmin) -> DeviceConfig:
    """What the device fetches: its config, in the shape the original devices read."""
    return shown((await store.get(device_id))["config"])


@router.put("/config/{device_id}", responses=WRITE)
async def put_config(
    device_id: DeviceId,
    body: ConfigBody,
    store: StoreDep,
    policy: PolicyDep,
    reloader: ReloaderDep,
    caller: DeviceOrAdmin,
) -> ConfigStored:
    config = config_from_body(device_id, body)
    if caller.device_facing:
        config = registration(config, await current_record(store, device_id), caller)
    status, record, changed = await store.put(device_id, checked_address(policy, config))
    return {
        "status": status,
        "device_id": device_id,
        "reload_triggered": reload_after_change(reloader, record),
        "version": record["version"],
        "changed": changed,
    }


@router.post("/config/{device_id}", status_code=201, responses=WRITE)
async def create_config(
    device_id: DeviceId, body: ConfigBody, store: StoreDep, policy: PolicyDep, _: AdminUser
) -> ConfigCreated:
    if body.ip_address is None:
        raise HTTPException(422, "ip_address is required to create a device with POST")
    record = await store.create(device_id, checked_address(policy, config_from_body(device_id, body)))
    return {"status": "created", "device_id": device_id, "version": record["version"]}


@router.patch("/config/{device_id}", responses=WRITE, response_model_exclude_unset=True)
async def patch_config(
    device_id: DeviceId,
    body: ConfigPatch,
    store: StoreDep,
    policy: PolicyDep,
    reloader: ReloaderDep,
    _: AdminUser,
) -> ConfigPatched:
    record, changed = await store.patch(
        device_id, lambda current: checked_address(policy, patched(device_id, current, body))
    )
    return {
        "status": "patched",
        "device_id": device_id,
        "reload_triggered": reload_after_change(reloader, record),
        "version": record["version"],
        "changed": changed,
        "config": shown(record["config"]),
    }


@router.delete("/config/{device_id}", responses=LOOKUP)
async def delete_config(device_id: DeviceId, store: StoreDep, monitor: MonitorDep, _: AdminUser) -> ConfigDeleted:
    await store.delete(device_id)
    monitor.forget(device_id)
    return {"status": "deleted", "device_id": device_id}


@router.get("/config/{device_id}/history", responses=LOOKUP, response_model_exclude_unset=True)
async def config_history(device_id: DeviceId, store: StoreDep, _: Reader) -> ConfigHistory:
    versions = [version | {"config": shown(version["config"])} for version in await store.history(device_id)]
    return {"device_id": device_id, "versions": versions, "total": len(versions)}


# ---- devices and health ---------------------------------------------------------------------------------------


@router.get("/devices", responses=READ)
async def list_devices(store: StoreDep, views: ViewsDep, _: Reader) -> DeviceList:
    """From the latest background probe round; never probes inside the request."""
    shown_views = [views.of(record) for record in await store.all()]
    return {"devices": shown_views, **counts(shown_views), "last_probe_round": views.monitor.last_round}


@router.get("/devices/{device_id}/status", responses=LOOKUP)
async def device_status(device_id: DeviceId, store: StoreDep, views: ViewsDep, _: Reader) -> DeviceView:
    return views.of(await store.get(device_id))


@router.patch("/devices/{device_id}", responses=WRITE)
async def patch_device(
    device_id: DeviceId, body: DevicePatch, store: StoreDep, policy: PolicyDep, views: ViewsDep, _: AdminUser
) -> DevicePatched:
    """The basic fields only, and no reload (the device's own config is unchanged)."""
    record, changed = await store.patch(
        device_id, lambda current: checked_address(policy, patched(device_id, current, body)), action="device-patched"
    )
    return {"status": "updated", "device_id": device_id, "changed": changed, "device": views.of(record)}


@router.get("/devices/{device_id}/local-config", responses=errors(401, 403, 404, 409, 502, 504))
async def local_config(device_id: DeviceId, store: StoreDep, devices: DevicesDep, _: AdminUser) -> LocalConfig:
    """The config the device itself runs with, from its `GET /config` (5 s by default)."""
    ip, port = reload_address(await store.get(device_id))
    return {"device_id": device_id, "local_config": await devices.local_config(ip, port)}


@router.post(
    "/devices/{device_id}/reload",
    response_model=ReloadResult,
    responses=errors(401, 403, 404, 409) | {502: {"model": ReloadFailed, "description": "the device failed"}},
)
async def reload_device(device_id: DeviceId, store: StoreDep, reloader: ReloaderDep, _: AdminUser) -> JSONResponse:
    ip, port = reload_address(await store.get(device_id))
    result = await reloader.reload_now(device_id, ip, port)
    if result["status"] == "reloaded":
        return JSONResponse(result)
    return JSONResponse(error_body(f"reload of {device_id!r} failed: {result['error']}") | result, status_code=502)


@router.post("/devices/reload", responses=READ)
async def reload_all(store: StoreDep, reloader: ReloaderDep, _: AdminUser) -> ReloadAll:
    """Every device with an address, concurrently; one device's failure is its own result."""
    records = [r for r in await store.all() if r["config"].get("ip_address")]
    results = await asyncio.gather(*(reloader.reload_now(r["device_id"], *reload_address(r)) for r in records))
    success = sum(result["status"] == "reloaded" for result in results)
    return {"results": results, "total": len(results), "success": success, "failed": len(results) - success}


@router.get("/metrics/summary", responses=READ)
async def metrics_summary(store: StoreDep, views: ViewsDep, _: Reader) -> MetricsSummary:
    shown_views = [views.of(record) for record in await store.all()]
    by_type = Counter(view["device_type"] for view in shown_views)
    return {**counts(shown_views), "by_device_type": dict(by_type), "last_probe_round": views.monitor.last_round}


# ---- Kubernetes ---------------------------------------------------------------------------------------------------

SyncBody = Annotated[SyncRequest | None, Body()]


@router.post("/kubernetes/sync", responses=KUBE)
async def kube_sync(kube: KubeDep, settings: SettingsDep, _: AdminUser, body: SyncBody = None) -> SyncResult:
    return await kube.sync((body.namespace if body else None) or settings.kube_namespace)


@router.post("/kubernetes/sync/{device_id}", responses=KUBE)
async def kube_sync_device(
    device_id: DeviceId, kube: KubeDep, settings: SettingsDep, _: AdminUser, body: SyncBody = None
) -> SyncResult:
    return await kube.sync((body.namespace if body else None) or settings.kube_namespace, device_id)


@router.get(
    "/kubernetes/manifests",
    response_class=PlainTextResponse,
    responses=READ | {200: {"content": {"application/yaml": {}}, "description": "multi-document YAML"}},
)
async def kube_manifests(namespace: Namespace, store: StoreDep, monitor: MonitorDep, _: Reader) -> PlainTextResponse:
    """Multi-document YAML of the healthy devices' objects, for `kubectl apply -f`; needs no cluster."""
    records = [r for r in await store.all() if r["config"].get("ip_address") and monitor.of(r).status == "healthy"]
    return PlainTextResponse(manifests_yaml(records, namespace), media_type="application/yaml")


@router.delete("/kubernetes/cleanup", responses=KUBE)
async def kube_cleanup(namespace: Namespace, kube: KubeDep, _: AdminUser) -> Cleaned:
    return await kube.cleanup(namespace)


@router.get("/kubernetes/status", responses=KUBE)
async def kube_status(kube: KubeDep, _: Reader) -> KubeStatus:
    return await kube.status()


@router.get("/kubernetes/health", responses=KUBE)
async def kube_health(kube: KubeDep, _: Reader) -> KubeHealth:
    return await kube.health()


@router.get("/kubernetes/resources/{device_id}", responses=KUBE)
async def kube_resources(device_id: DeviceId, namespace: Namespace, kube: KubeDep, _: Reader) -> KubeResources:
    return await kube.resources(namespace, device_id)


@router.delete("/kubernetes/resources/{device_id}", responses=KUBE)
async def kube_delete_resources(
    device_id: DeviceId, namespace: Namespace, kube: KubeDep, _: AdminUser
) -> ResourcesDeleted:
    return await kube.delete_resources(namespace, device_id)
