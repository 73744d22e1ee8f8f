"""The Kubernetes source: the real kubernetes_asyncio client against the API server double, app on real uvicorn."""

import asyncio
import json

import aiohttp
import pytest

from cluster_monitor.main import create_app
from cluster_monitor.settings import ClusterMonitorSettings
from cluster_monitor.sources import open_source
from cluster_monitor.sources.kubernetes import KubernetesSource
from cluster_monitor.sources.simulated import SimulatedSource
from tests.support.kubernetes import write_kubeconfig
from tests.support.servers import serving


def node(name: str, ready: bool = True, cpu: str = "4", memory: str = "8Gi") -> dict:
    return {
        "metadata": {"name": name, "labels": {"node-role.kubernetes.io/control-plane": ""}},
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "capacity": {"cpu": cpu, "memory": memory},
            "allocatable": {"cpu": cpu, "memory": memory},
            "addresses": [{"type": "InternalIP", "address": "172.18.0.9"}],
            "nodeInfo": {
                "kubeletVersion": "v1.31.1",
                "osImage": "Debian",
                "kernelVersion": "6.1",
                "containerRuntimeVersion": "containerd://1.7",
                **{k: "x" for k in ("architecture", "bootID", "kubeProxyVersion", "machineID", "operatingSystem")},
                "systemUUID": "x",
            },
        },
    }


def pod(name: str, node_name: str, app: str, restarts: int = 0) -> dict:
    return {
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"nodeName": node_name, "containers": [{"name": "main", "image": "nginx"}]},
        "status": {
            "phase": "Running",
            "podIP": "10.244.0.5",
            "containerStatuses": [
                {"name": "main", "ready": True, "restartCount": restarts, "image": "nginx", "imageID": "x"}
            ],
        },
    }


def deployment(name: str, replicas: int = 1) -> dict:
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "main"}]}},
        },
        "status": {"readyReplicas": replicas, "availableReplicas": replicas},
    }


async def populate(kube_api) -> None:
    member1, member2 = kube_api.clusters["member1"], kube_api.clusters["member2"]
    for cluster, node_name, app in ((member1, "m1-node", "web"), (member2, "m2-node", "api")):
        await cluster.create("v1/nodes", node(node_name, cpu="4" if cluster is member1 else "8"))
        await cluster.create("v1/namespaces", {"metadata": {"name": "default"}})
        await cluster.create("apps/v1/deployments", deployment(app), "default")
        await cluster.create("v1/pods", pod(f"{app}-1", node_name, app), "default")
    # metrics-server only in member1
    await member1.create(
        "metrics.k8s.io/v1beta1/nodes", {"metadata": {"name": "m1-node"}, "usage": {"cpu": "1", "memory": "2Gi"}}
    )
    await member1.create(
        "metrics.k8s.io/v1beta1/pods",
        {
            "metadata": {"name": "web-1", "namespace": "default"},
            "containers": [
                {"name": "a", "usage": {"cpu": "250m", "memory": "512Mi"}},
                {"name": "b", "usage": {"cpu": "50m", "memory": "0"}},
            ],
        },
        "default",
    )


def settings_for(kube_api, **extra) -> ClusterMonitorSettings:
    return ClusterMonitorSettings(
        env="test",
        cluster_source="kubernetes",
        kubeconfig=str(kube_api.kubeconfig),
        cluster_contexts="member1,member2",
        collect_interval_s=0.1,
        ws_push_interval_s=0.5,
        collector_tokens="collector-token",
        **extra,
    )


