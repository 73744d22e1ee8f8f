"""The balancer as a proxy: routing, replicas coming and going, WebSocket relay and its per-client share, body
limits."""

import asyncio
import contextlib

import aiohttp
import pytest
from aiohttp import web

from tests.support.polling import eventually
from tests.support.servers import free_port


async def test_routes_by_path_and_answers_its_own(servers, start_lb, backend_app, lb_settings):
    gateway = await servers(backend_app("gw"))
    dashboard = await servers(backend_app("dash"))
    lb = await start_lb(lb_settings(gateway_urls=[gateway.url], dashboard_urls=[dashboard.url]))
    async with aiohttp.ClientSession() as http:
        for path, backend in [
            ("/api/users/1?x=%20y", "gw"),
            ("/blog/posts/1", "gw"),
            ("/ws/clusters", "gw"),
            ("/", "dash"),
            ("/app.js", "dash"),
            ("/apix", "dash"),
        ]:
            async with http.get(f"{lb.url}{path}", headers={"X-Request-ID": "route-1"}) as r:
                seen = await r.json()
                assert (seen["backend"], seen["path"]) == (backend, path)
                assert seen["headers"]["X-Request-ID"] == "route-1"
                assert seen["headers"]["X-Forwarded-For"] == "127.0.0.1"
                assert seen["headers"]["X-Forwarded-Host"] == f"127.0.0.1:{lb.port}"
                assert r.headers["X-Request-ID"] == "route-1"
        async with http.get(f"{lb.url}/blog?page=2", allow_redirects=False) as r:
            assert (r.status, r.headers["Location"]) == (308, "/blog/?page=2")
        async with http.post(f"{lb.url}/internal/credentials/verify", json={}) as r:
            assert r.status == 404
            assert (await r.json())["detail"] == "no route for /internal/credentials/verify"
        async with http.get(f"{lb.url}/lb-health") as r:
            assert (await r.json())["service"] == "load-balancer"


async def test_a_replica_killed_mid_run_is_ejected_and_readmitted(servers, start_lb, backend_app, lb_settings):
    a = await servers(backend_app("a"))
    b = await servers(backend_app("b"))
    lb = await start_lb(lb_settings(gateway_urls=[a.url, b.url], health_check_interval_s=0.2, eject_after_failures=2))
    answers: list[tuple[int, str]] = []
    running = True

    async def client(http: aiohttp.ClientSession) -> None:
        while running:
            async with http.get(f"{lb.url}/api/x") as r:
                answers.append((r.status, (await r.json()).get("backend", "")))

    async def pool_member(http: aiohttp.ClientSession, index: int) -> dict:
        async with http.get(f"{lb.url}/stats") as r:
            return (await r.json())["load-balancer"]["pools"]["api-gateway"]["members"][index]

    async with aiohttp.ClientSession() as http:
        clients = [asyncio.create_task(client(http)) for _ in range(4)]
        try:
            await eventually(lambda: len(answers) > 20)
            await b.stop()
            killed_at = len(answers)

            async def b_ejected() -> bool:
                return not (await pool_member(http, 1))["healthy"]

            await eventually(b_ejected)
            ejected_at = len(answers)
            await eventually(lambda: len(answers) > ejected_at + 40)
            after_kill = answers[killed_at:]
            assert {status for status, _ in after_kill} == {200}, "traffic must continue on the other replica"
            assert {backend for _, backend in answers[ejected_at + 4 :]} == {"a"}
            await b.start()

            async def b_back() -> bool:
                return (await pool_member(http, 1))["healthy"]

            await eventually(b_back)
            readmitted_at = len(answers)
            await eventually(lambda: len(answers) > readmitted_at + 40)
            assert {backend for _, backend in answers[readmitted_at + 4 :]} == {"a", "b"}
        finally:
            running = False
            await asyncio.gather(*clients, return_exceptions=True)
    assert {status for status, _ in answers} == {200}


