"""Kubernetes sync through the real kubernetes_asyncio client against the shared API server double."""

import pytest
import yaml

from tests.support.polling import eventually
from tests.support.servers import free_port, host_address

NS = "monitoring"
# Devices on addresses of this host that Kubernetes Endpoints can hold (never loopback).
LAN, LAN6 = host_address(4), host_address(6)
pytestmark = [
    pytest.mark.kube_contexts("edge"),
    pytest.mark.skipif(LAN is None or LAN6 is None, reason="needs a non-loopback IPv4 and IPv6 address"),
]


@pytest.fixture
def start_cluster_edge(start_edge, kube_api):
    """edge-config connected to the double through its kubeconfig and context, as it would be to a real cluster."""

    def start(**overrides):
        return start_edge(
            kube_mode="kubeconfig", kubeconfig_path=str(kube_api.kubeconfig), kube_context="edge", **overrides
        )

    return start


@pytest.fixture
async def edge_k8s(start_cluster_edge):
    async with start_cluster_edge() as edge:
        yield edge


@pytest.fixture
def cluster(kube_api):
    return kube_api.clusters["edge"]


async def sync(edge, path="/kubernetes/sync", namespace=NS) -> dict:
    answer = await edge.client.post(path, json={"namespace": namespace})
    assert answer.status_code == 200, answer.text
    return answer.json()


def ids(items: list[dict]) -> list[str]:
    return sorted(item["device_id"] for item in items)


async def objects(cluster, device_id: str, namespace: str = NS) -> list[dict | None]:
    name = f"edge-device-{device_id}"
    return [
        await cluster.get("v1/services", name, namespace),
        await cluster.get("v1/endpoints", name, namespace),
        await cluster.get("discovery.k8s.io/v1/endpointslices", name, namespace),
    ]


async def test_sync_creates_service_endpoints_and_slice_for_healthy_devices(edge_k8s, farm, cluster):
    await edge_k8s.register("edge-01", await farm.start(host=LAN), port=9100)
    await edge_k8s.register("sick", await farm.start(host=LAN, health=500))
    await edge_k8s.register("noip")
    await edge_k8s.probe_round()

    result = await sync(edge_k8s)
    assert result["status"] == "synced" and result["total_healthy"] == 1
    assert result["created"] == [
        {"device_id": "edge-01", "service": "edge-device-edge-01", "status": "created", "error": None}
    ]
    assert result["updated"] == result["deleted"] == result["failed"] == []

    service, endpoints, slice_ = await objects(cluster, "edge-01")
    labels = {
        "app": "edge-exporter", "device_id": "edge-01", "device_type": "jetson_orin",
        "managed_by": "edge-metrics-server", "app.kubernetes.io/managed-by": "edge-config",
    }  # fmt: skip
    assert service["metadata"]["labels"] == labels
    assert service["spec"]["clusterIP"] == "None" and "selector" not in service["spec"]
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9100, "targetPort": 9100, "protocol": "TCP"}]
    assert endpoints["metadata"]["labels"].items() >= labels.items()
    assert endpoints["metadata"]["labels"]["endpointslice.kubernetes.io/skip-mirror"] == "true"
    assert endpoints["subsets"] == [
        {"addresses": [{"ip": LAN}], "ports": [{"name": "metrics", "port": 9100, "protocol": "TCP"}]}
    ]
    assert slice_["metadata"]["labels"]["kubernetes.io/service-name"] == "edge-device-edge-01"
    assert slice_["metadata"]["labels"].items() >= labels.items()
    assert slice_["addressType"] == "IPv4"
    assert slice_["endpoints"] == [{"addresses": [LAN], "conditions": {"ready": True}}]
    assert await cluster.get("v1/services", "edge-device-sick", NS) is None
    assert await cluster.get("v1/services", "edge-device-noip", NS) is None


async def test_a_second_sync_changes_nothing(edge_k8s, farm, cluster):
    await edge_k8s.register("a", await farm.start(host=LAN))
    await edge_k8s.register("b", await farm.start(host=LAN))
    await edge_k8s.probe_round()
    assert ids((await sync(edge_k8s))["created"]) == ["a", "b"]
    versions = [o["metadata"]["resourceVersion"] for o in await objects(cluster, "a") + await objects(cluster, "b")]

    again = await sync(edge_k8s, "/api/edge/kubernetes/sync")
    assert again["created"] == again["updated"] == again["deleted"] == again["failed"] == []
    assert ids(again["unchanged"]) == ["a", "b"]
    after = [o["metadata"]["resourceVersion"] for o in await objects(cluster, "a") + await objects(cluster, "b")]
    assert after == versions


