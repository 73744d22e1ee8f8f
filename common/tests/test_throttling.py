"""The shared rate limiter: GCRA in Redis, this process's own buckets without it, and no fresh allowance when Redis
fails in the middle of a burst."""

import asyncio

import redis.asyncio as redis

from titanium_common.throttling import RateLimiter

BURST = 3
INTERVAL_S = 60.0


async def acquire(limiter: RateLimiter, key: str = "client") -> float:
    return await limiter.acquire(key, burst=BURST, interval_s=INTERVAL_S)


async def test_a_burst_at_once_gets_exactly_the_allowance_in_redis(private_redis):
    limiter = RateLimiter(private_redis.url, "t:")
    try:
        waits = await asyncio.gather(*(acquire(limiter) for _ in range(10)))
    finally:
        await limiter.close()
    assert sorted(waits)[:BURST] == [0.0] * BURST
    assert all(0 < wait <= INTERVAL_S for wait in sorted(waits)[BURST:])
    assert limiter.figure() == {"backend": "redis"}


async def test_redis_failing_mid_burst_grants_no_fresh_allowance(private_redis):
    limiter = RateLimiter(private_redis.url, "t:")
    try:
        assert [await acquire(limiter) for _ in range(BURST - 1)] == [0.0] * (BURST - 1)
        private_redis.stop()
        # This process admitted two of three: it has one left, then refuses, as Redis would have.
        assert await acquire(limiter) == 0.0
        refused = await acquire(limiter)
        assert 0 < refused <= INTERVAL_S
        assert limiter.figure()["backend"] == "memory"
        assert "each replica limits on its own" in limiter.figure()["reason"]
        # Another client is not affected.
        assert await acquire(limiter, "neighbour") == 0.0
    finally:
        await limiter.close()


async def test_without_redis_each_process_keeps_its_own_buckets():
    limiter = RateLimiter("", "t:")
    waits = [await acquire(limiter) for _ in range(BURST + 1)]
    assert waits[:BURST] == [0.0] * BURST and waits[BURST] > 0
    assert limiter.figure() == {"backend": "memory", "reason": "REDIS_URL is not set: each replica limits on its own"}


async def test_admissions_answered_late_by_redis_grant_nothing_beyond_the_allowance(private_redis):
    """Redis admits a burst but answers late, and the process admitted requests on its own meanwhile (their
    commands timed out): the late admissions must fit the process's bucket too."""
    limiter = RateLimiter(private_redis.url, "t:")
    script = limiter._script
    answered = asyncio.Event()
    calls = 0

    async def late_then_lost(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls <= BURST:  # Redis runs these; their answers arrive only after the lost ones
            result = await script(*args, **kwargs)
            await answered.wait()
            return result
        raise redis.TimeoutError("Timeout reading from socket")

    limiter._script = late_then_lost
    try:
        late = [asyncio.ensure_future(acquire(limiter)) for _ in range(BURST)]
        await asyncio.sleep(0.1)
        lost = [await acquire(limiter) for _ in range(BURST)]
        answered.set()
        waits = lost + list(await asyncio.gather(*late))
    finally:
        await limiter.close()
    assert sum(wait == 0.0 for wait in waits) == BURST, waits
