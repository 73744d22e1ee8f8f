import asyncio
import json
import logging
import secrets
import time

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families
from yarl import URL

from tests.support.polling import eventually
from tests.support.servers import serving
from titanium_common.aiohttp_app import KIT, add_proxy_route, create_aiohttp_app
from titanium_common.settings import ServiceSettings


async def item(request: web.Request) -> web.Response:
    if request.match_info["id"] == "13":
        raise RuntimeError("boom")
    return web.json_response({"id": request.match_info["id"]})


async def socket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for _ in ws:
        pass
    return ws


@pytest.fixture
async def base_url():
    app = create_aiohttp_app(ServiceSettings(service_name="demo-aio", env="test"))
    app.router.add_get("/api/items/{id}", item)
    app.router.add_get("/api/socket", socket)
    app.router.add_post("/api/items", item)
    async with serving(app) as url:
        yield url


async def test_request_id_round_trip_and_error_shapes(base_url):
    async with aiohttp.ClientSession(base_url) as http:
        async with http.get("/api/items/1", headers={"X-Request-ID": "aio-1"}) as r:
            assert r.status == 200 and r.headers["X-Request-ID"] == "aio-1"
        async with http.get("/api/items/13", headers={"X-Request-ID": "aio-500"}) as r:
            assert r.status == 500
            assert await r.json() == {
                "detail": "internal server error",
                "request_id": "aio-500",
                "trace_id": r.headers["X-Trace-Id"],
            }
        async with http.get("/nope", headers={"X-Request-ID": "aio-404"}) as r:
            assert r.status == 404
            assert await r.json() == {
                "detail": "not found: /nope",
                "request_id": "aio-404",
                "trace_id": r.headers["X-Trace-Id"],
            }
        async with http.delete("/api/items/1") as r:
            assert r.status == 405
            assert "GET" in r.headers["Allow"]
            assert (await r.json())["request_id"] == r.headers["X-Request-ID"]


async def test_kit_endpoints(base_url):
    async with aiohttp.ClientSession(base_url) as http:
        for _ in range(2):
            async with http.get("/api/items/7"):
                pass
        async with http.get("/health") as r:
            assert (await r.json())["status"] == "ok"
        async with http.get("/ready") as r:
            assert r.status == 200
        async with http.get("/stats") as r:
            stats = await r.json()
        assert stats["service"] == "demo-aio"
        assert stats["requests"]["total"] == 2
        async with http.get("/metrics") as r:
            text = await r.text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    totals = [s for s in families["http_requests"].samples if s.name == "http_requests_total"]
    assert any(s.labels["route"] == "/api/items/{id}" and s.value == 2 for s in totals)


async def test_failing_readiness_is_503():
    app = create_aiohttp_app(ServiceSettings(service_name="demo-aio", env="test"))

    async def never_ready():
        return False

    app[KIT].add_readiness_check("upstream", never_ready)
    async with serving(app) as url, aiohttp.ClientSession() as http, http.get(f"{url}/ready") as r:
        assert r.status == 503
        assert (await r.json())["checks"] == {"upstream": "failing"}


async def test_a_websocket_counts_as_a_request_but_its_lifetime_is_no_latency(base_url):
    async with aiohttp.ClientSession(base_url) as http:
        async with http.ws_connect("/api/socket") as ws:
            await asyncio.sleep(1.0)
            await ws.close()
        await asyncio.sleep(0.1)
        async with http.get("/stats") as r:
            requests = (await r.json())["requests"]
    assert requests["total"] == 1
    assert requests["latency_ms"]["p99"] < 1000


def access_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "titanium.access"]


async def test_with_access_log_every_probes_are_logged_at_debug_and_traffic_at_info(caplog):
    caplog.set_level(logging.INFO, logger="titanium.access")
    app = create_aiohttp_app(ServiceSettings(service_name="demo-aio", env="test", access_log="every"))
    app.router.add_get("/api/items/{id}", item)
    async with serving(app) as url, aiohttp.ClientSession(url) as http:
        for path in ("/health", "/ready", "/stats", "/metrics", "/api/items/5"):
            async with http.get(path):
                pass
        assert app[KIT].access_log._timer is None  # every line written: no summary
    lines = access_lines(caplog)
    assert len(lines) == 1 and lines[0].startswith("GET /api/items/5 200")


async def test_by_default_a_second_of_requests_is_one_info_line_and_errors_keep_theirs(base_url, caplog):
    caplog.set_level(logging.INFO, logger="titanium.access")
    async with aiohttp.ClientSession(base_url) as http:
        for path in ("/health", "/metrics", "/api/items/1", "/api/items/2", "/api/items/13", "/nope"):
            async with http.get(path):
                pass
    summary = await eventually(lambda: [line for line in access_lines(caplog) if "requests in the last" in line])
    assert len(summary) == 1
    assert summary[0].startswith("4 requests in the last 1 s (2xx 2, 4xx 1, 5xx 1), mean ")
    lines = access_lines(caplog)
    assert any(line.startswith("GET /api/items/13 500 ") for line in lines)
    assert any(line.startswith("GET /nope 404 ") for line in lines)
    assert not any(line.startswith(("GET /api/items/1 ", "GET /api/items/2 ", "GET /health")) for line in lines)