async def get(session: aiohttp.ClientSession, url: str) -> dict:
    async with session.get(url) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def test_two_clusters_from_two_contexts_with_and_without_metrics_server(kube_api):
    await populate(kube_api)
    async with serving(create_app(settings_for(kube_api))) as base, aiohttp.ClientSession(base) as http:
        clusters = {c["id"]: c for c in (await get(http, "/api/clusters"))["clusters"]}
        assert clusters.keys() == {"member1", "member2"}
        assert clusters["member1"]["status"] == "ready"
        assert clusters["member1"]["name"] == "Member1 Cluster"
        assert [n["name"] for n in clusters["member1"]["nodes"]] == ["m1-node"]
        assert clusters["member2"]["podList"][0] | {"age": ""} == {
            "name": "api-1",
            "namespace": "default",
            "ready": "1/1",
            "status": "Running",
            "restarts": 0,
            "age": "",
            "ip": "10.244.0.5",
            "node": "m2-node",
        }
        assert (clusters["member1"]["metrics"], clusters["member2"]["metrics"]) == ("available", "unavailable")
        assert clusters["member2"]["metrics_error"] == "metrics-server not installed"

        m1 = await get(http, "/api/nodes/m1-node")
        assert (m1["cluster"], m1["status"], m1["roles"], m1["internalIP"]) == (
            "member1",
            "Ready",
            "control-plane",
            "172.18.0.9",
        )
        assert (m1["cpu_millicores"], m1["cpu_percentage"]) == (1000, 25.0)  # of the node's real 4 CPUs
        assert m1["memory_human"] == {"value": 2.0, "unit": "GiB", "bytes": 2 * 2**30}
        m2 = await get(http, "/api/nodes/m2-node")
        assert (m2["metrics"], m2["cpu_millicores"], m2["allocatable"]["cpu_millicores"]) == ("unavailable", None, 8000)

        web = await get(http, "/api/pods/web-1?namespace=default")
        assert (web["cpu_millicores"], web["memory_bytes"], web["deployment"]) == (300, 512 * 2**20, "web")
        assert web["cpu_percentage"] == 7.5
        namespace = await get(http, "/api/namespaces/default")
        assert (namespace["clusters"], namespace["pod_count"], namespace["cpu_millicores"]) == (
            ["member1", "member2"],
            2,
            300,
        )
        # Of both clusters' allocatable CPU (4,000 m + 8,000 m), not the first one's.
        assert namespace["cpu_percentage"] == 2.5
        assert (await get(http, "/api/deployments/api"))["clusters"] == ["member2"]
        assert [p["name"] for p in (await get(http, "/api/nodes/m2-node/pods"))["pods"]] == ["api-1"]

        async with http.get("/api/nodes/ghost") as missing:
            assert missing.status == 404
            assert (await missing.json())["detail"] == "node 'ghost' not found"
        async with http.get("/api/pods/web-1/timeseries?window=86401") as bad:
            assert bad.status == 422

        # A collector push fills in what metrics-server does not provide.
        sample = {
            "cpu_millicores": 640,
            "memory_bytes": 2**30,
            "disk_io": {"read_bytes": 1, "write_bytes": 2},
            "network_io": {"bytes_sent": 3, "bytes_recv": 4},
        }
        collector = {"Authorization": "Bearer collector-token"}
        async with http.post("/api/nodes/m2-node/metrics", json=sample, headers=collector) as pushed:
            assert pushed.status == 201
            assert (await pushed.json())["cluster"] == "member2"
        m2 = await get(http, "/api/nodes/m2-node")
        assert (m2["metrics"], m2["cpu_percentage"], m2["network_io"]) == (
            "available",
            8.0,
            {"bytes_sent": 3, "bytes_recv": 4},
        )

        stats = await get(http, "/stats")
        assert (stats["source"], stats["clusters"], stats["nodes"], stats["pods"]) == ("kubernetes", 2, 2, 2)
        assert stats["last_collection"].endswith("Z")


async def next_message(ws: aiohttp.ClientWebSocketResponse, kind: str, predicate=lambda data: True) -> dict:
    async with asyncio.timeout(10):
        while True:
            message = json.loads((await ws.receive()).data)
            assert set(message) == {"type", "data", "timestamp"}
            if message["type"] == kind and predicate(message["data"]):
                return message


