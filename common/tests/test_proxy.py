import asyncio
import contextlib
import hashlib
import logging

import aiohttp
import pytest
from aiohttp import web

from tests.support.servers import AppServer, body_digest, free_port
from titanium_common import proxy as proxy_module
from titanium_common.aiohttp_app import (
    CLIENT,
    UPSTREAM,
    attach_client_session,
    attach_upstream_client,
    create_aiohttp_app,
    without_dot_segments,
)
from titanium_common.pool import ReplicaPool, proxy_to_pool
from titanium_common.proxy import is_websocket_upgrade, proxy_websocket
from titanium_common.settings import ServiceSettings

MAX_BODY = 1024 * 1024


async def echo(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "path": request.raw_path,
            "headers": dict(request.headers),
            **await body_digest(request),
        },
        headers={"X-Upstream": "yes", "Connection": "keep-alive, X-Secret", "X-Secret": "hop"},
    )


def download(mebibytes: int):
    """A handler streaming `mebibytes` MiB with a declared length."""

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = mebibytes * MAX_BODY
        await response.prepare(request)
        for _ in range(mebibytes):
            await response.write(b"x" * MAX_BODY)
        return response

    return stream


async def hang(request: web.Request) -> web.Response:
    await asyncio.sleep(30)
    return web.Response()


async def websocket_echo(request: web.Request) -> web.WebSocketResponse:
    """Echoes frames; "ping-me" makes it ping the client, "close-me" closes with 4001; records what it saw."""
    ws = web.WebSocketResponse(protocols=("titanium.v1",), autoping=False)
    await ws.prepare(request)
    seen = request.app[WS_SEEN]
    seen["headers"] = dict(request.headers)
    async for msg in ws:
        if msg.type is aiohttp.WSMsgType.TEXT and msg.data == "ping-me":
            await ws.ping(b"from-upstream")
        elif msg.type is aiohttp.WSMsgType.TEXT and msg.data == "close-me":
            await ws.close(code=4001, message=b"bye")
        elif msg.type is aiohttp.WSMsgType.TEXT:
            await ws.send_str(f"echo:{msg.data}")
        elif msg.type is aiohttp.WSMsgType.BINARY:
            await ws.send_bytes(msg.data[::-1])
        elif msg.type is aiohttp.WSMsgType.PING:
            await ws.pong(msg.data)
        elif msg.type is aiohttp.WSMsgType.PONG:
            seen["pong"] = msg.data
    seen["close_code"] = ws.close_code
    seen["closed"].set()
    return ws


WS_SEEN = web.AppKey("ws_seen", dict)


@pytest.fixture
async def upstream():
    app = web.Application(client_max_size=64 * MAX_BODY)
    app.router.add_route("*", "/echo/{tail:.*}", echo)
    app.router.add_get("/big", download(8))
    app.router.add_get("/hang", hang)
    app.router.add_get("/ws/echo", websocket_echo)
    app[WS_SEEN] = {"closed": asyncio.Event()}
    server = await AppServer(app).start()
    yield server.url
    await server.stop()


async def make_proxy(base_url: str, response_s: float = 2.0) -> AppServer:
    app = create_aiohttp_app(ServiceSettings(service_name="proxy", env="test"), client_max_size=MAX_BODY)
    attach_client_session(app, auto_decompress=False, response_s=response_s)
    attach_upstream_client(app, response_s=response_s)
    # One replica and no health checks: what is tested is the core's forwarding, not the pool's choices.
    pool = ReplicaPool("demo-upstream", [base_url])

    async def forward(request: web.Request) -> web.StreamResponse:
        if is_websocket_upgrade(request):
            return await proxy_websocket(request, request.app[CLIENT], "demo-upstream", base_url)
        return await proxy_to_pool(request, request.app[UPSTREAM], pool, max_body_bytes=MAX_BODY)

    app.router.add_route("*", "/{tail:.*}", forward)
    return await AppServer(app).start()


@pytest.fixture
async def proxy(upstream):
    server = await make_proxy(upstream)
    yield server
    await server.stop()