async def test_by_default_each_request_line_is_still_there_at_debug(base_url, caplog):
    caplog.set_level(logging.DEBUG, logger="titanium.access")
    async with aiohttp.ClientSession(base_url) as http, http.get("/api/items/7"):
        pass
    debug = [r.getMessage() for r in caplog.records if r.name == "titanium.access" and r.levelno == logging.DEBUG]
    assert any(line.startswith("GET /api/items/7 200 ") for line in debug)


async def test_monitoring_reads_and_websockets_are_marked_on_their_spans(base_url):
    traced = {secrets.token_hex(16): name for name in ("user", "poll", "socket")}
    parent = {name: {"traceparent": f"00-{t}-{secrets.token_hex(8)}-01"} for t, name in traced.items()}
    # Only this test's requests: the process's buffer holds other tests' (slower) ones too.
    since = time.time()
    async with aiohttp.ClientSession(base_url) as http:
        async with http.get("/api/items/1", headers=parent["user"]) as r:
            assert r.status == 200
        async with http.get("/api/items/1", headers={**parent["poll"], "X-Heartbeat": "true"}) as r:
            assert r.status == 200
        async with http.ws_connect("/api/socket", headers=parent["socket"]) as ws:
            await ws.close()

        async def all_roots():
            async with http.get("/internal/traces", params={"limit": "200", "since": str(since)}) as r:
                found = {root["trace_id"]: root for root in (await r.json())["roots"] if root["trace_id"] in traced}
            return found if len(found) == len(traced) else None

        found = await eventually(all_roots)
    assert {traced[t]: root["monitoring"] for t, root in found.items()} == {"user": False, "poll": True, "socket": True}


async def get_raw(url: str, target: str) -> dict:
    """GET `target` as sent: a client library would resolve its dot segments before sending."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    answer = await reader.read()
    writer.close()
    return json.loads(answer.partition(b"\r\n\r\n")[2])


@pytest.mark.parametrize("resolve", [True, False])
async def test_a_proxy_app_routes_a_path_with_dot_segments_as_the_path_they_name(resolve):
    async def where(request: web.Request) -> web.Response:
        return web.json_response({"path": request.path, "raw": request.raw_path})

    app = create_aiohttp_app(ServiceSettings(service_name="demo-aio", env="test"), resolve_dot_segments=resolve)
    app.router.add_get("/internal/x", where)
    app.router.add_get("/api/{tail:.*}", where)
    async with serving(app) as url:
        answer = await get_raw(url, "/api/a/%2e%2E/../internal/x?q=/../y")
    if resolve:
        assert answer == {"path": "/internal/x", "raw": "/internal/x?q=/../y"}
    else:
        assert answer["raw"] == "/api/a/%2e%2E/../internal/x?q=/../y"


async def test_a_proxys_catch_all_is_served_without_the_router_and_its_own_routes_as_before(monkeypatch):
    routed: list[str] = []
    handle = web.Application._handle

    async def counted(app, request):
        routed.append(request.raw_path)
        return await handle(app, request)

    monkeypatch.setattr(web.Application, "_handle", counted)

    async def own(request: web.Request) -> web.Response:
        return web.json_response({"own": request.match_info.get("name", "")})

    async def proxied(request: web.Request) -> web.Response:
        return web.json_response({"proxied": request.path, "app": request.app is app})

    @web.middleware
    async def stamped(request: web.Request, handler) -> web.StreamResponse:
        response = await handler(request)
        response.headers["X-Stamped"] = "yes"
        return response

    app = create_aiohttp_app(ServiceSettings(service_name="demo-proxy", env="test"), resolve_dot_segments=True)
    app.middlewares.append(stamped)  # an app's own middleware (the gateway's CORS) runs on both ways
    app.router.add_get("/api/own", own)
    app.router.add_get("/api/docs/{name}", own)
    add_proxy_route(app, proxied)
    async with serving(app) as url, aiohttp.ClientSession(url) as http:
        expected = {
            "/api/users/1?x=%2F": {"proxied": "/api/users/1", "app": True},
            "/": {"proxied": "/", "app": True},
            "/api/own": {"own": ""},
            "/api/docs/users": {"own": "users"},
            "/api/docs": {"proxied": "/api/docs", "app": True},
            "/api/%75sers/1": {"proxied": "/api/users/1", "app": True},
        }
        for target, body in expected.items():
            async with http.get(URL(target, encoded=True), headers={"X-Request-ID": "p-1"}) as r:
                assert (r.status, await r.json(), r.headers["X-Request-ID"]) == (200, body, "p-1"), target
                assert r.headers["X-Trace-Id"] and r.headers["X-Stamped"] == "yes"
        async with http.post("/api/items", data=b"x", headers={"Expect": "100-continue"}) as r:
            assert (r.status, await r.json()) == (200, {"proxied": "/api/items", "app": True})
        # Routed as sent, forwarded as the path it names (as before the catch-all's own way).
        assert await get_raw(url, "/api/a/../own") == {"proxied": "/api/own", "app": True}
        async with http.get("/metrics") as r:
            scrape = await r.text()
    assert routed == ["/api/own", "/api/docs/users", "/api/%75sers/1", "/api/items", "/api/a/../own", "/metrics"]
    catch_all = [
        sample
        for family in text_string_to_metric_families(scrape)
        for sample in family.samples
        if sample.name == "http_requests_total" and sample.labels.get("route") == "/{tail}"
    ]
    assert sum(sample.value for sample in catch_all) == 6
