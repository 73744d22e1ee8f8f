import aiohttp
from aiohttp import web

from load_balancer.main import create_app
from load_balancer.settings import LoadBalancerSettings


def test_gateway_replicas_from_a_comma_list(monkeypatch):
    monkeypatch.setenv("GATEWAY_URLS", "http://a:8000, http://b:8000")
    assert LoadBalancerSettings().gateway_urls == ["http://a:8000", "http://b:8000"]


async def test_forwards_to_the_gateway_and_answers_its_own_probes(servers):
    async def gateway(request: web.Request) -> web.Response:
        return web.json_response({"path": request.raw_path, "rid": request.headers["X-Request-ID"]})

    upstream_app = web.Application()
    upstream_app.router.add_route("*", "/{tail:.*}", gateway)
    upstream = await servers(upstream_app)
    lb = await servers(create_app(LoadBalancerSettings(env="test", gateway_urls=[upstream.url])))
    async with aiohttp.ClientSession() as http:
        async with http.get(lb.make_url("/api/users/1?x=y"), headers={"X-Request-ID": "lb-1"}) as r:
            assert await r.json() == {"path": "/api/users/1?x=y", "rid": "lb-1"}
        async with http.get(lb.make_url("/lb-health")) as r:
            assert (await r.json())["service"] == "load-balancer"
