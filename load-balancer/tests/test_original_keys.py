"""/stats keeps the original system's keys beside Titanium's own, for its dashboard page and operators' jq lines."""

import aiohttp
from aiohttp import web


def stats_app(body: dict) -> web.Application:
    async def stats(request: web.Request) -> web.Response:
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/stats", stats)
    return app


USER = {
    "service": "user-service",
    "service_status": "online",
    "db": {"status": "ok", "backend": "sqlite", "latency_ms": 0.3},
    "cache": {"backend": "redis", "status": "ok", "hits": 3, "misses": 1, "hit_ratio": 0.75},
}


async def read_stats(url: str) -> dict:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/stats") as answer:
        assert answer.status == 200
        return await answer.json()


async def test_the_originals_keys_beside_titaniums(servers, start_lb, lb_settings):
    user = await servers(stats_app(USER))
    blog = await servers(stats_app({"service": "blog-service", "service_status": "online", "post_count": 7}))
    lb = await start_lb(lb_settings(user_service_url=user.url, blog_service_url=blog.url))
    stats = await read_stats(lb.url)

    assert stats["user-service"]["db"]["status"] == "ok"  # Titanium's own entries are untouched
    assert stats["database"] == {
        "status": "healthy",
        "backend": "sqlite",
        "latency_ms": 0.3,
        "alias_of": "user-service.db",
    }
    assert stats["cache"]["status"] == "healthy"
    assert stats["cache"]["hit_ratio"] == 0.75
    assert stats["cache"]["alias_of"] == "user-service.cache"
    assert stats["user_service"]["service_status"] == "online"
    assert stats["user_service"]["database"]["status"] == "healthy"
    assert stats["user_service"]["cache"] == {k: v for k, v in stats["cache"].items() if k != "alias_of"}
    assert stats["blog_service"] == {"service_status": "online", "alias_of": "blog-service", "post_count": 7}
    # auth-service is a closed port here: offline under both names, with the reason.
    assert stats["auth"]["service_status"] == "offline"
    assert stats["auth"]["alias_of"] == "auth-service"
    assert stats["auth"]["error"] == stats["auth-service"]["error"]
    own = stats["load-balancer"]
    for field in (
        "has_real_traffic",
        "requests_per_second",
        "success_rate",
        "avg_response_time_ms",
        "avg_response_time_ms_lifetime",
    ):
        assert field in own
    assert own["status"] == "healthy"


async def test_database_and_cache_say_why_when_user_service_or_redis_is_down(servers, start_lb, lb_settings):
    lb = await start_lb(lb_settings())  # user-service is a closed port
    stats = await read_stats(lb.url)
    assert stats["database"]["status"] == stats["cache"]["status"] == "unknown"
    assert "user-service did not answer" in stats["database"]["error"]
    assert stats["user_service"]["service_status"] == "offline"

    degraded = USER | {
        "service_status": "degraded",
        "cache": {"backend": "redis", "status": "down", "reason": "Redis: connection refused"},
    }
    user = await servers(stats_app(degraded))
    lb = await start_lb(lb_settings(user_service_url=user.url))
    stats = await read_stats(lb.url)
    assert stats["database"]["status"] == "healthy"
    assert stats["cache"]["status"] == "down"
    assert stats["cache"]["reason"] == "Redis: connection refused"
    assert stats["user_service"]["service_status"] == "degraded"
