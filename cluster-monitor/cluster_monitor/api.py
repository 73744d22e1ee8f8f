"""cluster-monitor's public API (routes only): resources and their usage series, clusters, events and the feed."""

import hmac
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, WebSocket

from titanium_common.auth_client import bearer_token, unauthorized
from titanium_common.contracts import errors
from titanium_common.deps import from_state

from .collector import Monitor, iso
from .queries import Catalog
from .schemas import (
    ClusterInfo,
    ClusterList,
    DeploymentList,
    DeploymentView,
    EventList,
    NamespaceList,
    NamespaceView,
    NodeList,
    NodePushed,
    NodeSample,
    NodeView,
    PodList,
    PodPushed,
    PodSample,
    PodView,
    Series,
    SeriesSet,
)
from .settings import ClusterMonitorSettings
from .views import listing

router = APIRouter()

Name = Annotated[str, Path(min_length=1, max_length=253)]
# Kubernetes object names (RFC 1123 subdomain) for objects a push may create.
ObjectName = Annotated[str, Path(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")]
ClusterQ = Annotated[str | None, Query(max_length=253, description="restrict to one cluster (its id)")]
NamespaceQ = Annotated[str | None, Query(max_length=253)]
Window = Annotated[int | None, Query(ge=1, le=86400, description="seconds back from now (default 3600)")]
Points = Annotated[int | None, Query(ge=1, le=10000, description="down-sample to at most this many (default 100)")]


SettingsDep = Annotated[ClusterMonitorSettings, Depends(from_state("settings"))]
MonitorDep = Annotated[Monitor, Depends(from_state("monitor"))]
CatalogDep = Annotated[Catalog, Depends(from_state("catalog"))]


async def _collector(request: Request, settings: SettingsDep) -> None:
    """Metric pushes come from collectors holding one of COLLECTOR_TOKENS."""
    tokens = settings.collector_token_list
    if not tokens:
        raise HTTPException(403, "metric pushes are turned off: no COLLECTOR_TOKENS configured")
    token = bearer_token(request)
    if token is None:
        raise unauthorized("missing bearer token (a collector token)")
    if not any(hmac.compare_digest(token.encode(), known.encode()) for known in tokens):
        raise unauthorized("not a collector token")


Collector = Annotated[None, Depends(_collector)]
# Unknown names (or ?cluster=) are 404; a name in several clusters or namespaces without saying which is 409.
LOOKUP_ERRORS = errors(404, 409)
# 503: with replicas a push is acknowledged only once Redis holds it (Redis down, or too many pushes waiting).
PUSH_ERRORS = errors(401, 403, 404, 409, 503)


async def _span(settings: SettingsDep, window: Window = None, points: Points = None) -> tuple[int, int]:
    """A series' window (s) and its number of points, within the configured bounds."""
    return window or settings.default_time_window, min(points or settings.default_points, settings.max_data_points)


Span = Annotated[tuple[int, int], Depends(_span)]


# ---- clusters and events ----------------------------------------------------------------------------------------
@router.get("/api/clusters")
async def clusters(catalog: CatalogDep) -> ClusterList:
    return listing(ClusterList, clusters=catalog.clusters())


@router.get("/api/clusters/{cluster_id}", responses=LOOKUP_ERRORS)
async def cluster(cluster_id: Name, catalog: CatalogDep) -> ClusterInfo:
    return catalog.cluster(cluster_id)


@router.get("/api/events")
async def events(monitor: MonitorDep) -> EventList:
    return listing(EventList, events=monitor.events.recent())


@router.websocket("/ws/clusters")
@router.websocket("/ws")
async def feed(websocket: WebSocket, monitor: MonitorDep) -> None:
    await monitor.hub.serve(websocket, monitor.greeting())


# ---- all-objects series (before the {name} routes that would swallow "timeseries") --------------------------------
@router.get("/api/{kind}/timeseries", responses=LOOKUP_ERRORS, response_model_exclude_none=True)
async def all_series(
    kind: Literal["nodes", "pods", "namespaces", "deployments"],
    catalog: CatalogDep,
    span: Span,
    cluster: ClusterQ = None,
) -> SeriesSet:
    return catalog.all_series(kind, cluster, *span)


# ---- nodes -------------------------------------------------------------------------------------------------------
@router.get("/api/nodes", responses=LOOKUP_ERRORS)
async def nodes(catalog: CatalogDep, cluster: ClusterQ = None) -> NodeList:
    return listing(NodeList, nodes=catalog.nodes(cluster))


@router.get("/api/nodes/{node}", responses=LOOKUP_ERRORS)
async def node(node: Name, catalog: CatalogDep, cluster: ClusterQ = None) -> NodeView:
    return catalog.node(node, cluster)


@router.get("/api/nodes/{node}/pods", responses=LOOKUP_ERRORS)
async def node_pods(node: Name, catalog: CatalogDep, cluster: ClusterQ = None) -> PodList:
    return listing(PodList, pods=catalog.node_pods(node, cluster))


@router.get("/api/nodes/{node}/timeseries", responses=LOOKUP_ERRORS, response_model_exclude_none=True)
async def node_series(node: Name, catalog: CatalogDep, span: Span, cluster: ClusterQ = None) -> Series:
    return catalog.node_series(node, cluster, *span)


@router.post("/api/nodes/{node}/metrics", status_code=201, responses=PUSH_ERRORS)
async def push_node(node: ObjectName, body: NodeSample, monitor: MonitorDep, _: Collector) -> NodePushed:
    push = monitor.push_node(node, body.usage(), body.cluster)
    await monitor.accept(push)
    return NodePushed(status="recorded", node=node, cluster=push.obj.cluster, timestamp=iso(push.ts))


# ---- pods --------------------------------------------------------------------------------------------------------
@router.get("/api/pods", responses=LOOKUP_ERRORS)
async def pods(catalog: CatalogDep, cluster: ClusterQ = None, namespace: NamespaceQ = None) -> PodList:
    return listing(PodList, pods=catalog.pods(cluster, namespace))


@router.get("/api/pods/{pod}", responses=LOOKUP_ERRORS)
async def pod(pod: Name, catalog: CatalogDep, namespace: NamespaceQ = None, cluster: ClusterQ = None) -> PodView:
    return catalog.pod(pod, namespace, cluster)


@router.get("/api/pods/{pod}/timeseries", responses=LOOKUP_ERRORS, response_model_exclude_none=True)
async def pod_series(
    pod: Name,
    catalog: CatalogDep,
    span: Span,
    namespace: NamespaceQ = None,
    cluster: ClusterQ = None,
) -> Series:
    return catalog.pod_series(pod, namespace, cluster, *span)


# ---- namespaces ----------------------------------------------------------------------------------------------------
@router.get("/api/namespaces", responses=LOOKUP_ERRORS)
async def namespaces(catalog: CatalogDep, cluster: ClusterQ = None) -> NamespaceList:
    return listing(NamespaceList, namespaces=catalog.namespaces(cluster))


@router.get("/api/namespaces/{namespace}", responses=LOOKUP_ERRORS)
async def namespace(namespace: Name, catalog: CatalogDep, cluster: ClusterQ = None) -> NamespaceView:
    return catalog.namespace(namespace, cluster)


@router.get("/api/namespaces/{namespace}/pods", responses=LOOKUP_ERRORS)
async def namespace_pods(namespace: Name, catalog: CatalogDep, cluster: ClusterQ = None) -> PodList:
    return listing(PodList, pods=catalog.namespace_pods(namespace, cluster))


@router.post("/api/namespaces/{namespace}/pods/{pod}/metrics", status_code=201, responses=PUSH_ERRORS)
async def push_pod(
    namespace: ObjectName, pod: ObjectName, body: PodSample, monitor: MonitorDep, _: Collector
) -> PodPushed:
    push = monitor.push_pod(namespace, pod, body.node_name, body.usage(), body.cluster)
    await monitor.accept(push)
    cluster = push.obj.cluster
    return PodPushed(status="recorded", pod=pod, namespace=namespace, cluster=cluster, timestamp=iso(push.ts))


@router.get("/api/namespaces/{namespace}/timeseries", responses=LOOKUP_ERRORS, response_model_exclude_none=True)
async def namespace_series(namespace: Name, catalog: CatalogDep, span: Span, cluster: ClusterQ = None) -> Series:
    return catalog.namespace_series(namespace, cluster, *span)


@router.get("/api/namespaces/{namespace}/deployments", responses=LOOKUP_ERRORS)
async def namespace_deployments(namespace: Name, catalog: CatalogDep, cluster: ClusterQ = None) -> DeploymentList:
    catalog.namespace(namespace, cluster)
    return listing(DeploymentList, deployments=catalog.deployments(cluster, namespace))


@router.get("/api/namespaces/{namespace}/deployments/{name}", responses=LOOKUP_ERRORS)
async def namespace_deployment(
    namespace: Name, name: Name, catalog: CatalogDep, cluster: ClusterQ = None
) -> DeploymentView:
    return catalog.deployment(name, namespace, cluster)


@router.get("/api/namespaces/{namespace}/deployments/{name}/pods", responses=LOOKUP_ERRORS)
async def namespace_deployment_pods(
    namespace: Name, name: Name, catalog: CatalogDep, cluster: ClusterQ = None
) -> PodList:
    return listing(PodList, pods=catalog.deployment_pods(name, namespace, cluster))


# ---- deployments ---------------------------------------------------------------------------------------------------
@router.get("/api/deployments", responses=LOOKUP_ERRORS)
async def deployments(catalog: CatalogDep, cluster: ClusterQ = None, namespace: NamespaceQ = None) -> DeploymentList:
    return listing(DeploymentList, deployments=catalog.deployments(cluster, namespace))


@router.get("/api/deployments/{name}", responses=LOOKUP_ERRORS)
async def deployment(
    name: Name, catalog: CatalogDep, namespace: NamespaceQ = None, cluster: ClusterQ = None
) -> DeploymentView:
    return catalog.deployment(name, namespace, cluster)


@router.get("/api/deployments/{name}/timeseries", responses=LOOKUP_ERRORS, response_model_exclude_none=True)
async def deployment_series(
    name: Name,
    catalog: CatalogDep,
    span: Span,
    namespace: NamespaceQ = None,
    cluster: ClusterQ = None,
) -> Series:
    return catalog.deployment_series(name, namespace, cluster, *span)
