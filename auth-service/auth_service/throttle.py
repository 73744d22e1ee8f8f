"""Failed-login throttling that a stranger cannot turn against an account's owner (OWASP's guidance on lock-out
and its "device cookies").

Who is limited, and how:
- **A (user, address) pair** counts an attempt when it is admitted, before its password is checked, in one atomic
  step (a Lua script in Redis, or plain code between two awaits in memory): of any number of guesses at one account
  sent at once from one address, at most LOGIN_FAILURES_PER_USER get checked. A correct password clears it.
- **An address** counts its failures over all accounts (LOGIN_FAILURES_PER_ADDRESS). It does not count attempts in
  flight, so that many people behind one address can log in at the same moment.
- **A trusted device** (a signed device cookie, given at a successful login to that account) is counted on its own
  and nowhere else: failures elsewhere, by anyone, never touch its allowance.
- **The account**, over all other clients, counts failures (LOGIN_FAILURES_PER_ACCOUNT). Past that many, it is not
  locked: attempts from clients it has never seen are let through at a bounded rate, one per
  LOGIN_ACCOUNT_INTERVAL_S, which slows a distributed guesser to that rate and makes the owner, on a new device,
  wait at most that long. An address the account logged in from before keeps its own allowance (its pair).

Past a pair's, an address's or a device's limit, further attempts are held off for LOGIN_BACKOFF_BASE_S, then twice
as long each time, up to LOGIN_BACKOFF_MAX_S: a wait, never a lock, and only for the party that failed.

Counters live in Redis so that every replica sees them; without Redis (or while it fails) they live in this
process, which still stops a brute force against one replica. This process counts what it sends to Redis too, so a
Redis that fails (or answers late) in the middle of a burst does not give the burst a fresh allowance.
"""

import logging
import math
import time
from dataclasses import dataclass

import redis.asyncio as redis

from titanium_common.throttling import RateLimiter

log = logging.getLogger("auth_service.throttle")

REDIS_TIMEOUT_S = 0.5
MAX_LOCAL_COUNTERS = 100_000
# The account counter never holds attempts off by itself (its limit only starts the slow-down).
NEVER = 2**31

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

# KEYS: the counter an attempt is admitted on (the pair or the device), then others that may hold it off (the
# address). Returns 0 (admitted; KEYS[1] counted it) or the milliseconds to wait.
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

# KEYS: the address and the account, of a failed attempt. Returns the account's failures.
_FAILED = (
    _COUNT
    + """
for i = 1, #KEYS do count(i) end
return tonumber(redis.call('HGET', KEYS[#KEYS], 'n'))
"""
)

# KEYS[1]: the counter of an attempt whose password could not be checked; ARGV[1]: its limit.
_NOT_CHECKED = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  local n = redis.call('HINCRBY', KEYS[1], 'n', -1)
  if n < tonumber(ARGV[1]) then redis.call('HDEL', KEYS[1], 'until') end