async def test_a_moved_device_is_updated(edge_k8s, farm, cluster):
    await edge_k8s.register("mover", await farm.start(host=LAN), port=9100)
    await edge_k8s.probe_round()
    await sync(edge_k8s)

    elsewhere = await farm.start(host=LAN6)
    await edge_k8s.register("mover", elsewhere, port=9200, device_type="rpi5")
    await edge_k8s.probe_round()
    result = await sync(edge_k8s)
    assert ids(result["updated"]) == ["mover"] and result["created"] == []

    service, endpoints, slice_ = await objects(cluster, "mover")
    assert service["spec"]["ports"][0]["port"] == 9200 and service["metadata"]["labels"]["device_type"] == "rpi5"
    assert endpoints["subsets"][0]["addresses"] == [{"ip": LAN6}]
    assert endpoints["subsets"][0]["ports"][0]["port"] == 9200
    assert slice_["endpoints"][0]["addresses"] == [LAN6] and slice_["ports"][0]["port"] == 9200
    assert (await sync(edge_k8s))["unchanged"][0]["device_id"] == "mover"


async def test_a_single_failed_probe_keeps_the_device_and_the_grace_removes_it(edge_k8s, farm, cluster):
    device = await farm.start(host=LAN)
    await edge_k8s.register("blip", device)
    await edge_k8s.probe_round()
    await sync(edge_k8s)

    device.health = 500
    await edge_k8s.probe_round()
    kept = await sync(edge_k8s)  # one failure of UNHEALTHY_GRACE=2: still scraped
    assert kept["deleted"] == [] and ids(kept["kept"]) == ["blip"] and "1 of 2" in kept["kept"][0]["reason"]
    assert all(await objects(cluster, "blip"))

    device.health = 200  # a blip: it recovers, and the count starts again
    await edge_k8s.probe_round()
    device.health = 500
    await edge_k8s.probe_round()
    assert (await sync(edge_k8s))["deleted"] == []

    await edge_k8s.probe_round()
    removed = await sync(edge_k8s)
    assert ids(removed["deleted"]) == ["blip"] and removed["total_healthy"] == 0
    assert await objects(cluster, "blip") == [None, None, None]


async def test_devices_gone_from_the_registry_are_removed(edge_k8s, farm, cluster):
    await edge_k8s.register("leaver", await farm.start(host=LAN))
    await edge_k8s.probe_round()
    await sync(edge_k8s)
    await edge_k8s.client.delete("/config/leaver")
    result = await sync(edge_k8s)
    assert ids(result["deleted"]) == ["leaver"] and result["deleted"][0]["reason"] == "device is no longer registered"
    assert await objects(cluster, "leaver") == [None, None, None]


async def test_one_devices_failure_does_not_abort_the_rest(edge_k8s, farm, cluster):
    # Someone else's Service already has the name edge-config would give device "taken".
    await cluster.create(
        "v1/services", {"metadata": {"name": "edge-device-taken"}, "spec": {"ports": [{"port": 80}]}}, NS
    )
    for device_id in ("first", "taken", "last"):
        await edge_k8s.register(device_id, await farm.start(host=LAN))
    await edge_k8s.probe_round()

    result = await sync(edge_k8s)
    assert ids(result["created"]) == ["first", "last"]
    assert ids(result["failed"]) == ["taken"] and "not managed by edge-config" in result["failed"][0]["error"]
    untouched = await cluster.get("v1/services", "edge-device-taken", NS)
    assert untouched["spec"]["ports"] == [{"port": 80}] and "labels" not in untouched["metadata"]
    stats = (await edge_k8s.client.get("/stats")).json()
    assert stats["kubernetes"]["last_sync"] | {"at": None} == {
        "at": None, "namespace": NS, "device_id": None, "created": 2, "updated": 0, "deleted": 0, "failed": 1,
        "unchanged": 0, "kept": 0, "skipped": 0, "total_healthy": 3,
    }  # fmt: skip


