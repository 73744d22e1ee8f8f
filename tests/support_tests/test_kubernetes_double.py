"""The shared Kubernetes API double (tests/support/kubernetes.py) driven by the real kubernetes_asyncio client."""

import pytest
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException


async def _client(kube_api, context: str) -> client.ApiClient:
    return await config.new_client_from_config(str(kube_api.kubeconfig), context=context)


async def test_two_contexts_are_two_separate_clusters(kube_api):
    await kube_api.clusters["member1"].create("v1/nodes", {"metadata": {"name": "a"}})
    await kube_api.clusters["member2"].create("v1/nodes", {"metadata": {"name": "b"}})
    contexts, current = config.list_kube_config_contexts(str(kube_api.kubeconfig))
    assert [c["name"] for c in contexts] == ["member1", "member2"]
    assert current["name"] == "member1"
    for context, expected in (("member1", ["a"]), ("member2", ["b"])):
        async with await _client(kube_api, context) as api:
            nodes = await client.CoreV1Api(api).list_node()
            assert [n.metadata.name for n in nodes.items] == expected
            assert nodes.items[0].metadata.uid
            assert nodes.items[0].metadata.creation_timestamp is not None


@pytest.mark.kube_contexts("edge")
async def test_services_endpoints_and_slices_round_trip_with_label_selectors(kube_api):
    async with await _client(kube_api, "edge") as api:
        core = client.CoreV1Api(api)
        labels = {"app": "edge-exporter", "device_id": "d1"}
        service = client.V1Service(
            metadata=client.V1ObjectMeta(name="edge-device-d1", labels=labels),
            spec=client.V1ServiceSpec(cluster_ip="None", ports=[client.V1ServicePort(name="metrics", port=9100)]),
        )
        created = await core.create_namespaced_service("monitoring", service)
        assert created.metadata.namespace == "monitoring"
        await core.create_namespaced_service(
            "monitoring", client.V1Service(metadata=client.V1ObjectMeta(name="other", labels={"app": "x"}))
        )
        await core.create_namespaced_endpoints(
            "monitoring",
            client.V1Endpoints(
                metadata=client.V1ObjectMeta(name="edge-device-d1", labels=labels),
                subsets=[client.V1EndpointSubset(addresses=[client.V1EndpointAddress(ip="10.0.0.5")])],
            ),
        )
        listed = await core.list_namespaced_service("monitoring", label_selector="app=edge-exporter")
        assert [s.metadata.name for s in listed.items] == ["edge-device-d1"]
        assert len((await core.list_namespaced_service("monitoring", label_selector="app!=edge-exporter")).items) == 1
        assert len((await core.list_namespaced_service("monitoring", label_selector="app in (x, y)")).items) == 1
        assert len((await core.list_namespaced_service("monitoring", label_selector="device_id")).items) == 1
        assert len((await core.list_namespaced_service("monitoring", label_selector="!device_id")).items) == 1
        both = "app notin (edge-exporter),!device_id"
        assert [
            s.metadata.name for s in (await core.list_namespaced_service("monitoring", label_selector=both)).items
        ] == ["other"]
        assert len((await core.list_namespaced_service("default")).items) == 0

        patched = await core.patch_namespaced_service(
            "edge-device-d1", "monitoring", {"metadata": {"labels": {"v": "2"}}}
        )
        assert patched.metadata.labels == {**labels, "v": "2"}
        before = patched.metadata.resource_version
        replaced = await core.replace_namespaced_endpoints(
            "edge-device-d1",
            "monitoring",
            client.V1Endpoints(
                metadata=client.V1ObjectMeta(name="edge-device-d1", labels=labels),
                subsets=[client.V1EndpointSubset(addresses=[client.V1EndpointAddress(ip="10.0.0.6")])],
            ),
        )
        assert replaced.subsets[0].addresses[0].ip == "10.0.0.6"
        assert replaced.metadata.resource_version != before

        discovery = client.DiscoveryV1Api(api)
        await discovery.create_namespaced_endpoint_slice(
            "monitoring",
            client.V1EndpointSlice(
                metadata=client.V1ObjectMeta(name="edge-device-d1-abc", labels=labels),
                address_type="IPv4",
                endpoints=[client.V1Endpoint(addresses=["10.0.0.6"])],
            ),
        )
        slices = await discovery.list_namespaced_endpoint_slice("monitoring", label_selector="device_id=d1")
        assert slices.items[0].endpoints[0].addresses == ["10.0.0.6"]

        await core.delete_namespaced_service("edge-device-d1", "monitoring")
        with pytest.raises(ApiException) as missing:
            await core.read_namespaced_service("edge-device-d1", "monitoring")
        assert missing.value.status == 404
        with pytest.raises(ApiException) as replaced_missing:
            await core.replace_namespaced_service("edge-device-d1", "monitoring", service)
        assert replaced_missing.value.status == 404


async def test_metrics_api_is_404_until_served_and_field_selectors_filter_pods(kube_api):
    member1 = kube_api.clusters["member1"]
    async with await _client(kube_api, "member1") as api:
        custom = client.CustomObjectsApi(api)
        with pytest.raises(ApiException) as absent:
            await custom.list_cluster_custom_object("metrics.k8s.io", "v1beta1", "nodes")
        assert absent.value.status == 404
        member1.enable("metrics.k8s.io/v1beta1/nodes", kind="NodeMetrics")
        assert (await custom.list_cluster_custom_object("metrics.k8s.io", "v1beta1", "nodes"))["items"] == []
        await member1.create("metrics.k8s.io/v1beta1/nodes", {"metadata": {"name": "a"}, "usage": {"cpu": "250m"}})
        listed = await custom.list_cluster_custom_object("metrics.k8s.io", "v1beta1", "nodes")
        assert listed["items"][0]["usage"] == {"cpu": "250m"}

        for name, node in (("p1", "a"), ("p2", "b")):
            spec = {"nodeName": node, "containers": [{"name": "c", "image": "nginx"}]}
            await member1.create("v1/pods", {"metadata": {"name": name}, "spec": spec}, "default")
        pods = await client.CoreV1Api(api).list_pod_for_all_namespaces(field_selector="spec.nodeName=b")
        assert [p.metadata.name for p in pods.items] == ["p2"]


async def test_a_change_during_the_test_is_seen_by_the_next_read(kube_api):
    member2 = kube_api.clusters["member2"]
    ready = {"type": "Ready", "status": "True"}
    await member2.create("v1/nodes", {"metadata": {"name": "n"}, "status": {"conditions": [ready]}})
    await member2.patch("v1/nodes", "n", {"status": {"conditions": [{**ready, "status": "False"}]}})
    async with await _client(kube_api, "member2") as api:
        node = await client.CoreV1Api(api).read_node("n")
    assert node.status.conditions[0].status == "False"
    assert (await member2.get("v1/nodes", "missing")) is None
