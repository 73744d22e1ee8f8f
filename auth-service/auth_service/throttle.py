"""Failed-login throttling per username and per client address, in fixed windows.

Counters live in Redis so that every replica sees them; without Redis (or while it fails) they live in this
process, which still stops a brute force against one replica.
"""

import logging
import time

import redis.asyncio as redis

log = logging.getLogger("auth_service.throttle")

REDIS_TIMEOUT_S = 0.5


class LoginThrottle:
    def __init__(self, redis_url: str, prefix: str, per_user: int, per_address: int, window_s: int) -> None:
        self.client = (
            redis.Redis.from_url(redis_url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S)
            if redis_url
            else None
        )
        self.prefix = prefix
        self.limits = {"user": per_user, "addr": per_address}
        self.window_s = window_s
        self._local: dict[str, tuple[int, float]] = {}
        self.redis_problem: str | None = None

    def _keys(self, username: str, address: str) -> dict[str, str]:
        return {"user": f"{self.prefix}fail:user:{username.lower()}", "addr": f"{self.prefix}fail:addr:{address}"}

    def _local_count(self, key: str) -> tuple[int, int]:
        count, window_end = self._local.get(key, (0, 0.0))
        remaining = window_end - time.monotonic()
        if remaining <= 0:
            self._local.pop(key, None)
            return 0, 0
        return count, int(remaining) + 1

    def _local_incr(self, key: str) -> None:
        count, window_end = self._local.get(key, (0, 0.0))
        now = time.monotonic()
        if window_end <= now:
            count, window_end = 0, now + self.window_s
        self._local[key] = (count + 1, window_end)
        if len(self._local) > 100_000:  # bound memory under a spray of names
            self._local = {k: v for k, v in self._local.items() if v[1] > now}

    def _redis_failed(self, exc: Exception) -> None:
        self.redis_problem = f"Redis unavailable ({type(exc).__name__}); throttling in memory"
        log.warning(self.redis_problem)

    async def retry_after(self, username: str, address: str) -> int | None:
        """Seconds to wait if either counter is at its limit, else None."""
        keys = self._keys(username, address)
        waits: list[int] = []
        counts: dict[str, tuple[int, int]] = {}
        if self.client is not None:
            try:
                async with self.client.pipeline(transaction=False) as pipe:
                    for key in keys.values():
                        pipe.get(key).ttl(key)
                    answers = await pipe.execute()
                for i, kind in enumerate(keys):
                    count, ttl = answers[2 * i], answers[2 * i + 1]
                    counts[kind] = (int(count or 0), max(int(ttl), 1))
                self.redis_problem = None
            except redis.RedisError as exc:
                self._redis_failed(exc)
        for kind, key in keys.items():
            count, wait = counts.get(kind) or self._local_count(key)
            if count >= self.limits[kind]:
                waits.append(wait)
        return max(waits) if waits else None

    async def record_failure(self, username: str, address: str) -> None:
        keys = self._keys(username, address)
        if self.client is not None:
            try:
                async with self.client.pipeline(transaction=True) as pipe:
                    for key in keys.values():
                        pipe.incr(key).expire(key, self.window_s, nx=True)
                    await pipe.execute()
                return
            except redis.RedisError as exc:
                self._redis_failed(exc)
        for key in keys.values():
            self._local_incr(key)

    async def record_success(self, username: str) -> None:
        key = self._keys(username, "")["user"]
        self._local.pop(key, None)
        if self.client is not None:
            try:
                await self.client.delete(key)
            except redis.RedisError as exc:
                self._redis_failed(exc)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()
