"""Failed-login throttling per (user, address), per address and per user, with exponential back-off.

A login attempt is counted when it is admitted, before its password is checked, in one atomic step (a Lua script
in Redis, or plain code between two awaits in memory): of any number of attempts sent at once, at most the limit
get checked. Once a counter reaches its limit, it holds further attempts off for LOGIN_BACKOFF_BASE_S, and each
attempt after that doubles the wait (up to LOGIN_BACKOFF_MAX_S). A correct password clears its (user, address)
counter and does not count against the address or the user. A stranger's failures count against the stranger's
address and against the (user, stranger's address) pair; the user's own counter, over all addresses, has a much
higher limit, so that the owner, from another address, still logs in.

Counters live in Redis so that every replica sees them; without Redis (or while it fails) they live in this
process, which still stops a brute force against one replica.
"""

import logging
import math
import time
from dataclasses import dataclass

import redis.asyncio as redis

log = logging.getLogger("auth_service.throttle")

REDIS_TIMEOUT_S = 0.5
MAX_LOCAL_COUNTERS = 100_000

# KEYS: the counters. ARGV: now (ms), window (s), back-off base (ms), back-off cap (ms), then one limit per key.
# Returns 0 (admitted and counted) or the milliseconds to wait.
_ADMIT = """
local now = tonumber(ARGV[1])
local wait = 0
for i = 1, #KEYS do
  local blocked_until = tonumber(redis.call('HGET', KEYS[i], 'until') or '0')
  if blocked_until > now then wait = math.max(wait, blocked_until - now) end
end
if wait > 0 then return math.ceil(wait) end
for i = 1, #KEYS do
  local n = redis.call('HINCRBY', KEYS[i], 'n', 1)
  local limit = tonumber(ARGV[4 + i])
  if n >= limit then
    local delay = math.min(tonumber(ARGV[3]) * 2 ^ (n - limit), tonumber(ARGV[4]))
    redis.call('HSET', KEYS[i], 'until', now + delay)
  end
  redis.call('EXPIRE', KEYS[i], ARGV[2])
end
return 0
"""

# KEYS: the counters to give one attempt back to; ARGV: their limits.
_GIVE_BACK = """
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    local n = redis.call('HINCRBY', KEYS[i], 'n', -1)
    if n < tonumber(ARGV[i]) then redis.call('HDEL', KEYS[i], 'until') end
  end
end
return 0
"""


@dataclass
class _Counter:
    count: int = 0
    blocked_until: float = 0.0
    forget_at: float = 0.0


@dataclass(frozen=True)
class Attempt:
    """An admitted login attempt; give it to `succeeded` or `not_checked` (a failure needs nothing more)."""

    keys: tuple[str, str, str]


class LoginThrottle:
    def __init__(
        self,
        redis_url: str,
        prefix: str,
        *,
        per_user: int,
        per_address: int,
        per_account: int,
        window_s: int,
        backoff_base_s: float,
        backoff_max_s: float,
    ) -> None:
        self.client = (
            redis.Redis.from_url(redis_url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S)
            if redis_url
            else None
        )
        self._admit = self.client.register_script(_ADMIT) if self.client else None
        self._give_back = self.client.register_script(_GIVE_BACK) if self.client else None
        self.prefix = prefix
        self.limits = (per_user, per_address, per_account)
        self.window_s = window_s
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self._local: dict[str, _Counter] = {}
        self.redis_problem: str | None = None

    def _keys(self, username: str, address: str) -> tuple[str, str, str]:
        name = username.lower()
        return (
            f"{self.prefix}login:pair:{name}|{address}",
            f"{self.prefix}login:addr:{address}",
            f"{self.prefix}login:user:{name}",
        )

    def _redis_failed(self, exc: Exception) -> None:
        self.redis_problem = f"Redis unavailable ({type(exc).__name__}); throttling in memory"
        log.warning(self.redis_problem)

    async def admit(self, username: str, address: str) -> Attempt | int:
        """The attempt, counted, if it may be checked; else the whole seconds to wait (for Retry-After)."""
        keys = self._keys(username, address)
        if self.client is not None:
            try:
                args = [int(time.time() * 1000), self.window_s, self.backoff_base_s * 1000, self.backoff_max_s * 1000]
                wait_ms = int(await self._admit(keys=list(keys), args=[*args, *self.limits]))
                self.redis_problem = None
                return Attempt(keys) if wait_ms <= 0 else max(1, math.ceil(wait_ms / 1000))
            except redis.RedisError as exc:
                self._redis_failed(exc)
        return self._admit_locally(keys)

    def _admit_locally(self, keys: tuple[str, str, str]) -> Attempt | int:
        now = time.monotonic()
        if len(self._local) > MAX_LOCAL_COUNTERS:  # bound memory under a spray of names
            self._local = {k: c for k, c in self._local.items() if c.forget_at > now}
        counters = []
        for key in keys:
            counter = self._local.get(key)
            if counter is None or counter.forget_at <= now:
                counter = self._local[key] = _Counter()
            counters.append(counter)
        wait = max(c.blocked_until - now for c in counters)
        if wait > 0:
            return max(1, math.ceil(wait))
        for counter, limit in zip(counters, self.limits, strict=True):
            counter.count += 1
            if counter.count >= limit:
                counter.blocked_until = now + min(
                    self.backoff_base_s * 2 ** (counter.count - limit), self.backoff_max_s
                )
            counter.forget_at = now + self.window_s
        return Attempt(keys)

    async def succeeded(self, attempt: Attempt) -> None:
        """A correct password: the pair starts afresh; address and user get the attempt back."""
        pair = attempt.keys[0]
        self._local.pop(pair, None)
        await self._return(attempt, delete=pair)

    async def not_checked(self, attempt: Attempt) -> None:
        """The password could not be checked (user-service busy or down): the attempt does not count."""
        await self._return(attempt)

    async def _return(self, attempt: Attempt, delete: str | None = None) -> None:
        keys = [k for k in attempt.keys if k != delete]
        limits = [limit for k, limit in zip(attempt.keys, self.limits, strict=True) if k != delete]
        for key, limit in zip(keys, limits, strict=True):
            counter = self._local.get(key)
            if counter is not None:
                counter.count = max(0, counter.count - 1)
                if counter.count < limit:
                    counter.blocked_until = 0.0
        if self.client is None:
            return
        try:
            if delete:
                await self.client.delete(delete)
            await self._give_back(keys=keys, args=limits)
        except redis.RedisError as exc:
            self._redis_failed(exc)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()
