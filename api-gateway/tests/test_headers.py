"""Request ids and X-Forwarded-* reach the services; CORS is answered only for configured origins."""

import aiohttp
import pytest

ORIGIN = "https://dashboard.example"
PREFLIGHT = {
    "Origin": ORIGIN,
    "Access-Control-Request-Method": "PATCH",
    "Access-Control-Request-Headers": "authorization, content-type",
}


async def test_a_given_request_id_is_passed_on_and_echoed(gateway):
    headers = {"X-Request-ID": "trace-abc.1"}
    async with aiohttp.ClientSession() as http, http.get(gateway.make_url("/api/users"), headers=headers) as r:
        body = await r.json()
    assert body["headers"]["X-Request-ID"] == "trace-abc.1"
    assert r.headers["X-Request-ID"] == "trace-abc.1"


@pytest.mark.parametrize("incoming", [None, "bad id with spaces; " + "x" * 200])
async def test_a_missing_or_malformed_request_id_is_replaced_by_one_id_for_both_sides(gateway, incoming):
    headers = {"X-Request-ID": incoming} if incoming else {}
    async with aiohttp.ClientSession() as http, http.get(gateway.make_url("/api/edge/devices"), headers=headers) as r:
        body = await r.json()
    generated = r.headers["X-Request-ID"]
    assert generated != incoming
    assert len(generated) == 32
    assert body["headers"]["X-Request-ID"] == generated


async def test_forwarded_headers_are_kept_and_extended(gateway):
    headers = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "titanium.example"}
    async with aiohttp.ClientSession() as http, http.get(gateway.make_url("/api/posts"), headers=headers) as r:
        seen = (await r.json())["headers"]
    assert seen["X-Forwarded-For"] == "203.0.113.9, 127.0.0.1"
    assert seen["X-Forwarded-Proto"] == "https"
    assert seen["X-Forwarded-Host"] == "titanium.example"


async def test_forwarded_headers_are_set_for_a_direct_client(gateway):
    async with aiohttp.ClientSession() as http, http.get(gateway.make_url("/api/posts")) as r:
        seen = (await r.json())["headers"]
    assert seen["X-Forwarded-For"] == "127.0.0.1"
    assert seen["X-Forwarded-Proto"] == "http"
    assert seen["X-Forwarded-Host"] == f"127.0.0.1:{gateway.port}"


async def test_cors_is_off_by_default_and_everything_passes_through(gateway):
    async with aiohttp.ClientSession() as http:
        async with http.options(gateway.make_url("/api/posts"), headers=PREFLIGHT) as r:
            body = await r.json()
            assert "Access-Control-Allow-Origin" not in r.headers
        # Without configured origins the gateway answers no preflight itself: the service sees it.
        assert body["method"] == "OPTIONS"
        upstream_says = {"Origin": ORIGIN, "X-Test-Header": "Access-Control-Allow-Origin=*"}
        async with http.get(gateway.make_url("/api/posts"), headers=upstream_says) as r:
            assert r.headers["Access-Control-Allow-Origin"] == "*"


@pytest.fixture
async def cors_gateway(start_gateway):
    return await start_gateway(cors_origins=f"{ORIGIN}, http://localhost:7100")


async def test_cors_preflight_for_a_configured_origin(cors_gateway):
    url = cors_gateway.make_url("/api/posts/1")
    async with aiohttp.ClientSession() as http, http.options(url, headers=PREFLIGHT) as r:
        assert r.status == 204
        assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert "PATCH" in r.headers["Access-Control-Allow-Methods"]
        assert r.headers["Access-Control-Allow-Headers"] == "authorization, content-type"
        assert r.headers["Access-Control-Max-Age"] == "600"
        assert "Origin" in r.headers["Vary"]


async def test_cors_preflight_for_another_origin_is_refused(cors_gateway):
    async with aiohttp.ClientSession() as http:
        headers = {**PREFLIGHT, "Origin": "https://evil.example"}
        async with http.options(cors_gateway.make_url("/api/posts/1"), headers=headers) as r:
            assert r.status == 403
            assert (await r.json())["detail"] == "origin https://evil.example is not allowed"
            assert "Access-Control-Allow-Origin" not in r.headers


async def test_cors_simple_requests(cors_gateway):
    # The upstream claims "*": when the gateway speaks for CORS, only its own answer reaches the browser.
    upstream_says = {"X-Test-Header": "Access-Control-Allow-Origin=*"}
    async with aiohttp.ClientSession() as http:
        headers = {**upstream_says, "Origin": "http://localhost:7100"}
        async with http.get(cors_gateway.make_url("/api/posts"), headers=headers) as r:
            assert r.status == 200
            assert r.headers["Access-Control-Allow-Origin"] == "http://localhost:7100"
            assert r.headers["Access-Control-Expose-Headers"] == "X-Request-ID"
            assert r.headers["Vary"] == "Origin"
        headers = {**upstream_says, "Origin": "https://evil.example"}
        async with http.get(cors_gateway.make_url("/api/posts"), headers=headers) as r:
            assert r.status == 200
            assert "Access-Control-Allow-Origin" not in r.headers
        # An OPTIONS that is not a preflight still goes to the service.
        async with http.options(cors_gateway.make_url("/api/posts"), headers={"Origin": ORIGIN}) as r:
            assert (await r.json())["method"] == "OPTIONS"