async def test_no_healthy_gateway_is_503_at_once(start_lb, lb_settings):
    lb = await start_lb(lb_settings(gateway_urls=[f"http://127.0.0.1:{free_port()}"], eject_after_failures=1))
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{lb.url}/api/users") as r:
            assert r.status == 502
            assert "upstream api-gateway unavailable" in (await r.json())["detail"]
        async with http.get(f"{lb.url}/api/users") as r:
            assert r.status == 503
            assert (await r.json())["detail"] == "upstream api-gateway has no healthy replica"


async def test_a_gateway_slower_than_the_response_timeout_is_504(servers, start_lb, backend_app, lb_settings):
    gateway = await servers(backend_app("gw"))
    lb = await start_lb(lb_settings(gateway_urls=[gateway.url], upstream_response_timeout_s=0.3))
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{lb.url}/api/slow?s=0.1") as r:
            assert (await r.json())["slept"] is True
        async with http.get(f"{lb.url}/api/slow?s=2", headers={"X-Request-ID": "slow-1"}) as r:
            assert r.status == 504
            assert await r.json() == {
                "detail": "upstream api-gateway timed out",
                "request_id": "slow-1",
                "trace_id": r.headers["X-Trace-Id"],
            }
        async with http.get(f"{lb.url}/stats") as r:
            own = (await r.json())["load-balancer"]
    assert own["real_requests"] == 2
    assert own["success_rate"] == 50.0


async def test_websocket_relay_through_the_balancer(servers, start_lb, backend_app, lb_settings):
    gateway = await servers(backend_app("gw"))
    lb = await start_lb(lb_settings(gateway_urls=[gateway.url]))
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{lb.url}/ws/echo") as ws:
        await ws.send_str("hello")
        assert await ws.receive_str(timeout=5) == "gw:hello"
        await ws.send_bytes(b"abc")
        assert await ws.receive_bytes(timeout=5) == b"cba"
        async with http.get(f"{lb.url}/stats") as r:
            own = (await r.json())["load-balancer"]
        assert own["websockets"]["relayed"] == 1
        assert own["open_websockets"] == 1


