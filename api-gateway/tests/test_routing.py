import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from api_gateway.main import create_app
from api_gateway.routing import RouteTable
from api_gateway.settings import GatewaySettings

SERVICES = ("auth-service", "user-service", "blog-service", "cluster-monitor", "edge-config")
EXPECTED = {
    "/api/auth/login": "auth-service",
    "/api/login": "auth-service",
    "/api/users/42": "user-service",
    "/api/users": "user-service",
    "/api/register": "user-service",
    "/api/posts?page=2": "blog-service",
    "/blog/": "blog-service",
    "/api/clusters/member1": "cluster-monitor",
    "/api/nodes/node-1/timeseries?window=60": "cluster-monitor",
    "/api/pods": "cluster-monitor",
    "/api/namespaces/default": "cluster-monitor",
    "/api/deployments": "cluster-monitor",
    "/api/events": "cluster-monitor",
    "/api/edge/config/jetson-1": "edge-config",
}


def test_longest_prefix_on_whole_segments():
    table = RouteTable({"/api": ("a", "http://a"), "/api/users": ("u", "http://u"), "/api/users/admin": ("x", "")})
    assert table.match("/api/users/1")[0] == "u"
    assert table.match("/api/users/admin/1")[0] == "x"
    assert table.match("/api/usersx")[0] == "a"
    assert table.match("/apis") is None
    assert table.match("/internal/credentials/verify") is None


@pytest.fixture
async def gateway():
    upstreams = []

    def named(service: str):
        async def answer(request: web.Request) -> web.Response:
            return web.json_response({"service": service, "path": request.raw_path})

        return answer

    urls = {}
    for service in SERVICES:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", named(service))
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        upstreams.append(server)
        urls[f"{service.replace('-', '_')}_url"] = str(server.make_url("")).rstrip("/")
    server = TestServer(create_app(GatewaySettings(env="test", **urls)), host="127.0.0.1")
    await server.start_server()
    yield server
    for s in [server, *upstreams]:
        await s.close()


async def test_every_prefix_reaches_its_service_unchanged(gateway):
    async with aiohttp.ClientSession() as http:
        for path, service in EXPECTED.items():
            async with http.get(gateway.make_url(path)) as r:
                assert r.status == 200, path
                assert await r.json() == {"service": service, "path": path}


@pytest.mark.parametrize("path", ["/internal/credentials/verify", "/api/unknown", "/favicon.ico"])
async def test_internal_and_unknown_paths_are_404_json(gateway, path):
    async with aiohttp.ClientSession() as http, http.get(gateway.make_url(path)) as r:
        assert r.status == 404
        assert (await r.json())["detail"] == f"no route for {path}"


async def test_own_health_under_api(gateway):
    async with aiohttp.ClientSession() as http, http.get(gateway.make_url("/api/health")) as r:
        assert (await r.json())["service"] == "api-gateway"