async def test_path_query_and_headers_pass_with_hop_by_hop_dropped(proxy):
    async with aiohttp.ClientSession() as http:
        url = proxy.make_url("/echo/a%2Fb/c?x=1&y=%20")
        headers = {"X-Request-ID": "px-1", "X-Custom": "kept", "Connection": "keep-alive, X-Custom-Hop"}
        headers["X-Custom-Hop"] = "dropped"
        async with http.get(url, headers=headers) as r:
            seen = await r.json()
            assert r.headers["X-Upstream"] == "yes"
            assert "X-Secret" not in r.headers
            assert r.headers["X-Request-ID"] == "px-1"
    assert seen["path"] == "/echo/a%2Fb/c?x=1&y=%20"
    assert seen["headers"]["X-Custom"] == "kept"
    assert "X-Custom-Hop" not in seen["headers"]
    assert seen["headers"]["X-Request-ID"] == "px-1"
    assert seen["headers"]["X-Forwarded-For"] == "127.0.0.1"
    assert seen["headers"]["X-Forwarded-Proto"] == "http"
    assert seen["headers"]["X-Forwarded-Host"].startswith("127.0.0.1:")


async def test_bodies_stream_both_ways(proxy):
    payload = bytes(range(256)) * 3000

    async def chunks():
        for i in range(0, len(payload), 10_000):
            yield payload[i : i + 10_000]

    async with aiohttp.ClientSession() as http:
        async with http.post(proxy.make_url("/echo/upload"), data=chunks()) as r:
            seen = await r.json()
        assert seen["size"] == len(payload)
        assert seen["sha256"] == hashlib.sha256(payload).hexdigest()
        # The streamed answer is prepared by the proxy core itself: it still carries the request id.
        async with http.get(proxy.make_url("/big"), headers={"X-Request-ID": "big-1"}) as r:
            assert r.headers["X-Request-ID"] == "big-1"
            received = 0
            async for chunk in r.content.iter_any():
                received += len(chunk)
        assert received == 8 * MAX_BODY


async def test_head_keeps_the_length_a_get_would_have(proxy):
    async with aiohttp.ClientSession() as http:
        for _ in range(2):  # the connection the HEAD answer came on is not reused: the next request still works
            async with http.head(proxy.make_url("/big")) as r:
                assert r.status == 200
                assert r.headers["Content-Length"] == str(8 * MAX_BODY)
        async with http.get(proxy.make_url("/echo/after-head")) as r:
            assert (await r.json())["path"] == "/echo/after-head"