end
return 0
"""

# KEYS[1]: the account's failures, KEYS[2]: its known addresses; ARGV[1]: the address. Returns 1 when an attempt
# from this address must wait for the account's slow-down (the account is over its limit and the address unknown).
_SLOWED = """
local failures = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
if failures < tonumber(ARGV[2]) then return 0 end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 0 end
return 1
"""


@dataclass
class _Counter:
    count: int = 0
    blocked_until: float = 0.0
    forget_at: float = 0.0


@dataclass(frozen=True)
class Attempt:
    """An admitted login attempt: hand it to `failed`, `succeeded` or `not_checked`. `keys[0]` counted it; a device's
    attempt (`trusted`) counts nowhere else."""

    keys: tuple[str, ...]
    username: str
    address: str
    trusted: bool


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
        account_interval_s: float,
        known_client_ttl_s: int,
    ) -> None:
        self.client = (
            redis.Redis.from_url(redis_url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S)
            if redis_url
            else None
        )
        self._scripts = (
            {name: self.client.register_script(code) for name, code in
             (("admit", _ADMIT), ("failed", _FAILED), ("not_checked", _NOT_CHECKED), ("slowed", _SLOWED))}
            if self.client else {}
        )  # fmt: skip
        self.prefix = prefix
        self.per_user, self.per_address, self.per_account = per_user, per_address, per_account
        self.window_s = window_s
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.account_interval_s = account_interval_s
        self.known_client_ttl_s = known_client_ttl_s
        # The account's slow-down: one attempt per interval from clients it does not know, shared by the replicas.
        self.slowdown = RateLimiter(redis_url, prefix)
        self._local: dict[str, _Counter] = {}
        self._known: dict[str, dict[str, float]] = {}  # account -> address -> known until (monotonic)
        self.redis_problem: str | None = None

    def _name(self, username: str) -> str:
        return username.lower()

    def _pair(self, username: str, address: str) -> str:
        return f"{self.prefix}login:pair:{self._name(username)}|{address}"

    def _address(self, address: str) -> str:
        return f"{self.prefix}login:addr:{address}"

    def _account(self, username: str) -> str:
        return f"{self.prefix}login:user:{self._name(username)}"

    def _known_key(self, username: str) -> str:
        return f"{self.prefix}login:known:{self._name(username)}"

    def _device(self, device: str) -> str:
        return f"{self.prefix}login:device:{device}"

    def _redis_failed(self, exc: Exception) -> None:
        self.redis_problem = f"Redis unavailable ({type(exc).__name__}); throttling in memory"
        log.warning(self.redis_problem)

    async def _run(self, script: str, keys: list[str], args: list) -> int | None:
        """The script's answer, or None when Redis is absent or failing (the caller counts in memory)."""
        if self.client is None:
            return None
        try:
            answer = int(await self._scripts[script](keys=keys, args=args))
        except redis.RedisError as exc:
            self._redis_failed(exc)
            return None
        self.redis_problem = None
        return answer

    def _count_args(self, limits: list[int]) -> list:
        now_ms = int(time.time() * 1000)
        return [now_ms, self.window_s, self.backoff_base_s * 1000, self.backoff_max_s * 1000, *limits]

    async def admit(self, username: str, address: str, device: str | None = None) -> Attempt | int:
        """The attempt, if it may be checked now; else the whole seconds to wait (for Retry-After). `device`: the
        id of a valid device cookie of this account."""
        if device is not None:
            keys: tuple[str, ...] = (self._device(device),)
            attempt = Attempt(keys, username, address, trusted=True)
        else:
            keys = (self._pair(username, address), self._address(address))
            attempt = Attempt(keys, username, address, trusted=False)
        wait_ms = await self._run("admit", list(keys), self._count_args([self.per_user]))
        if wait_ms is None:
            wait = self._admit_locally(keys)
            if wait:
                return wait
        elif wait_ms > 0:
            return max(1, math.ceil(wait_ms / 1000))
        else:  # counted here too: a Redis that fails (or answers late) mid-burst grants no fresh allowance
            self._count_locally(keys[0], self.per_user, time.monotonic())
        if not attempt.trusted and await self._slowed(username, address):
            slot_wait = await self.slowdown.acquire(
                f"login:slow:{self._name(username)}", burst=1, interval_s=self.account_interval_s
            )
            if slot_wait > 0:
                await self.not_checked(attempt)
                return max(1, math.ceil(slot_wait))
        return attempt

    async def _slowed(self, username: str, address: str) -> bool:
        """Whether the account is over its failures and this address is not one it logged in from."""
        answer = await self._run(
            "slowed", [self._account(username), self._known_key(username)], [address, self.per_account]
        )
        if answer is not None:
            return answer == 1
        now = time.monotonic()
        failures = self._counter(self._account(username), now).count
        return failures >= self.per_account and self._known.get(self._name(username), {}).get(address, 0) <= now

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

    def _admit_locally(self, keys: tuple[str, ...]) -> int:
        now = time.monotonic()
        wait = max(self._counter(key, now).blocked_until - now for key in keys)
        if wait > 0:
            return max(1, math.ceil(wait))
        self._count_locally(keys[0], self.per_user, now)
        return 0

    async def failed(self, attempt: Attempt) -> None:
        """A wrong password: from an untrusted client it counts against the address and the account too."""
        if attempt.trusted:
            return
        keys = [attempt.keys[1], self._account(attempt.username)]
        await self._run("failed", keys, self._count_args([self.per_address, NEVER]))
        now = time.monotonic()  # counted here whatever Redis did, as in `admit`
        for key, limit in zip(keys, (self.per_address, NEVER), strict=True):
            self._count_locally(key, limit, now)

    async def succeeded(self, attempt: Attempt) -> None:
        """A correct password: the pair (or the device) starts afresh, and the address is known to the account."""
        self._local.pop(attempt.keys[0], None)
        name = self._name(attempt.username)
        known = self._known.setdefault(name, {})
        if len(known) > 100:  # bound one account's memory
            known.clear()
        known[attempt.address] = time.monotonic() + self.known_client_ttl_s
        if self.client is not None:
            known_key = self._known_key(attempt.username)
            try:
                async with self.client.pipeline(transaction=True) as pipe:
                    pipe.delete(attempt.keys[0])
                    pipe.hset(known_key, attempt.address, int(time.time()))
                    pipe.expire(known_key, self.known_client_ttl_s)
                    await pipe.execute()
            except redis.RedisError as exc:
                self._redis_failed(exc)

    async def not_checked(self, attempt: Attempt) -> None:
        """The password was not checked (user-service busy or down, or the account's slow-down): it does not count."""
        first = attempt.keys[0]
        counter = self._local.get(first)
        if counter is not None:
            counter.count = max(0, counter.count - 1)
            if counter.count < self.per_user:
                counter.blocked_until = 0.0
        if self.client is not None:
            try:
                await self._scripts["not_checked"](keys=[first], args=[self.per_user])
            except redis.RedisError as exc:
                self._redis_failed(exc)

    async def close(self) -> None:
        await self.slowdown.close()
        if self.client is not None:
            await self.client.aclose()
