"""Device configs: the original edge server's shapes at the root and under /api/edge, validation, versioning and
history."""

import pytest

PREFIXES = ["", "/api/edge"]


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_put_get_list_delete_in_the_original_shapes(edge, prefix):
    client = edge.client
    body = {"device_type": "jetson_orin", "ip_address": "192.168.1.10", "enabled_metrics": ["cpu"], "site": "lab"}
    answer = await client.put(f"{prefix}/config/edge-01", json=body)
    assert answer.status_code == 200
    # No device answers at 192.168.1.10 here: the reload is triggered in the background and fails there.
    assert answer.json() | {"version": 1} == {
        "status": "registered", "device_id": "edge-01", "reload_triggered": True, "version": 1, "changed": True,
    }  # fmt: skip

    config = (await client.get(f"{prefix}/config/edge-01")).json()
    assert config == {
        "device_type": "jetson_orin", "port": 9100, "reload_port": 9101, "ip_address": "192.168.1.10",
        "enabled_metrics": ["cpu"], "site": "lab",
    }  # fmt: skip
    listing = (await client.get(f"{prefix}/config")).json()
    assert listing == {"configs": [{"device_id": "edge-01", **config}], "total": 1}

    again = (await client.put(f"{prefix}/config/edge-01", json={"device_type": "rpi4"})).json()
    # A full replace; on the device-facing root paths a PUT without an address keeps the known one.
    kept = {"ip_address": "192.168.1.10"} if prefix == "" else {}
    assert again["status"] == "updated" and again["reload_triggered"] is bool(kept) and again["version"] == 2
    assert (await client.get(f"{prefix}/config/edge-01")).json() == {
        "device_type": "rpi4", "port": 9100, "reload_port": 9101, **kept,
    }  # fmt: skip

    deleted = await client.delete(f"{prefix}/config/edge-01")
    assert deleted.json() == {"status": "deleted", "device_id": "edge-01"}
    assert (await client.get(f"{prefix}/config")).json() == {"configs": [], "total": 0}


async def test_unknown_device_is_404_in_both_shapes(edge):
    for method, path in [
        ("GET", "/config/ghost"),
        ("PATCH", "/config/ghost"),
        ("DELETE", "/api/edge/config/ghost"),
        ("GET", "/config/ghost/history"),
        ("GET", "/devices/ghost/status"),
        ("PATCH", "/devices/ghost"),
        ("POST", "/devices/ghost/reload"),
        ("GET", "/api/edge/devices/ghost/local-config"),
    ]:
        answer = await edge.client.request(method, path, json={} if method == "PATCH" else None)
        assert answer.status_code == 404, (method, path, answer.text)
        body = answer.json()
        assert body["error"] == "Device not found" and body["device_id"] == "ghost"
        assert body["message"] == body["detail"] == "device 'ghost' not found"
        assert body["request_id"] == answer.headers["X-Request-ID"]


async def test_ids_are_lower_cased_everywhere(edge):
    await edge.client.put("/config/Jetson-01", json={"device_type": "jetson_orin"})
    assert (await edge.client.get("/config/JETSON-01")).status_code == 200
    listing = (await edge.client.get("/config")).json()
    assert [c["device_id"] for c in listing["configs"]] == ["jetson-01"]
    assert (await edge.client.get("/devices/jetson-01/status")).status_code == 200


@pytest.mark.parametrize(
    "device_id",
    ["under_score", "-leading", "trailing-", "dot.ted", "x" * 52, "sp%20ace", "%C3%A9t%C3%A9"],
)
async def test_device_ids_that_cannot_name_a_kubernetes_object_are_422(edge, device_id):
    answer = await edge.client.put(f"/config/{device_id}", json={"device_type": "rpi4"})
    assert answer.status_code == 422
    assert "DNS-1123" in answer.json()["detail"] and "51" in answer.json()["detail"]


