"""Cache-aside for user records in Redis, safe against stale fills, and harmless when Redis is gone.

Reads try Redis first; on a miss the caller reads the database and `fill`s. Every write bumps the record's version
and deletes it after the database commit; a fill only lands if the version is still the one seen before the
database read (a Lua check-and-set), so a slow reader can never put an old record back after a write.
Redis absent (no URL) or failing: every call falls through to the database; a write whose invalidation failed
makes the whole prefix be flushed once Redis answers again.
"""

import json
import logging
import time
from typing import Any

import redis.asyncio as redis

log = logging.getLogger("user_service.cache")

REDIS_TIMEOUT_S = 0.5
# After a failure, Redis is left alone this long so that a dead cache costs requests nothing.
RETRY_AFTER_FAILURE_S = 2.0

_FILL_IF_VERSION_UNCHANGED = """
local seen = redis.call('GET', KEYS[2]) or '0'
if seen == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0
"""


class UserCache:
    def __init__(self, url: str, prefix: str, ttl_s: int) -> None:
        self.prefix = prefix
        self.ttl_s = ttl_s
        self.client = (
            redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S)
            if url
            else None
        )
        self._fill_script = self.client.register_script(_FILL_IF_VERSION_UNCHANGED) if self.client else None
        self.hits = 0
        self.misses = 0
        self.problem: str | None = None if self.client else "cache off: REDIS_URL is not set"
        self._skip_until = 0.0
        self._flush_pending = False

    @property
    def backend(self) -> str:
        return "redis" if self.client else "off"

    def _keys(self, user_id: int) -> tuple[str, str]:
        return f"{self.prefix}user:{user_id}", f"{self.prefix}user:{user_id}:version"

    def _usable(self) -> bool:
        return self.client is not None and time.monotonic() >= self._skip_until

    def _failed(self, action: str, exc: Exception) -> None:
        self.problem = f"cache down: Redis {action} failed ({type(exc).__name__}: {exc})"
        self._skip_until = time.monotonic() + RETRY_AFTER_FAILURE_S
        log.warning("%s; reading the database", self.problem)

    async def _recovered(self) -> None:
        if self._flush_pending:
            keys = [key async for key in self.client.scan_iter(match=f"{self.prefix}*", count=500)]
            if keys:
                await self.client.delete(*keys)
            self._flush_pending = False
            log.info("Redis is back: flushed %d cached keys that may have missed an invalidation", len(keys))
        self.problem = None

    async def get(self, user_id: int) -> tuple[dict[str, Any] | None, str | None]:
        """(record, None) on a hit; (None, version token for `fill`) on a miss; (None, None) if unusable."""
        if not self._usable():
            return None, None
        value_key, version_key = self._keys(user_id)
        try:
            if self._flush_pending or self.problem:
                await self._recovered()
            value, version = await self.client.mget(value_key, version_key)
        except redis.RedisError as exc:
            self._failed("read", exc)
            return None, None
        if value is not None:
            self.hits += 1
            return json.loads(value), None
        self.misses += 1
        return None, (version or b"0").decode()

    async def fill(self, user_id: int, version: str | None, record: dict[str, Any]) -> None:
        if version is None or not self._usable():
            return
        try:
            await self._fill_script(keys=list(self._keys(user_id)), args=[version, json.dumps(record), self.ttl_s])
        except redis.RedisError as exc:
            self._failed("fill", exc)

    async def invalidate(self, user_id: int) -> None:
        """Call after the database commit of any change to this user."""
        if self.client is None:
            return
        value_key, version_key = self._keys(user_id)
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.incr(version_key).expire(version_key, self.ttl_s + 60).delete(value_key)
                await pipe.execute()
        except redis.RedisError as exc:
            self._flush_pending = True
            self._failed("invalidation", exc)

    async def stats(self) -> dict[str, Any]:
        if self.client is not None and time.monotonic() >= self._skip_until:
            try:
                await self.client.ping()
                if self._flush_pending or self.problem:
                    await self._recovered()
            except redis.RedisError as exc:
                self._failed("ping", exc)
        lookups = self.hits + self.misses
        figure: dict[str, Any] = {
            "cache": {
                "backend": self.backend,
                "status": "ok" if self.problem is None else ("off" if self.client is None else "down"),
                "hits": self.hits,
                "misses": self.misses,
                "hit_ratio": round(self.hits / lookups, 4) if lookups else 0.0,
            }
        }
        if self.problem is not None:
            figure["cache"]["reason"] = self.problem
            figure["service_status"] = "degraded"
            figure["degraded_reasons"] = [self.problem]
        return figure

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()
