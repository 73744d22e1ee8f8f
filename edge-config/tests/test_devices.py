"""Devices: health from background probe rounds against real device doubles, reloads, local config, summaries."""

from tests.support.polling import eventually
from tests.support.servers import free_port


async def test_health_as_the_original_server_decides_it(edge, farm):
    healthy, failing, hanging = await farm.start(), await farm.start(health=500), await farm.start(hang=True)
    await edge.register("good", healthy)
    await edge.register("bad", failing)
    await edge.register("stuck", hanging)
    await edge.client.put(
        "/config/gone", json={"device_type": "rpi4", "ip_address": "127.0.0.1", "reload_port": free_port()}
    )
    await edge.register("noip")

    before = (await edge.client.get("/devices")).json()
    assert {d["status"] for d in before["devices"]} == {"unknown"}  # nothing is probed inside a request

    round_ = await edge.probe_round()
    assert round_["devices"] == 5
    assert round_["by_status"] == {"healthy": 1, "unhealthy": 1, "unreachable": 2, "unknown": 1}

    devices = {d["device_id"]: d for d in (await edge.client.get("/devices")).json()["devices"]}
    assert devices["good"]["status"] == "healthy" and devices["good"]["error"] is None
    assert devices["good"]["last_seen"] == devices["good"]["checked_at"] is not None
    assert devices["bad"]["status"] == "unhealthy" and "HTTP 500" in devices["bad"]["error"]
    assert devices["bad"]["last_seen"] is None and devices["bad"]["consecutive_failures"] == 1
    assert devices["stuck"]["status"] == "unreachable" and "no answer within 0.5 s" in devices["stuck"]["error"]
    assert devices["gone"]["status"] == "unreachable"
    assert devices["noip"]["status"] == "unknown" and devices["noip"]["checked_at"] is None
    assert healthy.count("GET /health") == 1 and failing.count("GET /health") == 1


async def test_probes_run_concurrently(start_edge, farm):
    hanging = await farm.start(hang=True)
    # A timeout long enough that no probe gives up before the last one has started, however loaded the machine.
    async with start_edge(health_timeout_s=5.0) as edge:
        for n in range(5):
            await edge.register(f"stuck-{n}", hanging)
        await edge.probe_round()
    # All five probes were waiting on the device at the same time, not one after another.
    assert hanging.most_in_flight["GET /health"] == 5


async def test_answers_come_from_the_background_rounds(start_edge, farm):
    device = await farm.start()
    async with start_edge(health_interval_s=0.05) as edge:
        await edge.register("live", device)

        async def healthy():
            return (await edge.status("live"))["status"] == "healthy"

        await eventually(healthy)
        device.health = 503
        first = (await edge.status("live"))["checked_at"]

        async def failing_twice():
            status = await edge.status("live")
            return status["consecutive_failures"] >= 2 and status

        status = await eventually(failing_twice)
        assert status["status"] == "unhealthy" and status["checked_at"] > first and status["last_seen"] <= first


async def test_a_moved_device_starts_again_as_unknown(edge, farm):
    first, second = await farm.start(health=500), await farm.start()
    await edge.register("mover", first)
    await edge.probe_round()
    assert (await edge.status("mover"))["consecutive_failures"] == 1
    await edge.register("mover", second)
    moved = await edge.status("mover")
    assert moved["status"] == "unknown" and moved["consecutive_failures"] == 0
    await edge.probe_round()
    assert (await edge.status("mover"))["status"] == "healthy"


async def test_devices_list_keeps_the_dashboards_shape(edge, farm):
    empty = (await edge.client.get("/api/edge/devices")).json()
    assert empty["devices"] == [] and (empty["total"], empty["healthy"], empty["unhealthy"]) == (0, 0, 0)
    await edge.register("one", await farm.start())
    await edge.register("two", await farm.start(health=500))
    await edge.probe_round()
    listing = (await edge.client.get("/api/edge/devices")).json()
    assert (listing["total"], listing["healthy"], listing["unhealthy"]) == (2, 1, 1)
    for device in listing["devices"]:
        assert {"device_id", "device_type", "ip_address", "port", "reload_port", "status", "last_seen", "error"} <= set(
            device
        )
    assert listing["last_probe_round"]["devices"] == 2


async def test_metrics_summary_does_not_collide_with_prometheus_metrics(edge, farm):
    await edge.register("a", await farm.start())
    await edge.register("b", await farm.start(health=500), device_type="rpi4")
    await edge.register("c", device_type="rpi4")
    await edge.probe_round()
    for prefix in ("", "/api/edge"):
        summary = (await edge.client.get(f"{prefix}/metrics/summary")).json()
        assert (summary["total"], summary["healthy"], summary["unhealthy"]) == (3, 1, 2)
        assert summary["by_device_type"] == {"jetson_orin": 1, "rpi4": 2}
    prometheus = await edge.client.get("/metrics")
    assert prometheus.status_code == 200 and "http_requests_total" in prometheus.text


