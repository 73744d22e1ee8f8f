"""The versioned read cache (titanium_common.versioned_cache) against real Redis: no answer made before a write is
served after it, through any replica; reads at once share one Redis GET and one make(); Redis gone degrades to
making every answer."""

import asyncio

import pytest
import redis.asyncio as redis

from tests.support.polling import eventually
from titanium_common.versioned_cache import (
    NoCache,
    SharedRead,
    SharedVersions,
    VersionedCache,
    versioned_cache,
)

LISTS = "lists"
POSTS = "posts"
KINDS = (LISTS, POSTS)


def _caches(kind: str, redis_url: str, prefix: str, replicas: int, **limits) -> list[VersionedCache]:
    limits = {"max_age_s": 60, "max_entries": 16} | limits
    if kind == "local":
        return [VersionedCache(None, kinds=KINDS, backend="local", **limits)]
    return [
        VersionedCache(
            SharedVersions(redis_url, prefix, KINDS, resend_for_s=60, name="test cache"),
            kinds=KINDS,
            backend="redis",
            **limits,
        )
        for _ in range(replicas)
    ]


class SlowRead:
    """A database read that answers what was there when it began, and finishes only when released."""

    def __init__(self, value: bytes) -> None:
        self.value = value
        self.calls = 0
        self.began = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self) -> bytes:
        self.calls += 1
        seen = self.value
        self.began.set()
        await self.release.wait()
        return seen


async def _quick(value: bytes) -> bytes:
    return value


@pytest.mark.parametrize("kind", ["local", "redis"])
async def test_a_read_that_began_before_a_write_is_not_kept_for_the_reads_after_it(kind, redis_target):
    caches = _caches(kind, redis_target.url, redis_target.prefix, replicas=2)
    reader, writer = caches[0], caches[-1]
    try:
        slow = SlowRead(b"old")
        pending = asyncio.create_task(reader.answer("page", LISTS, slow))
        await slow.began.wait()
        await writer.changed(LISTS)  # committed after the read began
        slow.release.set()
        assert await pending == b"old"  # its own reader may get it: the write was not yet answered
        assert await reader.answer("page", LISTS, lambda: _quick(b"new")) == b"new"
        assert await reader.answer("page", LISTS, lambda: _quick(b"not asked")) == b"new"
        # An answer depends on its own kind only.
        assert await reader.answer("post", POSTS, lambda: _quick(b"post")) == b"post"
        await writer.changed(LISTS)
        assert await reader.answer("post", POSTS, lambda: _quick(b"not asked")) == b"post"
        await writer.changed(LISTS, POSTS)
        assert await reader.answer("post", POSTS, lambda: _quick(b"post, edited")) == b"post, edited"
    finally:
        for cache in caches:
            await cache.close()


@pytest.mark.parametrize("kind", ["local", "redis"])
async def test_misses_at_once_share_one_read_which_a_reader_giving_up_does_not_stop(kind, redis_target):
    (cache,) = _caches(kind, redis_target.url, redis_target.prefix, replicas=1)
    try:
        slow = SlowRead(b"page")
        first = asyncio.create_task(cache.answer("page", LISTS, slow))
        await slow.began.wait()
        others = [asyncio.create_task(cache.answer("page", LISTS, slow)) for _ in range(5)]
        await asyncio.sleep(0)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        slow.release.set()
        assert await asyncio.gather(*others) == [b"page"] * 5
        assert slow.calls == 1
        assert await cache.answer("page", LISTS, lambda: _quick(b"not asked")) == b"page"
    finally:
        await cache.close()


async def test_an_error_reaches_every_reader_and_is_not_kept():
    (cache,) = _caches("local", "", "", replicas=1)

    async def missing() -> bytes:
        await asyncio.sleep(0)
        raise LookupError("no such row")

    readers = [asyncio.create_task(cache.answer("post", POSTS, missing)) for _ in range(3)]
    for outcome in await asyncio.gather(*readers, return_exceptions=True):
        assert isinstance(outcome, LookupError)
    assert await cache.answer("post", POSTS, lambda: _quick(b"made now")) == b"made now"


async def test_answers_are_kept_at_most_max_age_and_max_entries(redis_target):
    (cache,) = _caches("local", "", "", replicas=1, max_age_s=60, max_entries=2)
    for key in ("a", "b", "c"):
        assert await cache.answer(key, LISTS, lambda key=key: _quick(key.encode())) == key.encode()
    assert await cache.answer("a", LISTS, lambda: _quick(b"a again")) == b"a again"  # the oldest went first
    assert await cache.answer("c", LISTS, lambda: _quick(b"not asked")) == b"c"

    (aged,) = _caches("local", "", "", replicas=1, max_age_s=0.000_001)
    assert await aged.answer("a", LISTS, lambda: _quick(b"first")) == b"first"
    assert await aged.answer("a", LISTS, lambda: _quick(b"second")) == b"second"


