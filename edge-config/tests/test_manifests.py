"""GET /kubernetes/manifests: multi-document YAML of the healthy devices' objects, valid for a recent Kubernetes."""

import kubernetes_validate
import pytest
import yaml

from tests.support.servers import host_address

# The newest Kubernetes the validator knows (Endpoints is deprecated since 1.33 but still served).
KUBERNETES_VERSION = kubernetes_validate.latest_version()


LAN, LAN6 = host_address(4), host_address(6)


@pytest.mark.skipif(LAN is None or LAN6 is None, reason="needs a non-loopback IPv4 and IPv6 address")
async def test_manifests_validate_strictly_for_a_recent_kubernetes(edge, farm):
    await edge.register("v4", await farm.start(host=LAN), port=9100, device_type="jetson_orin")
    await edge.register("v6", await farm.start(host=LAN6), port=9200, device_type="rpi5")
    await edge.register("sick", await farm.start(health=500))
    await edge.register("noip")
    # A healthy device on loopback: probed and listed, but never an endpoint; the stream says why.
    await edge.register("local", await farm.start())
    await edge.probe_round()

    answer = await edge.client.get("/kubernetes/manifests", params={"namespace": "edge-metrics"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/yaml")
    assert "# skipped local: 127.0.0.1 is a loopback address, which Kubernetes Endpoints cannot hold" in answer.text
    documents = list(yaml.safe_load_all(answer.text))
    assert [(d["kind"], d["metadata"]["name"]) for d in documents] == [
        ("Service", "edge-device-v4"), ("Endpoints", "edge-device-v4"), ("EndpointSlice", "edge-device-v4"),
        ("Service", "edge-device-v6"), ("Endpoints", "edge-device-v6"), ("EndpointSlice", "edge-device-v6"),
    ]  # fmt: skip
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        assert document["metadata"]["namespace"] == "edge-metrics"
        assert document["metadata"]["labels"]["app"] == "edge-exporter"
        # The original edge server's documented selector (-l managed_by=edge-metrics-server) and the standard label both
        # find them.
        assert document["metadata"]["labels"]["managed_by"] == "edge-metrics-server"
        assert document["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "edge-config"
    assert documents[5]["addressType"] == "IPv6" and documents[4]["subsets"][0]["addresses"] == [{"ip": LAN6}]


async def test_no_healthy_devices_is_an_empty_stream(edge):
    answer = await edge.client.get("/kubernetes/manifests")
    assert answer.status_code == 200 and list(yaml.safe_load_all(answer.text)) == []
    assert "monitoring" in answer.text
