"""Failed-login throttling per (user, address), per address and per user, with exponential back-off.

The (user, address) counter counts an attempt when it is admitted, before its password is checked, in one atomic
step (a Lua script in Redis, or plain code between two awaits in memory): of any number of guesses at one account
sent at once, at most the limit get checked. A correct password clears that counter. The address and the user
(over all addresses) count failures, atomically as they happen; they do not count attempts in flight, so that many
people behind one address can log in at the same moment.

Once a counter reaches its limit, it holds further attempts off for LOGIN_BACKOFF_BASE_S, and each attempt after
that doubles the wait (up to LOGIN_BACKOFF_MAX_S): a wait, never a lock. A stranger's failures count against the
stranger's address and the (user, stranger's address) pair; the user's own counter has a much higher limit, so the
owner, from another address, still logs in.

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

# Shared by the scripts: count one on KEYS[i] against limit ARGV[4 + i], and past it hold attempts off, twice as long
# each time. ARGV: now (ms), window (s), back-off base (ms), back-off cap (ms), then the limits.
_COUNT = """
local function count(i)
  local n = redis.call('HINCRBY', KEYS[i], 'n', 1)
  local limit = tonumber(ARGV[4 + i])
  if n >= limit then
    local delay = math.min(tonumber(ARGV[3]) * 2 ^ (n - limit), tonumber(ARGV[4]))
    redis.call('HSET', KEYS[i], 'until', tonumber(ARGV[1]) + delay)
  end
  redis.call('EXPIRE', KEYS[i], ARGV[2])
end
"""

# KEYS: the pair, the address, the user. Returns 0 (admitted; the pair counted it) or the milliseconds to wait.
_ADMIT = (
    _COUNT
    + """
local now = tonumber(ARGV[1])
local wait = 0
for i = 1, #KEYS do
  local blocked_until = tonumber(redis.call('HGET', KEYS[i], 'until') or '0')
  if blocked_until > now then wait = math.max(wait, blocked_until - now) end
end
if wait > 0 then return math.ceil(wait) end
count(1)
return 0
"""
)

# KEYS: the address and the user, of a failed attempt.
_FAILED = (
    _COUNT
    + """
for i = 1, #KEYS do count(i) end
return 0
"""
)

# KEYS[1]: the pair of an attempt whose password could not be checked; ARGV[1]: its limit.
_NOT_CHECKED = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  local n = redis.call('HINCRBY', KEYS[1], 'n', -1)
  if n < tonumber(ARGV[1]) then redis.call('HDEL', KEYS[1], 'until') end
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
    """An admitted login attempt: hand it to `failed`, `succeeded` or `not_checked`."""

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
        self._scripts = (
            {name: self.client.register_script(code) for name, code in
             (("admit", _ADMIT), ("failed", _FAILED), ("not_checked", _NOT_CHECKED))}
            if self.client else {}
        )  # fmt: skip
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

    async def _run(self, script: str, keys: list[str], limits: list[int]) -> int | None:
        """The script's answer, or None when Redis is absent or failing (the caller counts in memory)."""
        if self.client is None:
            return None
        now_ms = int(time.time() * 1000)
        args = [now_ms, self.window_s, self.backoff_base_s * 1000, self.backoff_max_s * 1000, *limits]
        try:
            answer = int(await self._scripts[script](keys=keys, args=args))
        except redis.RedisError as exc:
            self._redis_failed(exc)
            return None
        self.redis_problem = None
        return answer

    async def admit(self, username: str, address: str) -> Attempt | int:
        """The attempt, counted on its (user, address) pair, if it may be checked; else the whole seconds to wait
        (for Retry-After)."""
        keys = self._keys(username, address)
        wait_ms = await self._run("admit", list(keys), [self.limits[0]])
        if wait_ms is None:
            return self._admit_locally(keys)
        return Attempt(keys) if wait_ms <= 0 else max(1, math.ceil(wait_ms / 1000))

    def _counter(self, key: str, now: float) -> _Counter:
        counter = self._local.get(key)
        if counter is None or counter.forget_at <= now:
            if len(self._local) > MAX_LOCAL_COUNTERS:  # bound memory under a spray of names
                self._local = {k: c for k, c in self._local.items() if c.forget_at > now}
            counter = self._local[key] = _Counter()
        return counter

    def _count_locally(self, key: str, limit: int, now: float) -> None:
        counter = self._counter(key, now)
        counter.count += 1
        if counter.count >= limit:
            counter.blocked_until = now + min(self.backoff_base_s * 2 ** (counter.count - limit), self.backoff_max_s)
        counter.forget_at = now + self.window_s

    def _admit_locally(self, keys: tuple[str, str, str]) -> Attempt | int:
        now = time.monotonic()
        wait = max(self._counter(key, now).blocked_until - now for key in keys)
        if wait > 0:
            return max(1, math.ceil(wait))
        self._count_locally(keys[0], self.limits[0], now)
        return Attempt(keys)

    async def failed(self, attempt: Attempt) -> None:
        """A wrong password: it counts against the address and the user too."""
        if await self._run("failed", list(attempt.keys[1:]), list(self.limits[1:])) is None:
            now = time.monotonic()
            for key, limit in zip(attempt.keys[1:], self.limits[1:], strict=True):
                self._count_locally(key, limit, now)

    async def succeeded(self, attempt: Attempt) -> None:
        """A correct password: the (user, address) pair starts afresh."""
        self._local.pop(attempt.keys[0], None)
        if self.client is not None:
            try:
                await self.client.delete(attempt.keys[0])
            except redis.RedisError as exc:
                self._redis_failed(exc)

    async def not_checked(self, attempt: Attempt) -> None:
        """The password could not be checked (user-service busy or down): the attempt does not count."""
        pair = attempt.keys[0]
        counter = self._local.get(pair)
        if counter is not None:
            counter.count = max(0, counter.count - 1)
            if counter.count < self.limits[0]:
                counter.blocked_until = 0.0
        if self.client is not None:
            try:
                await self._scripts["not_checked"](keys=[pair], args=[self.limits[0]])
            except redis.RedisError as exc:
                self._redis_failed(exc)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()