class GatedRead:
    """A read that counts its calls and returns the call's number once released."""

    def __init__(self) -> None:
        self.calls = 0
        self.gates: list[asyncio.Event] = []

    async def __call__(self) -> int:
        self.calls += 1
        number = self.calls
        gate = asyncio.Event()
        self.gates.append(gate)
        await gate.wait()
        return number


async def test_callers_at_once_share_one_read_and_a_later_caller_never_gets_an_earlier_read():
    read = GatedRead()
    shared = SharedRead(read)
    together = [asyncio.create_task(shared()) for _ in range(10)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert read.calls == 1
    # Callers that come while the read is out (it may have been answered before they came) share the next one.
    later = [asyncio.create_task(shared()) for _ in range(5)]
    await asyncio.sleep(0)
    assert read.calls == 1
    together[0].cancel()  # one caller giving up stops nobody else's read
    read.gates[0].set()
    assert await asyncio.gather(*together[1:]) == [1] * 9
    await asyncio.sleep(0)
    assert read.calls == 2
    read.gates[1].set()
    assert await asyncio.gather(*later) == [2] * 5


async def test_a_failed_read_reaches_its_own_callers_and_the_next_caller_reads_again():
    calls = 0

    async def failing_once() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("gone")
        return "back"

    shared = SharedRead(failing_once)
    with pytest.raises(ConnectionError):
        await shared()
    assert await shared() == "back"


async def test_redis_gone_makes_every_answer_until_it_is_back(private_redis):
    reader, writer = _caches("redis", private_redis.url, "t:", replicas=2)
    try:
        assert await reader.answer("page", LISTS, lambda: _quick(b"kept")) == b"kept"
        assert await reader.answer("page", LISTS, lambda: _quick(b"not asked")) == b"kept"
        private_redis.stop()
        assert await reader.answer("page", LISTS, lambda: _quick(b"from the database")) == b"from the database"
        figure = reader.stats()
        assert figure["status"] == "down" and figure["bypassed"] == 1 and "Redis read failed" in figure["reason"]
        await writer.changed(LISTS)  # not announced: Redis is gone; retried in the background
        private_redis.start()  # empty: the counters start again where nothing kept matches

        async def writer_sees_redis_back() -> bool:  # without a read: as /stats asks
            await writer.recheck()
            return writer.stats()["status"] == "ok"

        await eventually(writer_sees_redis_back, timeout_s=30)

        async def kept_again() -> bool:
            answers = [await reader.answer("page", LISTS, lambda: _quick(b"after")) for _ in range(2)]
            assert b"kept" not in answers  # made before the write: never served again
            return answers == [b"after", b"after"] and reader.stats()["status"] == "ok"

        await eventually(kept_again)
        assert "reason" not in reader.stats()
    finally:
        for cache in (reader, writer):
            await cache.close()


async def test_a_counter_that_vanished_starts_again_where_no_kept_answer_matches(redis_target):
    reader, writer = _caches("redis", redis_target.url, redis_target.prefix, replicas=2)
    client = redis.Redis.from_url(redis_target.url)
    try:
        assert await reader.answer("page", LISTS, lambda: _quick(b"old")) == b"old"
        await client.delete(*reader.shared.keys.values())  # as a Redis restarted empty
        await writer.changed(LISTS)  # a write after it: the counter starts again, and is bumped
        assert await reader.answer("page", LISTS, lambda: _quick(b"new")) == b"new"
    finally:
        await client.aclose()
        for cache in (reader, writer):
            await cache.close()


def test_which_cache_a_deployment_gets():
    settings = {"name": "test cache", "kinds": KINDS, "redis_prefix": "", "max_age_s": 5, "max_entries": 8}
    cache = versioned_cache(database_backend="postgresql", redis_url="", **settings)
    assert isinstance(cache, NoCache) and cache.stats()["status"] == "off"
    assert "REDIS_URL is not set" in cache.stats()["reason"]
    assert versioned_cache(database_backend="sqlite", redis_url="", **settings).backend == "local"
    assert versioned_cache(database_backend="sqlite", redis_url="redis://127.0.0.1:1/0", **settings).backend == "local"
    off = versioned_cache(database_backend="sqlite", redis_url="", **(settings | {"max_age_s": 0}))
    assert isinstance(off, NoCache)