async def test_sync_of_one_device(edge_k8s, farm, cluster):
    await edge_k8s.register("solo", await farm.start(host=LAN))
    await edge_k8s.register("other", await farm.start(host=LAN))
    await edge_k8s.probe_round()
    result = await sync(edge_k8s, "/kubernetes/sync/solo")
    assert ids(result["created"]) == ["solo"] and result["total_healthy"] == 1
    assert await cluster.get("v1/services", "edge-device-other", NS) is None
    missing = await edge_k8s.client.post("/kubernetes/sync/ghost", json={"namespace": NS})
    assert missing.status_code == 404 and missing.json()["error"] == "Device not found"


async def test_cleanup_deletes_only_managed_objects(edge_k8s, farm, cluster):
    await cluster.create("v1/services", {"metadata": {"name": "prometheus", "labels": {"app": "prometheus"}}}, NS)
    await cluster.create(
        "v1/services", {"metadata": {"name": "edge-device-handmade", "labels": {"app": "edge-exporter"}}}, NS
    )
    await cluster.create("v1/endpoints", {"metadata": {"name": "edge-device-handmade"}}, NS)
    await edge_k8s.register("x", await farm.start(host=LAN))
    await edge_k8s.register("y", await farm.start(host=LAN))
    await edge_k8s.probe_round()
    await sync(edge_k8s)

    answer = await edge_k8s.client.delete("/kubernetes/cleanup", params={"namespace": NS})
    assert answer.status_code == 200
    assert answer.json() == {
        "status": "cleaned",
        "deleted_services": ["edge-device-x", "edge-device-y"],
        "deleted_endpoints": ["edge-device-x", "edge-device-y"],
        "deleted_endpointslices": ["edge-device-x", "edge-device-y"],
        "namespace": NS,
    }
    remaining = sorted(s["metadata"]["name"] for s in await cluster.list("v1/services", NS))
    assert remaining == ["edge-device-handmade", "prometheus"]
    assert await cluster.get("v1/endpoints", "edge-device-handmade", NS) is not None


async def test_resources_of_one_device(edge_k8s, farm, cluster):
    await edge_k8s.register("res", await farm.start(host=LAN))
    await edge_k8s.probe_round()
    await sync(edge_k8s)
    found = (await edge_k8s.client.get("/kubernetes/resources/res", params={"namespace": NS})).json()
    assert found["service"]["metadata"]["name"] == "edge-device-res"
    assert found["endpoints"]["subsets"][0]["addresses"] == [{"ip": LAN}]
    assert found["endpointslice"]["addressType"] == "IPv4"

    deleted = await edge_k8s.client.delete("/api/edge/kubernetes/resources/res", params={"namespace": NS})
    assert deleted.status_code == 200 and len(deleted.json()["deleted"]) == 3
    assert await objects(cluster, "res") == [None, None, None]
    for method in ("GET", "DELETE"):
        gone = await edge_k8s.client.request(method, "/kubernetes/resources/res", params={"namespace": NS})
        assert gone.status_code == 404 and gone.json()["device_id"] == "res"

    await cluster.create("v1/services", {"metadata": {"name": "edge-device-theirs"}}, NS)
    refused = await edge_k8s.client.delete("/kubernetes/resources/theirs", params={"namespace": NS})
    assert refused.status_code == 404 and await cluster.get("v1/services", "edge-device-theirs", NS) is not None


async def test_status_and_health_of_the_cluster(edge_k8s, farm):
    await edge_k8s.register("st", await farm.start(host=LAN))
    await edge_k8s.probe_round()
    await sync(edge_k8s)
    health = await edge_k8s.client.get("/kubernetes/health")
    assert health.status_code == 200 and health.json()["status"] == "healthy"
    status = (await edge_k8s.client.get("/kubernetes/status")).json()
    assert status["status"] == "connected" and status["managed_services"] == ["edge-device-st"]
    assert status["last_sync"]["created"] == 1 and status["unhealthy_grace"] == 2


@pytest.mark.parametrize("namespace", ["Monitoring", "a_b", "x" * 64, "-x"])
async def test_namespaces_that_are_not_dns_labels_are_422(edge_k8s, namespace):
    assert (await edge_k8s.client.post("/kubernetes/sync", json={"namespace": namespace})).status_code == 422
    assert (await edge_k8s.client.delete("/kubernetes/cleanup", params={"namespace": namespace})).status_code == 422
    assert (await edge_k8s.client.get("/kubernetes/manifests", params={"namespace": namespace})).status_code == 422


