import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from load_balancer.main import create_app
from load_balancer.settings import LoadBalancerSettings


def test_gateway_replicas_from_a_comma_list(monkeypatch):
    monkeypatch.setenv("GATEWAY_URLS", "http://a:8000, http://b:8000")
    assert LoadBalancerSettings().gateway_urls == ["http://a:8000", "http://b:8000"]


async def test_forwards_to_the_gateway_and_answers_its_own_probes():
    async def gateway(request: web.Request) -> web.Response:
        return web.json_response({"path": request.raw_path, "rid": request.headers["X-Request-ID"]})

    upstream_app = web.Application()
    upstream_app.router.add_route("*", "/{tail:.*}", gateway)
    upstream = TestServer(upstream_app, host="127.0.0.1")
    await upstream.start_server()
    settings = LoadBalancerSettings(env="test", gateway_urls=[str(upstream.make_url("")).rstrip("/")])
    lb = TestServer(create_app(settings), host="127.0.0.1")
    await lb.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(lb.make_url("/api/users/1?x=y"), headers={"X-Request-ID": "lb-1"}) as r:
                assert await r.json() == {"path": "/api/users/1?x=y", "rid": "lb-1"}
            async with http.get(lb.make_url("/lb-health")) as r:
                assert (await r.json())["service"] == "load-balancer"
    finally:
        await lb.close()
        await upstream.close()
