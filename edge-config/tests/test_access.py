"""Who may do what, which addresses edge-config connects to, and devices that register themselves as the
original edge server's exporter does: each finding of a probe as an attacker, and of running that device software."""

import asyncio
import uuid

import pytest

from tests.support.polling import eventually

ANONYMOUS_WRITES = [
    ("PUT", "/api/edge/config/dev", {"device_type": "x"}),
    ("POST", "/api/edge/config/dev", {"device_type": "x", "ip_address": "192.0.2.9"}),
    ("PATCH", "/config/dev", {"port": 9200}),
    ("DELETE", "/api/edge/config/dev", None),
    ("DELETE", "/config/dev", None),
    ("PATCH", "/devices/dev", {"port": 1}),
    ("POST", "/api/edge/devices/dev/reload", None),
    ("POST", "/devices/reload", None),
    ("GET", "/api/edge/devices/dev/local-config", None),
    ("POST", "/api/edge/kubernetes/sync", {"namespace": "monitoring"}),
    ("POST", "/kubernetes/sync/dev", None),
    ("DELETE", "/api/edge/kubernetes/cleanup", None),
    ("DELETE", "/kubernetes/resources/dev", None),
    # On the device-facing root paths only a device's own GET/PUT /config/{id} is open.
    ("GET", "/devices", None),
    ("GET", "/config", None),
]


async def test_writes_reloads_and_sync_need_an_admin_token(edge, auth_processes):
    await edge.register("dev")
    for method, path, body in ANONYMOUS_WRITES:
        answer = await edge.anonymous.request(method, path, json=body)
        assert answer.status_code == 401, (method, path, answer.text)
        assert answer.headers["WWW-Authenticate"] == "Bearer"
    user = {"Authorization": f"Bearer {await auth_processes.user_token(f'edge-user-{uuid.uuid4().hex[:8]}')}"}
    for method, path, body in ANONYMOUS_WRITES:
        answer = await edge.anonymous.request(method, path, json=body, headers=user)
        assert answer.status_code == 403 and "an admin token is required" in answer.json()["detail"], (method, path)
    # Reads through the gateway stay open; nothing was changed by all of the above.
    assert (await edge.anonymous.get("/api/edge/config/dev")).json() == {
        "device_type": "jetson_orin", "port": 9100, "reload_port": 9101,
    }  # fmt: skip
    assert (await edge.anonymous.get("/api/edge/devices")).status_code == 200


@pytest.mark.parametrize(
    ("address", "port", "why"),
    [
        ("127.0.0.1", 9101, "loopback"),
        ("::ffff:127.0.0.1", 9101, "loopback"),
        ("169.254.169.254", 80, "link-local or cloud metadata"),
        ("fd00:ec2::254", 80, "link-local or cloud metadata"),
        ("0.0.0.0", 9101, "unspecified"),
        ("224.0.0.1", 9101, "multicast"),
    ],
)
async def test_device_addresses_the_policy_refuses_are_422(start_edge, address, port, why):
    async with start_edge(device_allowed_cidrs="") as edge:
        body = {"device_type": "x", "ip_address": address, "reload_port": port}
        answer = await edge.client.put("/api/edge/config/ssrf", json=body)
        assert answer.status_code == 422 and why in answer.json()["detail"], answer.text
        assert (await edge.client.get("/api/edge/config/ssrf")).status_code == 404


async def test_the_suites_own_services_are_refused_even_where_loopback_is_admitted(start_edge, farm):
    own = await farm.start()
    async with start_edge(suite_urls=f"http://127.0.0.1:{own.port}") as edge:
        # Loopback is admitted here (the test default); the suite's own endpoint is not, on either port.
        for field in ("reload_port", "port"):
            body = {"device_type": "x", "ip_address": "127.0.0.1", field: own.port}
            answer = await edge.client.put("/config/probe", json=body)
            assert answer.status_code == 422 and "one of the suite's own services" in answer.json()["detail"]
        assert own.calls == []


async def test_a_stored_address_the_policy_now_refuses_is_never_contacted(start_edge, farm):
    device = await farm.start()
    async with start_edge() as edge:
        await edge.register("old", device)
    async with start_edge(device_allowed_cidrs="") as edge:
        seen = len(device.calls)  # the reload after registering
        await edge.probe_round()
        status = await edge.status("old")
        assert status["status"] == "unreachable" and status["error"].startswith("not contacted: 127.0.0.1 is")
        reload = await edge.client.post("/devices/old/reload")
        assert reload.status_code == 502 and "not contacted" in reload.json()["error"]
        assert (await edge.client.get("/devices/old/local-config")).status_code == 403
    assert device.calls[seen:] == []