async def test_the_longest_id_fits(edge):
    assert (await edge.client.put(f"/config/{'x' * 51}", json={"device_type": "rpi4"})).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"port": 9100},
        {"device_type": ""},
        {"device_type": "has space"},
        {"device_type": 5},
        {"device_type": "rpi4", "port": "9100"},
        {"device_type": "rpi4", "port": 0},
        {"device_type": "rpi4", "port": 70000},
        {"device_type": "rpi4", "reload_port": True},
        {"device_type": "rpi4", "ip_address": "300.1.1.1"},
        {"device_type": "rpi4", "ip_address": "edge.example.com"},
        {"device_type": "rpi4", "enabled_metrics": "cpu"},
        {"device_type": "rpi4", "device_id": "someone-else"},
        {"device_type": "rpi4", "k" * 129: 1},
        ["device_type", "rpi4"],
        "rpi4",
    ],
)
async def test_bad_configs_are_422(edge, body):
    answer = await edge.client.put("/config/edge-01", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"]
    assert (await edge.client.get("/config/edge-01")).status_code == 404


async def test_bad_json_and_huge_bodies_are_4xx(edge):
    answer = await edge.client.put(
        "/config/edge-01", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 422
    big = {"device_type": "rpi4", "blob": "x" * 70_000}
    assert (await edge.client.put("/config/edge-01", json=big)).status_code == 413
    huge = {"device_type": "rpi4", "blob": "x" * 2_000_000}
    answer = await edge.client.put("/config/edge-01", json=huge)
    assert answer.status_code == 413 and answer.json()["request_id"]


async def test_ipv6_addresses_are_kept_canonical(edge):
    await edge.client.put("/config/v6", json={"device_type": "rpi4", "ip_address": "FD00:0::1"})
    assert (await edge.client.get("/config/v6")).json()["ip_address"] == "fd00::1"


async def test_post_creates_only(edge):
    body = {"device_type": "rpi4", "ip_address": "10.0.0.5"}
    created = await edge.client.post("/config/edge-02", json=body)
    assert created.status_code == 201
    assert created.json() == {"status": "created", "device_id": "edge-02", "version": 1}
    again = await edge.client.post("/config/edge-02", json=body)
    assert again.status_code == 409 and again.json()["detail"] == "device 'edge-02' already exists"
    missing_ip = await edge.client.post("/config/edge-03", json={"device_type": "rpi4"})
    assert missing_ip.status_code == 422 and "ip_address" in missing_ip.json()["detail"]


async def test_patch_changes_part_and_null_resets_to_the_default(edge):
    await edge.client.put(
        "/config/edge-04",
        json={"device_type": "rpi4", "port": 9200, "ip_address": "10.0.0.4", "enabled_metrics": ["cpu"], "a": 1},
    )
    answer = await edge.client.patch("/config/edge-04", json={"port": None, "enabled_metrics": None, "a": None, "b": 2})
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "patched" and body["reload_triggered"] is True and body["version"] == 2
    assert body["config"] == {
        "device_type": "rpi4",
        "port": 9100,
        "reload_port": 9101,
        "ip_address": "10.0.0.4",
        "b": 2,
    }
    cleared = (await edge.client.patch("/config/edge-04", json={"ip_address": None})).json()
    assert cleared["reload_triggered"] is False and "ip_address" not in cleared["config"]
    refused = await edge.client.patch("/config/edge-04", json={"device_type": None})
    assert refused.status_code == 422
    assert (await edge.client.patch("/config/edge-04", json={"port": "x"})).status_code == 422


async def test_every_change_is_versioned_and_nothing_is_lost(edge):
    client = edge.client
    await client.put("/config/edge-05", json={"device_type": "rpi4", "note": "first"})
    await client.put("/config/edge-05", json={"device_type": "rpi4", "note": "first"})  # no change: no version
    await client.put("/config/edge-05", json={"device_type": "rpi5"})  # an overwrite drops `note`...
    await client.patch("/config/edge-05", json={"port": 9300})
    await client.patch("/devices/edge-05", json={"reload_port": 9400})
    await client.delete("/config/edge-05")
    await client.put("/config/edge-05", json={"device_type": "rpi5"})

    history = (await client.get("/config/edge-05/history")).json()
    assert history["device_id"] == "edge-05" and history["total"] == 6
    assert [v["version"] for v in history["versions"]] == [1, 2, 3, 4, 5, 6]
    assert [v["action"] for v in history["versions"]] == [
        "created", "updated", "patched", "device-patched", "deleted", "created",
    ]  # fmt: skip
    assert history["versions"][0]["config"]["note"] == "first"  # ...but the history keeps it
    assert history["versions"][4]["config"]["reload_port"] == 9400  # the deleted config is kept too
    assert all(v["changed_at"] for v in history["versions"])
    assert (await client.get("/api/edge/config/edge-05/history")).json() == history


async def test_concurrent_upserts_of_one_new_device_all_succeed(edge):
    import asyncio

    answers = await asyncio.gather(
        *(edge.client.put("/config/race", json={"device_type": "rpi4", "n": n}) for n in range(8))
    )
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert sorted(a.json()["status"] for a in answers).count("registered") == 1
    history = (await edge.client.get("/config/race/history")).json()
    assert [v["version"] for v in history["versions"]] == list(range(1, history["total"] + 1))