async def test_patch_device_changes_basic_fields_without_a_reload(edge, farm):
    device = await farm.start()
    await edge.register("dev")
    change = {"ip_address": "127.0.0.1", "reload_port": device.port, "port": 9200, "device_type": "rpi5"}
    answer = await edge.client.patch("/devices/dev", json=change)
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "updated" and body["changed"] is True and "reload_triggered" not in body
    assert body["device"]["port"] == 9200 and body["device"]["device_type"] == "rpi5"
    assert body["device"]["reload_pending"] is False
    assert (await edge.client.patch("/devices/dev", json={"enabled_metrics": ["x"]})).status_code == 422
    assert (await edge.client.patch("/devices/dev", json={"ip_address": "nope"})).status_code == 422
    await edge.probe_round()  # the device is reachable, and still it was never told to reload
    assert device.count("GET /health") == 1 and device.count("POST /reload") == 0


async def test_put_reloads_the_device_in_the_background(edge, farm):
    device = await farm.start()
    answer = await edge.register("reloader", device)
    assert answer["reload_triggered"] is True

    async def recorded():
        return (await edge.status("reloader"))["last_reload"]

    outcome = await eventually(recorded)
    assert outcome["status"] == "reloaded" and outcome["attempts"] == 1 and outcome["error"] is None
    assert device.count("POST /reload") == 1

    patched = (await edge.client.patch("/config/reloader", json={"enabled_metrics": ["gpu"]})).json()
    assert patched["reload_triggered"] is True

    async def reloaded_again():
        return device.count("POST /reload") == 2

    await eventually(reloaded_again)


async def test_a_failing_reload_is_retried_and_recorded(edge, farm):
    device = await farm.start(reload=500)
    await edge.register("flaky", device)

    async def recorded():
        return (await edge.status("flaky"))["last_reload"]

    outcome = await eventually(recorded)
    assert outcome["status"] == "failed" and outcome["attempts"] == 3 and "HTTP 500" in outcome["error"]
    assert device.count("POST /reload") == 3
    stats = (await edge.client.get("/stats")).json()
    assert stats["reloads"]["failed"] == 1


async def test_a_hanging_reload_does_not_delay_the_answer(edge, farm):
    device = await farm.start(hang=True)
    answer = await edge.register("slow", device)
    assert answer["reload_triggered"] is True
    assert (await edge.status("slow"))["reload_pending"] is True

    async def recorded():
        return (await edge.status("slow"))["last_reload"]

    outcome = await eventually(recorded)
    assert outcome["status"] == "failed" and "no answer within 0.5 s" in outcome["error"]


async def test_reload_one_and_all(edge, farm):
    good, bad = await farm.start(), await farm.start(reload=500)
    await edge.client.put("/config/good", json={"device_type": "rpi4"})
    await edge.client.put("/config/bad", json={"device_type": "rpi4"})
    await edge.client.patch("/devices/good", json={"ip_address": "127.0.0.1", "reload_port": good.port})
    await edge.client.patch("/devices/bad", json={"ip_address": "127.0.0.1", "reload_port": bad.port})
    await edge.register("noip")

    one = await edge.client.post("/devices/good/reload")
    assert one.status_code == 200 and one.json() == {"device_id": "good", "status": "reloaded", "error": None}
    failed = await edge.client.post("/api/edge/devices/bad/reload")
    assert failed.status_code == 502
    assert failed.json()["status"] == "failed" and "HTTP 500" in failed.json()["detail"]
    assert (await edge.client.post("/devices/noip/reload")).status_code == 409

    everyone = (await edge.client.post("/devices/reload")).json()
    assert (everyone["total"], everyone["success"], everyone["failed"]) == (2, 1, 1)
    assert {r["device_id"]: r["status"] for r in everyone["results"]} == {"good": "reloaded", "bad": "failed"}
    assert (await edge.status("bad"))["last_reload"]["status"] == "failed"


async def test_local_config_is_proxied_from_the_device(edge, farm):
    device = await farm.start()
    device.config = {"device_type": "jetson_orin", "port": 9100, "enabled_metrics": ["gpu"]}
    await edge.register("local", device)
    answer = await edge.client.get("/devices/local/local-config")
    assert answer.status_code == 200
    assert answer.json() == {"device_id": "local", "local_config": device.config}


async def test_local_config_failures_name_the_device(edge, farm):
    await edge.register("stuck", await farm.start(hang=True))
    await edge.register("broken", await farm.start(health=500))
    await edge.client.put(
        "/config/down", json={"device_type": "rpi4", "ip_address": "127.0.0.1", "reload_port": free_port()}
    )
    await edge.register("noip")
    timeout = await edge.client.get("/devices/stuck/local-config")
    assert timeout.status_code == 504 and "no answer within 0.5 s" in timeout.json()["detail"]
    down = await edge.client.get("/devices/down/local-config")
    assert down.status_code == 502 and "/config" in down.json()["detail"]
    assert (await edge.client.get("/devices/noip/local-config")).status_code == 409


async def test_stats_and_ready(edge, farm):
    await edge.register("s1", await farm.start())
    await edge.register("s2")
    await edge.probe_round()
    stats = (await edge.client.get("/stats")).json()
    assert stats["devices"] == {"total": 2, "by_status": {"healthy": 1, "unhealthy": 0, "unreachable": 0, "unknown": 1}}
    assert stats["health_probes"]["last_round"]["devices"] == 2 and stats["health_probes"]["interval_s"] == 3600
    assert stats["db"]["status"] == "ok"
    assert stats["kubernetes"] == {
        "configured": False,
        "api_server": stats["kubernetes"]["api_server"],
        "last_sync": None,
    }
    ready = await edge.client.get("/ready")
    assert ready.status_code == 200 and ready.json()["checks"] == {"db": "ok"}
