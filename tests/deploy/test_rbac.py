"""The RBAC of the two services that call the Kubernetes API is enough and no more: their real kubernetes_asyncio
code runs against an API server double that enforces the rendered Roles and bindings for their service account,
every call goes through, and every permission granted is one the code used."""

import contextlib

import httpx
import pytest
from aiohttp import web
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from cluster_monitor.settings import ClusterMonitorSettings
from cluster_monitor.sources.kubernetes import KARMADA, KubernetesSource, open_clients, open_karmada
from edge_config.main import create_app
from edge_config.settings import EdgeConfigSettings
from tests.support.deploy import LOCAL_NAMESPACE, MANIFESTS, render
from tests.support.identity import auth_processes
from tests.support.rbac import Rbac, rbac_cluster
from tests.support.servers import AppServer, host_address, serving
from titanium_common.lease import open_lease

CLUSTER_MONITOR = (LOCAL_NAMESPACE, "local-cluster-monitor")
EDGE_CONFIG = (LOCAL_NAMESPACE, "local-edge-config")
__all__ = ["auth_processes"]
# A device's address must be one a Kubernetes Endpoints object can hold: not loopback.
LAN = host_address(4)
LEASE_CALLS = {(verb, "coordination.k8s.io", "leases", LOCAL_NAMESPACE) for verb in ("get", "create", "update")}


def used(api, account) -> set[tuple[str, str, str, str | None]]:
    return {(c.verb, c.group, c.resource, c.namespace) for c in api.calls if c.account == account}


def scoped(granted: set, calls: set) -> set:
    """Calls as the grants name them: a cluster-wide grant (namespace None) covers every namespace."""
    cluster_wide = {(v, g, r) for v, g, r, where in granted if where is None}
    return {(v, g, r, None if (v, g, r) in cluster_wide else ns) for v, g, r, ns in calls}


def lease_cluster(monkeypatch, kubeconfig) -> None:
    """Where the lease takes its Lease outside a pod: the current context of $KUBECONFIG."""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))


async def elect_leaders(settings: list[ClusterMonitorSettings]) -> None:
    """Leader election as the service runs it: replicas contend for the Lease, the holder renews and releases it
    when it stops, and another takes it over (get, create, update)."""
    first, second = [await open_lease(s, redis_prefix="unused:") for s in settings]
    await first.start()
    await second.start()
    assert (first.mode, second.mode) == ("holder", "follower"), (first.snapshot(), second.snapshot())
    assert await first.attempt() == "holder"
    await first.stop()
    assert await second.attempt() == "holder", second.snapshot()
    await second.stop()


def node(name: str) -> dict:
    return {
        "metadata": {"name": name},
        "status": {"conditions": [{"type": "Ready", "status": "True"}], "capacity": {"cpu": "2", "memory": "4Gi"}},
    }


async def test_cluster_monitor_can_make_exactly_its_calls(tmp_path, monkeypatch):
    docs = render(MANIFESTS / "tests" / "karmada")
    rbac = Rbac.from_manifests(docs)
    async with (
        rbac_cluster(tmp_path, rbac, CLUSTER_MONITOR, "member1") as member,
        rbac_cluster(tmp_path, rbac, CLUSTER_MONITOR, "karmada") as karmada,
    ):
        await member.create("v1/nodes", node("n1"))
        await member.create("v1/namespaces", {"metadata": {"name": LOCAL_NAMESPACE}})
        pod = {"metadata": {"name": "p1"}, "spec": {"nodeName": "n1", "containers": [{"name": "c"}]}}
        await member.create("v1/pods", pod, namespace=LOCAL_NAMESPACE)
        member.enable("metrics.k8s.io/v1beta1/nodes")
        member.enable("metrics.k8s.io/v1beta1/pods", namespaced=True)
        member_ready = {"conditions": [{"type": "Ready", "status": "True"}]}
        await karmada.create(
            "/".join(KARMADA[:2]) + "/clusters", {"metadata": {"name": "member1"}, "status": member_ready}
        )

        # Connected as the service connects (titanium_common.kube through its settings).
        paths = ClusterMonitorSettings(kubeconfig=str(member.kubeconfig), karmada_kubeconfig=str(karmada.kubeconfig))
        source = KubernetesSource(await open_clients(paths), await open_karmada(paths))
        api = source.clients["member1"]
        try:
            assert await source.probe() == {"member1": None}
            (cluster,) = await source.snapshot()
            assert cluster.error is None and cluster.metrics_available, cluster
            assert [n.name for n in cluster.nodes] == ["n1"] and [p.name for p in cluster.pods] == ["p1"]
            assert cluster.karmada_ready is True
            with pytest.raises(ApiException) as refused:
                await client.CoreV1Api(api).list_secret_for_all_namespaces()
            assert refused.value.status == 403
            replicas = [
                ClusterMonitorSettings(lease_backend="kubernetes", lease_namespace=LOCAL_NAMESPACE, replica_name=name)
                for name in ("cluster-monitor-a", "cluster-monitor-b")
            ]
            lease_cluster(monkeypatch, member.kubeconfig)
            await elect_leaders(replicas)
        finally:
            await source.close()

    calls = [c for c in member.api.calls + karmada.api.calls if (c.verb, c.resource) != ("list", "secrets")]
    assert calls and all(c.allowed for c in calls), [c for c in calls if not c.allowed]
    granted = rbac.granted(CLUSTER_MONITOR)
    made = scoped(granted, used(member.api, CLUSTER_MONITOR) | used(karmada.api, CLUSTER_MONITOR)) - {
        ("list", "", "secrets", None)
    }
    assert made >= LEASE_CALLS
    assert made == granted, f"granted but never called: {granted - made}; called, not granted: {made - granted}"