async def test_an_anonymous_device_must_call_from_an_admitted_address(start_edge):
    async with start_edge(device_allowed_cidrs="") as edge:
        answer = await edge.anonymous.put("/config/lonely", json={"device_type": "x"})
        assert answer.status_code == 401 and "only from an admitted address" in answer.json()["detail"]
        assert (await edge.anonymous.get("/config/lonely")).status_code == 401


async def test_the_original_exporter_registers_itself_and_is_probed_and_reloaded(edge, farm):
    """What the original edge server's exporter does in the field: GET /config/{hostname} → 404 → PUT its local
    config, no token, no ip_address; it serves /health and /reload on its reload_port."""
    exporter = await farm.start()
    local = {"device_type": "jetson_orin", "port": 9100, "reload_port": exporter.port, "enabled_metrics": ["cpu"]}
    assert (await edge.anonymous.get("/config/jetson-lab-7")).status_code == 404
    registered = await edge.anonymous.put("/config/jetson-lab-7", json=local)
    assert registered.status_code == 200 and registered.json()["status"] == "registered"
    # Recorded at the connection's source address: it is probed without anyone typing an IP.
    assert (await edge.anonymous.get("/config/jetson-lab-7")).json()["ip_address"] == "127.0.0.1"
    await edge.probe_round()
    assert (await edge.status("jetson-lab-7"))["status"] == "healthy"

    # An operator changes its config: the device is told to reload (as after its registration).
    async def reloads(count):
        return exporter.count("POST /reload") == count

    await eventually(lambda: reloads(1))
    changed = await edge.client.patch("/api/edge/config/jetson-lab-7", json={"enabled_metrics": ["cpu", "gpu"]})
    assert changed.json()["reload_triggered"] is True
    await eventually(lambda: reloads(2))
    # The exporter fetches its new config, anonymously, as after every reload.
    assert (await edge.anonymous.get("/config/jetson-lab-7")).json()["enabled_metrics"] == ["cpu", "gpu"]


async def test_an_update_from_loopback_keeps_a_known_real_address(edge):
    await edge.client.put("/api/edge/config/field-1", json={"device_type": "rpi4", "ip_address": "192.0.2.77"})
    update = await edge.anonymous.put("/config/field-1", json={"device_type": "rpi5"})
    assert update.status_code == 200
    config = (await edge.client.get("/config/field-1")).json()
    assert (config["device_type"], config["ip_address"]) == ("rpi5", "192.0.2.77")
    # Without a token, a device may not move a registered device elsewhere.
    moved = await edge.anonymous.put("/config/field-1", json={"device_type": "rpi5", "ip_address": "192.0.2.78"})
    assert moved.status_code == 403


async def test_behind_a_trusted_proxy_the_forwarded_address_is_learned(start_edge, monkeypatch):
    # uvicorn trusts X-Forwarded-For from the proxies in FORWARDED_ALLOW_IPS (127.0.0.1 unless set).
    async with start_edge() as edge:
        # The proxy appends the device's address; what the client itself claimed further left is not believed.
        forwarded = {"X-Forwarded-For": "203.0.113.5, 192.0.2.99"}
        answer = await edge.anonymous.put("/config/behind", json={"device_type": "x"}, headers=forwarded)
        assert answer.status_code == 200, answer.text
        assert (await edge.client.get("/config/behind")).json()["ip_address"] == "192.0.2.99"
        elsewhere = {"X-Forwarded-For": "192.0.2.100"}
        assert (
            await edge.anonymous.put("/config/behind", json={"device_type": "x"}, headers=elsewhere)
        ).status_code == 403
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "192.0.2.1")
    async with start_edge() as edge:  # not from a trusted proxy: the header is the client's word, and ignored
        await edge.anonymous.put("/config/direct", json={"device_type": "x"}, headers={"X-Forwarded-For": "192.0.2.5"})
        assert (await edge.client.get("/config/direct")).json()["ip_address"] == "127.0.0.1"


async def test_the_documented_curl_without_a_content_type_is_accepted(edge):
    """`curl -X PUT .../config/edge-01 -d '{...}'` sends application/x-www-form-urlencoded."""
    body = b'{"device_type": "jetson_orin", "ip_address": "192.0.2.10"}'
    form = await edge.client.put(
        "/config/edge-01", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert form.status_code == 200, form.text
    bare = await edge.client.put("/config/edge-02", content=body)  # httpx sends raw content with no Content-Type
    assert "content-type" not in bare.request.headers and bare.status_code == 200, bare.text


async def test_a_chunked_body_over_the_limit_is_413(edge):
    async def chunks():
        for _ in range(40):
            yield b'{"device_type": "x", "pad": "' + b"a" * 65536
            await asyncio.sleep(0)

    answer = await edge.client.put("/config/huge", content=chunks(), headers={"Content-Type": "application/json"})
    assert answer.status_code == 413 and "over 1048576 bytes" in answer.json()["detail"]