async def test_a_body_over_the_limit_gets_413(proxy):
    async def chunks():
        for _ in range(3):
            yield b"y" * (MAX_BODY // 2)

    async with aiohttp.ClientSession() as http:
        async with http.post(proxy.make_url("/echo/x"), data=b"z" * (MAX_BODY + 1)) as r:
            assert r.status == 413
            assert "request_id" in await r.json()
        async with http.post(proxy.make_url("/echo/x"), data=chunks()) as r:
            assert r.status == 413


async def test_refused_upstream_is_502_naming_it():
    server = await make_proxy(f"http://127.0.0.1:{free_port()}")
    try:
        async with aiohttp.ClientSession() as http, http.get(server.make_url("/anything")) as r:
            assert r.status == 502
            assert "upstream demo-upstream unavailable" in (await r.json())["detail"]
    finally:
        await server.stop()


async def test_hung_upstream_is_504_naming_it(upstream):
    server = await make_proxy(upstream, response_s=0.5)
    try:
        async with aiohttp.ClientSession() as http, http.get(server.make_url("/hang")) as r:
            assert r.status == 504
            assert (await r.json())["detail"] == "upstream demo-upstream timed out"
    finally:
        await server.stop()


async def test_websocket_relay_both_ways(proxy):
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(
            proxy.make_url("/ws/echo"),
            protocols=("other", "titanium.v1"),
            autoping=False,
            headers={"X-Request-ID": "w1"},
        )
        assert ws.protocol == "titanium.v1"
        await ws.send_str("hello")
        assert await ws.receive_str(timeout=5) == "echo:hello"
        await ws.send_bytes(b"\x00\x01\x02")
        assert await ws.receive_bytes(timeout=5) == b"\x02\x01\x00"
        # A ping from either end crosses the relay and the pong comes back the same way.
        await ws.ping(b"from-client")
        pong = await ws.receive(timeout=5)
        assert (pong.type, pong.data) == (aiohttp.WSMsgType.PONG, b"from-client")
        await ws.send_str("ping-me")
        ping = await ws.receive(timeout=5)
        assert (ping.type, ping.data) == (aiohttp.WSMsgType.PING, b"from-upstream")
        await ws.pong(ping.data)
        await ws.send_str("after-pong")
        assert await ws.receive_str(timeout=5) == "echo:after-pong"
        # The upstream's close code reaches the client.
        await ws.send_str("close-me")
        closing = await ws.receive(timeout=5)
        assert (closing.type, closing.data, closing.extra) == (aiohttp.WSMsgType.CLOSE, 4001, "bye")
        await ws.close()


async def test_websocket_client_close_code_reaches_the_upstream():
    seen = {"closed": asyncio.Event()}
    app = web.Application()
    app[WS_SEEN] = seen
    app.router.add_get("/ws/echo", websocket_echo)
    backend = await AppServer(app).start()
    proxy = await make_proxy(backend.url)
    try:
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(proxy.make_url("/ws/echo"), headers={"X-Custom": "kept"})
            await ws.send_str("x")
            assert await ws.receive_str(timeout=5) == "echo:x"
            await ws.close(code=4002, message=b"done")
        await asyncio.wait_for(seen["closed"].wait(), 5)
        assert seen["close_code"] == 4002
        assert seen["headers"]["X-Custom"] == "kept"
        assert seen["headers"]["X-Forwarded-For"] == "127.0.0.1"
    finally:
        await proxy.stop()
        await backend.stop()


async def test_websocket_to_a_refused_upstream_is_502_naming_it():
    server = await make_proxy(f"http://127.0.0.1:{free_port()}")
    try:
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(server.make_url("/ws/anything"))
            assert refused.value.status == 502
            async with http.get(
                server.make_url("/ws/anything"),
                headers={
                    "Upgrade": "websocket",
                    "Connection": "Upgrade",
                    "Sec-WebSocket-Version": "13",
                    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                },
            ) as r:
                assert r.status == 502
                assert "upstream demo-upstream unavailable" in (await r.json())["detail"]
    finally:
        await server.stop()


async def test_websocket_upgrade_the_upstream_rejects_keeps_its_status(proxy):
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as rejected:
            await http.ws_connect(proxy.make_url("/ws/none"))
        assert rejected.value.status == 404


async def test_a_client_that_stops_reading_is_cut_off(monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="titanium.proxy")
    monkeypatch.setattr(proxy_module, "CLIENT_WRITE_TIMEOUT_S", 0.5)
    app = web.Application()
    # Far larger than the socket buffers between the upstream, the proxy and the client.
    app.router.add_get("/endless", download(256))
    upstream = await AppServer(app).start()
    server = await make_proxy(upstream.url)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /endless HTTP/1.1\r\nHost: test\r\n\r\n")
        await writer.drain()
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        # Read nothing for a while: the proxy's writes block once the buffers are full, and it gives up.
        await asyncio.sleep(3)
        received = 0
        with contextlib.suppress(ConnectionResetError):
            async with asyncio.timeout(30):
                while chunk := await reader.read(1024 * 1024):
                    received += len(chunk)
        assert received < 256 * MAX_BODY
        assert any("client stopped reading GET /endless" in r.getMessage() for r in caplog.records)
        writer.close()
    finally:
        await server.stop()
        await upstream.stop()


@pytest.mark.parametrize(
    ("target", "resolved"),
    [
        ("/api/users/../../internal/x", "/internal/x"),
        ("/api/users/%2e%2E/%2E./internal/x?a=/../b", "/internal/x?a=/../b"),
        ("/api/./users/./1", "/api/users/1"),
        ("/../../..", "/"),
        ("/api/users/..", "/api/"),
        ("/api/users/1/.", "/api/users/1/"),
        ("/api/users/..%2f..%2finternal", "/api/users/..%2f..%2finternal"),  # an encoded slash is no separator
        ("/api/users/.hidden/..x", "/api/users/.hidden/..x"),
    ],
)
def test_dot_segments_are_resolved(target, resolved):
    assert without_dot_segments(target) == resolved