@contextlib.asynccontextmanager
async def device():
    """An edge device's exporter: healthy, and accepting reloads."""

    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    async with AppServer(app, host=LAN) as server:
        yield server.port


@pytest.mark.skipif(LAN is None, reason="needs a non-loopback IPv4 address for the device")
async def test_edge_config_can_make_exactly_its_calls_in_its_namespace_only(tmp_path, auth_processes, monkeypatch):
    docs = render(MANIFESTS / "overlays" / "local")
    rbac = Rbac.from_manifests(docs)
    async with rbac_cluster(tmp_path, rbac, EDGE_CONFIG, "edge") as cluster, device() as device_port:
        lease_cluster(monkeypatch, cluster.kubeconfig)
        settings = EdgeConfigSettings(
            env="test",
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'edge.db'}",
            health_interval_s=3600,
            reload_timeout_s=0.5,
            kube_mode="kubeconfig",
            kubeconfig_path=str(cluster.kubeconfig),
            kube_namespace=LOCAL_NAMESPACE,
            auth_service_url=auth_processes.auth_url,
            # The device double's address; the lease is the Kubernetes one a pod takes.
            device_allowed_cidrs=f"{LAN}/32",
            lease_backend="kubernetes",
            lease_namespace=LOCAL_NAMESPACE,
            replica_name="edge-config-a",
        )
        app = create_app(settings)
        admin = {"Authorization": f"Bearer {await auth_processes.admin_token()}"}
        async with serving(app) as url, httpx.AsyncClient(base_url=url, headers=admin, timeout=30) as http:
            device_config = {"device_type": "jetson", "ip_address": LAN, "reload_port": device_port}

            async def step(method: str, path: str, **kwargs) -> dict:
                answer = await http.request(method, path, **kwargs)
                assert answer.status_code == 200, f"{method} {path}: {answer.status_code} {answer.text}"
                return answer.json()

            await step("PUT", "/config/d1", json=device_config | {"port": 9100})
            await app.state.monitor.probe_round()
            assert [i["device_id"] for i in (await step("POST", "/kubernetes/sync"))["created"]] == ["d1"]
            await step("PUT", "/config/d1", json=device_config | {"port": 9200})
            await app.state.monitor.probe_round()
            assert [i["device_id"] for i in (await step("POST", "/kubernetes/sync"))["updated"]] == ["d1"]
            namespace = {"namespace": LOCAL_NAMESPACE}
            assert (await step("GET", "/kubernetes/resources/d1", params=namespace))["service"]
            assert (await step("GET", "/kubernetes/status"))["status"] == "connected"
            assert (await step("GET", "/kubernetes/health"))["status"] == "healthy"
            assert (await step("DELETE", "/kubernetes/cleanup", params=namespace))["deleted_services"]
            allowed_calls = list(cluster.api.calls)

            elsewhere = await http.post("/kubernetes/sync", json={"namespace": "kube-system"})
            assert elsewhere.status_code in (200, 502), elsewhere.text
            assert any(not c.allowed and c.namespace == "kube-system" for c in cluster.api.calls)
        # Stopping releases the lease (an update): the calls of the whole life of the service.
        allowed_calls += [c for c in cluster.api.calls if c.resource == "leases" and c not in allowed_calls]

    assert allowed_calls and all(c.allowed for c in allowed_calls), [c for c in allowed_calls if not c.allowed]
    assert {c.namespace for c in allowed_calls} == {LOCAL_NAMESPACE}
    granted = rbac.granted(EDGE_CONFIG)
    made = {(c.verb, c.group, c.resource, c.namespace) for c in allowed_calls}
    assert made >= LEASE_CALLS
    assert made == granted, f"granted but never called: {granted - made}; called, not granted: {made - granted}"
    assert not rbac.allows(EDGE_CONFIG, "list", "", "secrets", LOCAL_NAMESPACE, None)
    assert not rbac.allows(EDGE_CONFIG, "patch", "", "services", LOCAL_NAMESPACE, "x")


def test_nothing_else_gets_an_account_with_rights():
    docs = render(MANIFESTS / "tests" / "all-components")
    rbac = Rbac.from_manifests(docs)
    assert set(rbac.grants) == {CLUSTER_MONITOR, EDGE_CONFIG}
