"""Rate limits shared by every replica: who the client is behind the suite's proxies, and a GCRA limiter (a token
bucket of `burst` requests refilled one per `interval_s`) kept in Redis, or in this process without it.

GCRA keeps one number per key (the "theoretical arrival time"), updated in one atomic step (a Lua script in Redis,
plain code between two awaits in memory): any number of concurrent requests get exactly the allowance, and a
refused one learns how long to wait (Retry-After). Without Redis (or while it fails) each replica limits on its
own, which still bounds one client per replica; `problem` says so for `/stats`. Each replica's own buckets are
charged for what Redis admits too, and what Redis admits must fit them, so a Redis that fails (or answers late)
mid-burst never grants a fresh burst.
"""

import logging
import math
import time

import redis.asyncio as redis
from pydantic import Field
from starlette.requests import HTTPConnection

from .settings import ServiceSettings

log = logging.getLogger("titanium.throttling")

REDIS_TIMEOUT_S = 0.5
MAX_LOCAL_KEYS = 100_000

# KEYS[1]: the bucket. ARGV: interval (ms), burst. Returns 0 (admitted) or the milliseconds to wait. "Now" is Redis's
# clock, read inside the script: a caller's clock, read before its turn, let a burst sent at once admit fewer than its
# allowance (a later "now" ran first), and replicas' clocks differ.
_GCRA = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
local wait = tat - now - (burst - 1) * interval
if wait > 0 then return math.ceil(wait) end
redis.call('SET', KEYS[1], tat + interval, 'PX', math.ceil(tat + interval - now))
return 0
"""


class ClientAddressSettings(ServiceSettings):
    """Mix into a service's settings when it limits per client address."""

    trusted_proxy_hops: int = Field(
        default=2,
        ge=0,
        description="Proxies in front that append to X-Forwarded-For (load balancer and gateway): their entries "
        "name the client address.",
    )


def client_address(connection: HTTPConnection, trusted_proxy_hops: int) -> str:
    """The client as seen by the first trusted proxy (entries before it can be forged by the client)."""
    forwarded = [part.strip() for part in connection.headers.get("X-Forwarded-For", "").split(",") if part.strip()]
    if trusted_proxy_hops and forwarded:
        return forwarded[-min(trusted_proxy_hops, len(forwarded))]
    return connection.client.host if connection.client else "unknown"


class RateLimiter:
    """`await limiter.acquire(key, burst=, interval_s=)`: 0.0 when admitted, else the seconds to wait."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        self.client = (
            redis.Redis.from_url(redis_url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S)
            if redis_url
            else None
        )
        self._script = self.client.register_script(_GCRA) if self.client is not None else None
        self.prefix = prefix
        self._local: dict[str, float] = {}  # key -> theoretical arrival time (monotonic seconds)
        self.problem: str | None = None if redis_url else "REDIS_URL is not set: each replica limits on its own"

    @property
    def backend(self) -> str:
        return "redis" if self.client is not None and self.problem is None else "memory"

    def figure(self) -> dict:
        return {"backend": self.backend} | ({"reason": self.problem} if self.problem else {})

    async def acquire(self, key: str, *, burst: int, interval_s: float) -> float:
        if self._script is not None:
            try:
                wait_ms = int(await self._script(keys=[self.prefix + key], args=[interval_s * 1000, burst]))
            except redis.RedisError as exc:
                if self.problem is None:
                    log.warning("Redis unavailable (%s): rate limits kept in this process", type(exc).__name__)
                self.problem = f"Redis unavailable ({type(exc).__name__}): each replica limits on its own"
            else:
                self.problem = None
                if wait_ms:
                    return wait_ms / 1000
                # Redis's admission must fit this replica's bucket too: requests whose answer came late were
                # admitted here on their own meanwhile, and Redis may have counted them as well.
                return self._acquire_locally(key, burst, interval_s, slack_s=min(REDIS_TIMEOUT_S, interval_s / 2))
        return self._acquire_locally(key, burst, interval_s)

    def _acquire_locally(self, key: str, burst: int, interval_s: float, slack_s: float = 0.0) -> float:
        """`slack_s`: how far this bucket may run ahead of Redis's (it is charged when the answer arrives, later
        than Redis's clock charged it) without refusing what Redis admitted."""
        now = time.monotonic()
        tat = max(self._local.get(key, now), now)
        wait = tat - now - (burst - 1) * interval_s
        if wait > slack_s:
            return wait
        self._charge_locally(key, interval_s)
        return 0.0

    def _charge_locally(self, key: str, interval_s: float) -> None:
        now = time.monotonic()
        if len(self._local) > MAX_LOCAL_KEYS:  # bound memory under a spray of keys: drop the buckets that are full
            self._local = {k: tat for k, tat in self._local.items() if tat > now}
        self._local[key] = max(self._local.get(key, now), now) + interval_s

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()


def retry_after(wait_s: float) -> str:
    """A wait as Retry-After's whole seconds (at least 1)."""
    return str(max(1, math.ceil(wait_s)))
