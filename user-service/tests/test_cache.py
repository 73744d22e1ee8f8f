import redis.asyncio as redis

from user_service.cache import UserCache


async def test_a_fill_that_raced_a_write_is_dropped(redis_target):
    cache = UserCache(redis_target.url, redis_target.prefix, ttl_s=60)
    record, version = await cache.get(1)
    assert record is None and version == "0"
    await cache.invalidate(1)  # a write commits while the reader was at the database
    await cache.fill(1, version, {"id": 1, "email": "old@example.com"})
    assert (await cache.get(1))[0] is None
    _, fresh_version = await cache.get(1)
    await cache.fill(1, fresh_version, {"id": 1, "email": "new@example.com"})
    assert (await cache.get(1))[0] == {"id": 1, "email": "new@example.com"}
    assert (cache.hits, cache.misses) == (1, 3)
    await cache.close()


async def test_missed_invalidations_flush_the_cache_when_redis_returns(redis_target):
    cache = UserCache(redis_target.url, redis_target.prefix, ttl_s=60)
    _, version = await cache.get(2)
    await cache.fill(2, version, {"id": 2, "email": "old@example.com"})
    working_client = cache.client
    cache.client = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    await cache.invalidate(2)  # Redis unreachable: the stale entry stays behind
    assert (await cache.stats())["cache"]["status"] == "down"
    await cache.client.aclose()
    cache.client = working_client
    cache._skip_until = 0.0
    assert (await cache.get(2))[0] is None
    assert (await cache.stats())["cache"]["status"] == "ok"
    await cache.close()


async def test_no_url_means_no_cache():
    cache = UserCache("", "unused:", ttl_s=60)
    assert await cache.get(3) == (None, None)
    await cache.fill(3, "0", {"id": 3})
    await cache.invalidate(3)
    figures = await cache.stats()
    assert figures["cache"]["backend"] == "off"
    assert figures["service_status"] == "degraded"
