import asyncio
import hashlib

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from titanium_common.aiohttp_app import CLIENT, attach_client_session, create_aiohttp_app
from titanium_common.proxy import proxy_http
from titanium_common.settings import ServiceSettings
from titanium_common.suite import free_port

MAX_BODY = 1024 * 1024


async def echo(request: web.Request) -> web.Response:
    digest = hashlib.sha256()
    size = 0
    async for chunk in request.content.iter_any():
        digest.update(chunk)
        size += len(chunk)
    return web.json_response(
        {
            "path": request.raw_path,
            "headers": dict(request.headers),
            "size": size,
            "sha256": digest.hexdigest(),
        },
        headers={"X-Upstream": "yes", "Connection": "keep-alive, X-Secret", "X-Secret": "hop"},
    )


async def big(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    response.content_length = 8 * MAX_BODY
    await response.prepare(request)
    for _ in range(8):
        await response.write(b"x" * MAX_BODY)
    return response


async def hang(request: web.Request) -> web.Response:
    await asyncio.sleep(30)
    return web.Response()


async def start(app: web.Application) -> TestServer:
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


@pytest.fixture
async def upstream():
    app = web.Application(client_max_size=64 * MAX_BODY)
    app.router.add_route("*", "/echo/{tail:.*}", echo)
    app.router.add_get("/big", big)
    app.router.add_get("/hang", hang)
    server = await start(app)
    yield str(server.make_url("")).rstrip("/")
    await server.close()


async def make_proxy(base_url: str, response_s: float = 2.0) -> TestServer:
    app = create_aiohttp_app(ServiceSettings(service_name="proxy", env="test"), client_max_size=MAX_BODY)
    attach_client_session(app, auto_decompress=False, response_s=response_s)

    async def forward(request: web.Request) -> web.StreamResponse:
        return await proxy_http(request, request.app[CLIENT], "demo-upstream", base_url, max_body_bytes=MAX_BODY)

    app.router.add_route("*", "/{tail:.*}", forward)
    return await start(app)


@pytest.fixture
async def proxy(upstream):
    server = await make_proxy(upstream)
    yield server
    await server.close()


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
        async with http.get(proxy.make_url("/big")) as r:
            received = 0
            async for chunk in r.content.iter_any():
                received += len(chunk)
        assert received == 8 * MAX_BODY


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
        await server.close()


async def test_hung_upstream_is_504_naming_it(upstream):
    server = await make_proxy(upstream, response_s=0.5)
    try:
        async with aiohttp.ClientSession() as http, http.get(server.make_url("/hang")) as r:
            assert r.status == 504
            assert (await r.json())["detail"] == "upstream demo-upstream timed out"
    finally:
        await server.close()