async def test_a_node_turning_not_ready_is_a_critical_event_on_the_websocket(kube_api):
    await populate(kube_api)
    member2 = kube_api.clusters["member2"]
    async with serving(create_app(settings_for(kube_api))) as base, aiohttp.ClientSession(base) as http:
        async with http.ws_connect("/ws/clusters") as ws:
            first = json.loads((await ws.receive()).data)
            second = json.loads((await ws.receive()).data)
            assert (first["type"], second["type"]) == ("clusters", "events")
            assert {c["id"] for c in first["data"]} == {"member1", "member2"}
            assert second["data"][0]["type"] == "info"

            await member2.patch(
                "v1/nodes", "m2-node", {"status": {"conditions": [{"type": "Ready", "status": "False"}]}}
            )
            critical = await next_message(ws, "event", lambda e: e["type"] == "critical" and "m2-node" in e["message"])
            assert critical["data"]["cluster"] == "member2"
            assert critical["data"]["timestamp"].endswith("Z")
            failing = await next_message(ws, "clusters", lambda cs: any(c["status"] == "failure" for c in cs))
            assert [c["id"] for c in failing["data"] if c["status"] == "failure"] == ["member2"]

            await member2.patch(
                "v1/nodes", "m2-node", {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
            )
            await next_message(ws, "event", lambda e: e["type"] == "success" and "m2-node" in e["message"])

            await member2.patch("v1/pods", "api-1", pod("api-1", "m2-node", "api", restarts=1), "default")
            restarted = await next_message(ws, "event", lambda e: e["type"] == "auto")
            assert "default/api-1 restarted (1)" in restarted["data"]["message"]

        events = (await get(http, "/api/events"))["events"]
        assert [e["type"] for e in events] == ["info", "critical", "critical", "success", "success", "auto"]


@pytest.mark.kube_contexts("member1", "member2", "karmada")
async def test_karmada_members_and_their_ready_condition(kube_api, tmp_path):
    await populate(kube_api)
    karmada = kube_api.clusters["karmada"]
    for name, ready, region in (("member1", "True", "Seoul"), ("member2", "False", "Busan"), ("member3", "True", "")):
        await karmada.create(
            "cluster.karmada.io/v1alpha1/clusters",
            {
                "metadata": {"name": name},
                "spec": {"region": region},
                "status": {"conditions": [{"type": "Ready", "status": ready}]},
            },
        )
    karmada_config = write_kubeconfig(tmp_path / "karmada.yaml", {"karmada": karmada.url}, "karmada")
    settings = settings_for(kube_api, karmada_kubeconfig=str(karmada_config))
    async with serving(create_app(settings)) as base, aiohttp.ClientSession(base) as http:
        clusters = {c["id"]: c for c in (await get(http, "/api/clusters"))["clusters"]}
    assert {cid: (c["status"], c["region"], c["karmada_ready"]) for cid, c in clusters.items()} == {
        "member1": ("ready", "Seoul", True),
        "member2": ("failure", "Busan", False),  # its own node is Ready, but Karmada says the member is not
        "member3": ("ready", "", True),  # a member with no context here: Karmada's word
    }
    assert clusters["member3"]["nodes"] == []


async def test_auto_picks_kubernetes_when_a_context_answers_and_simulated_when_none_does(kube_api, tmp_path):
    chosen = await open_source(ClusterMonitorSettings(env="test", kubeconfig=str(kube_api.kubeconfig)))
    try:
        assert isinstance(chosen, KubernetesSource)
        assert list(chosen.clients) == ["member1"]  # the current context when CLUSTER_CONTEXTS is empty
    finally:
        await chosen.close()
    dead = write_kubeconfig(tmp_path / "dead.yaml", {"gone": "http://127.0.0.1:9"}, "gone")
    fallback = await open_source(ClusterMonitorSettings(env="test", kubeconfig=str(dead), kubernetes_timeout_s=1))
    assert isinstance(fallback, SimulatedSource)
    missing = await open_source(ClusterMonitorSettings(env="test", kubeconfig=str(tmp_path / "none.yaml")))
    assert isinstance(missing, SimulatedSource)
    with pytest.raises(RuntimeError, match="CLUSTER_SOURCE=kubernetes"):
        await open_source(
            ClusterMonitorSettings(env="test", cluster_source="kubernetes", kubeconfig=str(tmp_path / "x"))
        )


async def test_in_a_pod_the_cluster_is_the_service_accounts(kube_pod):
    await kube_pod.cluster.create("v1/nodes", node("pod-node"))
    source = await open_source(ClusterMonitorSettings(env="test", cluster_name="home"))
    try:
        assert isinstance(source, KubernetesSource) and list(source.clients) == ["home"]
        (cluster,) = await source.snapshot()
        assert cluster.error is None and [n.name for n in cluster.nodes] == ["pod-node"]
    finally:
        await source.close()