def client_at(address: str) -> aiohttp.ClientSession:
    """A client whose connections come from `address` (any 127.x address is this host's loopback)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0)))


async def test_one_client_gets_its_share_of_relayed_sockets_and_others_still_connect(
    servers, start_lb, backend_app, lb_settings
):
    gateway = await servers(backend_app("gw"))
    lb = await start_lb(lb_settings(gateway_urls=[gateway.url], websocket_max_per_client=3))
    url = f"{lb.url}/ws/echo"
    async with contextlib.AsyncExitStack() as stack:
        stranger = await stack.enter_async_context(client_at("127.0.0.2"))
        for n in range(3):
            ws = await stack.enter_async_context(stranger.ws_connect(url))
            await ws.send_str(f"s{n}")
            assert await ws.receive_str(timeout=5) == f"gw:s{n}"
        # At the edge the peer is the client: an X-Forwarded-For of its own choosing changes nothing.
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await stranger.ws_connect(url, headers={"X-Forwarded-For": "192.0.2.1"})
        assert refused.value.status == 503
        assert refused.value.headers["Retry-After"] == "5"
        # Its heartbeat sockets count in the same share.
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await stranger.ws_connect(f"{lb.url}/api/ws-heartbeat")
        assert refused.value.status == 503
        async with client_at("127.0.0.3") as dashboard, dashboard.ws_connect(url) as feed:
            await feed.send_str("feed")
            assert await feed.receive_str(timeout=5) == "gw:feed"
            async with dashboard.ws_connect(f"{lb.url}/api/ws-heartbeat") as heartbeat:
                await heartbeat.send_str("hb")
                assert (await heartbeat.receive_json(timeout=5))["type"] == "hb"


async def test_a_body_over_the_limit_is_413(servers, start_lb, backend_app, lb_settings):
    gateway = await servers(backend_app("gw"))
    lb = await start_lb(lb_settings(gateway_urls=[gateway.url], max_body_bytes=1000))

    async def chunked():
        for _ in range(5):
            yield b"x" * 400

    async with aiohttp.ClientSession() as http:
        async with http.post(f"{lb.url}/api/upload", data=b"x" * 1001) as r:
            assert r.status == 413
            assert (await r.json())["detail"] == "request body over 1000 bytes"
        async with http.post(f"{lb.url}/api/upload", data=chunked()) as r:
            assert r.status == 413
        async with http.post(f"{lb.url}/api/upload", data=b"x" * 1000) as r:
            assert (await r.json())["size"] == 1000


async def test_a_client_hanging_up_mid_upload_is_not_an_upstream_failure(servers, start_lb, backend_app, lb_settings):
    gateway = await servers(backend_app("gw"))
    lb = await start_lb(lb_settings(gateway_urls=[gateway.url]))
    _, writer = await asyncio.open_connection("127.0.0.1", lb.port)
    head = b"POST /api/upload HTTP/1.1\r\nHost: lb\r\nTransfer-Encoding: chunked\r\n\r\n"
    writer.write(head + b"2710\r\n" + b"y" * 10_000 + b"\r\n")
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.close()
    async with aiohttp.ClientSession() as http:

        async def counted() -> bool:
            async with http.get(f"{lb.url}/stats") as r:
                return (await r.json())["load-balancer"]["real_requests"] == 1

        await eventually(counted)
        async with http.get(f"{lb.url}/stats") as r:
            own = (await r.json())["load-balancer"]
    assert own["success_rate"] == 100.0


async def test_methods_outside_http_share_one_metrics_label(servers, start_lb, backend_app, lb_settings):
    gateway = await servers(backend_app("gw"))
    lb = await start_lb(lb_settings(gateway_urls=[gateway.url]))
    async with aiohttp.ClientSession() as http:
        for method in ("PROPFIND", "MKCOL", "LOCK", "UNLOCK", "REPORT"):
            async with http.request(method, f"{lb.url}/api/x") as r:
                assert (await r.json())["method"] == method  # still proxied as sent
        async with http.get(f"{lb.url}/metrics") as r:
            metrics = await r.text()
    assert "PROPFIND" not in metrics
    assert 'method="OTHER"' in metrics


async def test_an_upstream_cookie_never_reaches_other_clients(servers, start_lb, lb_settings):
    """The balancer's one client session serves everyone: a Set-Cookie goes back to the client who got it and is
    never replayed upstream on other clients' requests. By host name: aiohttp's jar ignores cookies from an IP."""

    async def login(request: web.Request) -> web.Response:
        response = web.json_response({"cookie": request.headers.get("Cookie")})
        response.set_cookie("session", "alice-secret")
        return response

    async def profile(request: web.Request) -> web.Response:
        return web.json_response({"cookie": request.headers.get("Cookie")})

    app = web.Application()
    app.router.add_get("/api/login", login)
    app.router.add_get("/api/profile", profile)
    upstream = await servers(app)
    lb = await start_lb(lb_settings(gateway_urls=[f"http://localhost:{upstream.port}"]))
    async with aiohttp.ClientSession() as alice, aiohttp.ClientSession() as bob:
        async with alice.get(f"{lb.url}/api/login") as r:
            assert r.status == 200
            assert r.cookies["session"].value == "alice-secret"
        async with bob.get(f"{lb.url}/api/profile") as r:
            assert (await r.json())["cookie"] is None
        async with bob.get(f"{lb.url}/api/profile", headers={"Cookie": "session=bob"}) as r:
            assert (await r.json())["cookie"] == "session=bob"


async def test_the_gateways_503s_never_eject_it(servers, start_lb, lb_settings):
    """A gateway's 503 names a service behind it: ejecting the gateway would take every other service away too."""

    async def unavailable(request: web.Request) -> web.Response:
        return web.json_response({"detail": "upstream blog-service has no healthy replica"}, status=503)

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_route("*", "/{tail:.*}", unavailable)
    gateway = await servers(app)
    lb = await start_lb(lb_settings(gateway_urls=[gateway.url, f"http://127.0.0.1:{free_port()}"]))
    async with aiohttp.ClientSession() as http:
        for _ in range(12):
            async with http.get(f"{lb.url}/api/posts") as r:
                assert r.status == 503
                assert "blog-service" in (await r.json())["detail"]
        async with http.get(f"{lb.url}/stats") as r:
            members = (await r.json())["load-balancer"]["pools"]["api-gateway"]["members"]
    assert members[0]["healthy"] is True
