import asyncio
import time

import aiohttp
import pytest
from aiohttp import web

from tests.support.servers import AppServer, free_port
from titanium_common.http_client import create_client_session
from titanium_common.logs import request_id_var


async def echo_request_id(request: web.Request) -> web.Response:
    return web.json_response({"rid": request.headers.get("X-Request-ID")})


async def hang(request: web.Request) -> web.Response:
    await asyncio.sleep(30)
    return web.Response()


@pytest.fixture
async def server():
    app = web.Application()
    app.router.add_get("/rid", echo_request_id)
    app.router.add_get("/hang", hang)
    async with AppServer(app) as server:
        yield server


async def test_current_request_id_is_passed_on(server):
    async with create_client_session() as session:
        token = request_id_var.set("outgoing-7")
        try:
            async with session.get(server.make_url("/rid")) as r:
                assert (await r.json())["rid"] == "outgoing-7"
        finally:
            request_id_var.reset(token)
        async with session.get(server.make_url("/rid")) as r:
            assert (await r.json())["rid"] is None


async def test_a_hung_dependency_times_out_fast(server):
    async with create_client_session(response_s=0.3) as session:
        started = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            async with session.get(server.make_url("/hang")):
                pass
        assert time.monotonic() - started < 5


async def test_a_refused_port_fails_at_once():
    async with create_client_session() as session:
        with pytest.raises(aiohttp.ClientConnectorError):
            async with session.get(f"http://127.0.0.1:{free_port()}/"):
                pass
