import aiohttp
import pytest
from yarl import URL

from api_gateway.routing import RouteTable
from api_gateway.settings import PREFIXES, GatewaySettings

# One path under every public prefix, with the service it must reach.
EXPECTED = {
    "/api/auth/login": "auth-service",
    "/api/auth/verify": "auth-service",
    "/api/login": "auth-service",
    "/api/users": "user-service",
    "/api/users/42": "user-service",
    "/api/register": "user-service",
    "/api/posts?page=2&size=10": "blog-service",
    "/api/posts/7": "blog-service",
    "/blog/": "blog-service",
    "/blog/assets/app.js": "blog-service",
    "/api/clusters/member1": "cluster-monitor",
    "/api/nodes/node-1/timeseries?window=60": "cluster-monitor",
    "/api/pods": "cluster-monitor",
    "/api/namespaces/default/deployments/web/pods": "cluster-monitor",
    "/api/deployments": "cluster-monitor",
    "/api/events": "cluster-monitor",
    "/ws/clusters": "cluster-monitor",
    "/ws": "cluster-monitor",
    "/api/edge/config/jetson-1": "edge-config",
    "/mcp": "ops-mcp",
    "/api/ops/diagnosis": "ops-mcp",
}


def test_every_public_prefix_is_exercised():
    paths = [path.split("?")[0] for path in EXPECTED]
    for prefix in PREFIXES:
        assert any(p == prefix or p.startswith(prefix + "/") for p in paths), prefix


def test_longest_prefix_on_whole_segments():
    table = RouteTable({"/api": "a", "/api/users": "u", "/api/users/admin": "x"})
    assert table.match("/api/users/1") == "u"
    assert table.match("/api/users/admin/1") == "x"
    assert table.match("/api/usersx") == "a"
    assert table.match("/apis") is None
    assert table.match("/internal/credentials/verify") is None


async def test_every_prefix_reaches_its_service_unchanged(gateway):
    async with aiohttp.ClientSession() as http:
        for path, service in EXPECTED.items():
            async with http.get(gateway.make_url(path)) as r:
                assert r.status == 200, path
                body = await r.json()
                assert (body["service"], body["path"]) == (service, path)


async def test_method_query_and_body_pass_untouched(gateway):
    # Encoded slashes, spaces and a repeated key must reach the service byte for byte.
    path = "/api/users/a%2Fb/x%20y?q=1&q=2&name=%C3%A9"
    payload = b'{"name": "\xc3\xa9", "n": [1, 2]}'
    async with aiohttp.ClientSession() as http:
        url = URL(str(gateway.make_url("")).rstrip("/") + path, encoded=True)
        async with http.patch(url, data=payload, headers={"Content-Type": "application/json"}) as r:
            body = await r.json()
    assert body["method"] == "PATCH"
    assert body["path"] == path
    assert body["body_bytes"] == len(payload)
    assert body["headers"]["Content-Type"] == "application/json"


async def test_upstream_status_and_headers_come_back(gateway):
    headers = {"X-Test-Status": "409", "X-Test-Header": "X-Upstream=yes"}
    async with aiohttp.ClientSession() as http, http.post(gateway.make_url("/api/users"), headers=headers) as r:
        assert r.status == 409
        assert r.headers["X-Upstream"] == "yes"


@pytest.mark.parametrize(
    "path", ["/internal/credentials/verify", "/internal", "/api/unknown", "/api", "/favicon.ico", "/wsx"]
)
async def test_internal_and_unknown_paths_are_404_json(gateway, path):
    async with aiohttp.ClientSession() as http, http.get(gateway.make_url(path)) as r:
        assert r.status == 404
        body = await r.json()
        assert body["detail"] == f"no route for {path}"
        assert body["request_id"] == r.headers["X-Request-ID"]


async def test_extra_routes_come_from_configuration_but_never_open_internal(start_gateway):
    gateway = await start_gateway(extra_routes="/api/metrics=cluster-monitor, /internal=user-service")
    async with aiohttp.ClientSession() as http:
        async with http.get(gateway.make_url("/api/metrics/nodes")) as r:
            assert (await r.json())["service"] == "cluster-monitor"
        async with http.get(gateway.make_url("/internal/credentials/verify")) as r:
            assert r.status == 404


async def test_replicas_of_one_service_take_turns(start_gateway, upstreams):
    both = f"{upstreams.urls['user-service']},{upstreams.urls['auth-service']}"
    gateway = await start_gateway(user_service_url=both)
    seen = []
    async with aiohttp.ClientSession() as http:
        for _ in range(4):
            async with http.get(gateway.make_url("/api/users")) as r:
                seen.append((await r.json())["service"])
    assert seen == ["user-service", "auth-service", "user-service", "auth-service"]


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"extra_routes": "/api/x=nowhere"}, "unknown upstream 'nowhere'"),
        ({"extra_routes": "api/x"}, "is not /prefix=upstream-name"),
        ({"extra_routes": "/=user-service"}, "is not /prefix=upstream-name"),
        ({"user_service_url": " , "}, "no URL configured for user-service"),
        ({"cors_origins": "https://a.example, *"}, "explicit origins"),
    ],
)
def test_bad_configuration_stops_the_start(setting, message):
    with pytest.raises(ValueError, match=message):
        GatewaySettings(env="test", **setting)


async def test_own_health_under_api(gateway):
    async with aiohttp.ClientSession() as http, http.get(gateway.make_url("/api/health")) as r:
        assert r.status == 200
        assert (await r.json())["service"] == "api-gateway"