async def test_sync_uses_the_default_namespace_without_a_body(edge_k8s, farm, cluster):
    await edge_k8s.register("dflt", await farm.start(host=LAN))
    await edge_k8s.probe_round()
    answer = await edge_k8s.client.post("/kubernetes/sync")
    assert answer.status_code == 200 and answer.json()["namespace"] == NS
    assert await cluster.get("v1/services", "edge-device-dflt", NS) is not None


async def test_periodic_sync(start_cluster_edge, farm, cluster):
    async with start_cluster_edge(health_interval_s=0.05, sync_interval_s=0.05) as edge:
        await edge.register("auto", await farm.start(host=LAN))

        async def synced():
            return await cluster.get("v1/services", "edge-device-auto", NS)

        await eventually(synced)


async def test_without_a_cluster_kubernetes_calls_are_503_but_manifests_work(edge, farm):
    await edge.register("m1", await farm.start(host=LAN))
    await edge.probe_round()
    for method, path in [
        ("POST", "/kubernetes/sync"),
        ("POST", "/kubernetes/sync/m1"),
        ("DELETE", "/kubernetes/cleanup"),
        ("GET", "/kubernetes/status"),
        ("GET", "/kubernetes/health"),
        ("GET", "/api/edge/kubernetes/resources/m1"),
        ("DELETE", "/kubernetes/resources/m1"),
    ]:
        answer = await edge.client.request(method, path)
        assert answer.status_code == 503, (method, path)
        body = answer.json()
        assert body["error"] == "Kubernetes client not initialized" and "KUBE_MODE=off" in body["detail"]
    manifests = await edge.client.get("/kubernetes/manifests")
    assert manifests.status_code == 200
    assert [d["kind"] for d in yaml.safe_load_all(manifests.text)] == ["Service", "Endpoints", "EndpointSlice"]


async def test_an_unreachable_cluster_is_a_fast_503(start_edge, tmp_path, farm):
    kubeconfig = tmp_path / "down.kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "down", "cluster": {"server": f"http://127.0.0.1:{free_port()}"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "down", "context": {"cluster": "down", "user": "u"}}],
                "current-context": "down",
            }
        )
    )
    async with start_edge(kube_mode="kubeconfig", kubeconfig_path=str(kubeconfig)) as edge:
        answer = await edge.client.post("/kubernetes/sync", json={"namespace": NS})
        assert answer.status_code == 503 and "Kubernetes API unreachable" in answer.json()["detail"]
        stats = (await edge.client.get("/stats")).json()
        assert "unreachable" in stats["kubernetes"]["last_sync"]["error"]


async def test_a_broken_kubeconfig_leaves_the_service_up(start_edge, tmp_path):
    broken = tmp_path / "broken.kubeconfig"
    broken.write_text("clusters: [")
    async with start_edge(kube_mode="kubeconfig", kubeconfig_path=str(broken)) as edge:
        answer = await edge.client.post("/kubernetes/sync")
        assert answer.status_code == 503 and "failed to load kubeconfig" in answer.json()["detail"]
        assert (await edge.client.get("/ready")).status_code == 200


async def test_a_loopback_device_is_skipped_with_the_reason(edge_k8s, farm, cluster):
    await edge_k8s.register("local", await farm.start())
    await edge_k8s.probe_round()
    assert (await edge_k8s.status("local"))["status"] == "healthy"
    result = await sync(edge_k8s)
    assert ids(result["skipped"]) == ["local"] and result["failed"] == []
    assert "loopback address, which Kubernetes Endpoints cannot hold" in result["skipped"][0]["reason"]
    assert await objects(cluster, "local") == [None, None, None]


async def test_in_a_pod_the_service_account_reaches_the_cluster_and_holds_the_lease(start_edge, kube_pod, farm):
    kube_pod.cluster.enable("coordination.k8s.io/v1/leases", namespaced=True)
    async with start_edge(kube_mode="auto", replica_name="edge-pod") as edge:
        status = (await edge.client.get("/kubernetes/status")).json()
        assert status["status"] == "connected", status
        assert status["api_server"] == f"https://{kube_pod.host}:{kube_pod.port} (in-cluster service account)"
        await edge.register("pod-device", await farm.start(host=LAN), port=9100)
        await edge.probe_round()
        assert ids((await sync(edge))["created"]) == ["pod-device"]
        assert all(await objects(kube_pod.cluster, "pod-device"))
        lease = (await edge.client.get("/stats")).json()["lease"]
        assert (lease["store"], lease["mode"]) == ("kubernetes lease in titanium", "holder")
