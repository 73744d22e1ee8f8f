"""The post reads' answers (newest pages, one post), kept as the bytes sent and served while nothing has changed.

Each answer is kept under the version of what it depends on (`LISTS`: any write; `POSTS`: an update or a delete;
ids are never reused, so a new post changes no other post's answer). A read learns the current version first, then
either sends the answer kept under it or reads the database and keeps what it made under the version it learnt.
Every write bumps the versions after its commit and before it answers, so a reader that comes after a write (the
writer itself, through any replica) never gets an answer made before it.

Where the versions live:
- SQLite: in this process (one process owns the file; the launcher refuses replicas on SQLite).
- PostgreSQL with Redis: counters in Redis that every replica reads (one GET per cached read) and INCRs after a
  commit; each replica also keeps a local count of its own writes, so its own changes show even if Redis missed
  them. Redis unreachable: reads go to the database (no error); a bump that failed is retried in the background.
  A counter that vanished (Redis restarted empty) starts again at a random value, never at one seen before.
- PostgreSQL without Redis: no cache (another replica's writes could not be seen).

Every answer is also kept at most `max_age_s`, which bounds what a bump lost in Redis can leave behind.
"""

import asyncio
import contextlib
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from functools import partial
from typing import Any

import redis.asyncio as redis

log = logging.getLogger("blog_service.cache")

LISTS = "lists"
POSTS = "posts"
KINDS = (LISTS, POSTS)

REDIS_TIMEOUT_S = 0.5
# After a failure, Redis is left alone this long (reads go to the database), so that a dead Redis costs nothing.
RETRY_AFTER_FAILURE_S = 2.0
RESEND_EVERY_S = 0.5

# A counter that is missing starts at a random value, never at one an answer may still be kept under.
_CURRENT_OR_START = """
local value = redis.call('GET', KEYS[1])
if value then return value end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
"""
_BUMP = """
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 0 then redis.call('SET', key, ARGV[1]) end
  redis.call('INCR', key)
end
return 1
"""


def _random_start() -> int:
    return secrets.randbits(52)


class SharedVersions:
    """The version counters in Redis, shared by every replica."""

    def __init__(self, url: str, prefix: str, resend_for_s: float) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S)
        self.keys = {kind: f"{prefix}version:{kind}" for kind in KINDS}
        self._current_or_start = self.client.register_script(_CURRENT_OR_START)
        self._bump = self.client.register_script(_BUMP)
        self.resend_for_s = resend_for_s
        self.problem: str | None = None
        self._skip_until = 0.0
        self._unsent: dict[str, float] = {}
        self._resend_task: asyncio.Task | None = None
        # Told when Redis failed: answers kept under its versions are dropped.
        self.on_failure: Callable[[], None] = lambda: None

    def _failed(self, action: str, exc: Exception) -> None:
        self.problem = f"Redis {action} failed ({type(exc).__name__}: {exc})"
        self._skip_until = time.monotonic() + RETRY_AFTER_FAILURE_S
        log.warning("post cache: %s; reading the database", self.problem)
        self.on_failure()

    async def current(self, kind: str) -> bytes | None:
        """The shared version of `kind`, or None when Redis cannot say (then nothing kept may be used)."""
        if time.monotonic() < self._skip_until:
            return None
        key = self.keys[kind]
        try:
            value = await self.client.get(key)
            if value is None:
                value = await self._current_or_start(keys=[key], args=[_random_start()])
        except (redis.RedisError, OSError) as exc:
            self._failed("read", exc)
            return None
        self.problem = None
        return value

    async def bump(self, kinds: tuple[str, ...]) -> None:
        keys = [self.keys[kind] for kind in kinds]
        if time.monotonic() >= self._skip_until:
            try:
                await self._bump(keys=keys, args=[_random_start()])
                return
            except (redis.RedisError, OSError) as exc:
                self._failed("bump", exc)
        give_up_at = time.monotonic() + self.resend_for_s
        for key in keys:
            self._unsent[key] = give_up_at
        if self._resend_task is None or self._resend_task.done():
            self._resend_task = asyncio.create_task(self._resend(), name="post-cache-resend")

    async def _resend(self) -> None:
        # Past `resend_for_s` every answer kept before the write has expired by age: nothing left to correct.
        while self._unsent:
            await asyncio.sleep(RESEND_EVERY_S)
            now = time.monotonic()
            for key, give_up_at in list(self._unsent.items()):
                if now > give_up_at:
                    self._unsent.pop(key, None)
            if not self._unsent or now < self._skip_until:
                continue
            keys = list(self._unsent)
            try:
                await self._bump(keys=keys, args=[_random_start()])
            except (redis.RedisError, OSError) as exc:
                self._failed("bump", exc)
                continue
            for key in keys:
                self._unsent.pop(key, None)

    async def close(self) -> None:
        if self._resend_task is not None:
            self._resend_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._resend_task
        await self.client.aclose()


@dataclass(frozen=True, slots=True)
class _Kept:
    version: tuple
    made_at: float
    body: bytes


class AnswerCache:
    """Answers by key (e.g. the page asked for), each valid while its kind's version is the one it was made under.
    Concurrent misses of one key under one version share one database read."""

    def __init__(self, shared: SharedVersions | None, *, max_age_s: float, max_entries: int, backend: str) -> None:
        self.shared = shared
        self.max_age_s = max_age_s
        self.max_entries = max_entries
        self.backend = backend
        self.hits = 0
        self.misses = 0
        self.bypassed = 0
        self._local = dict.fromkeys(KINDS, 0)
        self._kept: OrderedDict[Hashable, _Kept] = OrderedDict()
        self._filling: dict[tuple, asyncio.Future] = {}
        if shared is not None:
            shared.on_failure = self._kept.clear

    async def _version(self, kind: str) -> tuple | None:
        if self.shared is None:
            return (self._local[kind],)
        local = self._local[kind]
        shared = await self.shared.current(kind)
        return None if shared is None else (local, shared)

    async def answer(self, key: Hashable, kind: str, make: Callable[[], Awaitable[bytes]]) -> bytes:
        """The answer kept for `key` if still valid, else `make()`'s (kept for the next reads)."""
        version = await self._version(kind)
        if version is None:
            self.bypassed += 1
            return await make()
        now = time.monotonic()
        kept = self._kept.get(key)
        if kept is not None and kept.version == version and now - kept.made_at < self.max_age_s:
            self._kept.move_to_end(key)
            self.hits += 1
            return kept.body
        self.misses += 1
        flight = self._filling.get((key, version))
        if flight is None:
            flight = asyncio.ensure_future(make())
            self._filling[(key, version)] = flight
            flight.add_done_callback(partial(self._made, key, version, now))
        # Shielded: one reader giving up must not cancel the read the others wait for.
        return await asyncio.shield(flight)

    def _made(self, key: Hashable, version: tuple, made_at: float, flight: asyncio.Future) -> None:
        self._filling.pop((key, version), None)
        if flight.cancelled() or flight.exception() is not None:
            return  # not kept; whoever waited got the error (a 404 is never kept)
        self._kept[key] = _Kept(version, made_at, flight.result())
        self._kept.move_to_end(key)
        while len(self._kept) > self.max_entries:
            self._kept.popitem(last=False)

    async def changed(self, *kinds: str) -> None:
        """Call after the commit of a write, before answering it."""
        for kind in kinds:
            self._local[kind] += 1
        if self.shared is not None:
            # Shielded: a cancelled request must not leave its committed write unannounced.
            await asyncio.shield(self.shared.bump(kinds))

    def stats(self) -> dict[str, Any]:
        lookups = self.hits + self.misses
        problem = self.shared.problem if self.shared is not None else None
        figure: dict[str, Any] = {
            "backend": self.backend,
            "status": "off" if self.backend == "off" else ("down" if problem else "ok"),
            "hits": self.hits,
            "misses": self.misses,
            "bypassed": self.bypassed,
            "hit_ratio": round(self.hits / lookups, 4) if lookups else 0.0,
        }
        if problem:
            figure["reason"] = problem
        return figure

    async def close(self) -> None:
        if self.shared is not None:
            await self.shared.close()


class NoCache(AnswerCache):
    """Every read goes to the database (PostgreSQL without Redis: other replicas' writes could not be seen)."""

    def __init__(self) -> None:
        super().__init__(None, max_age_s=0.0, max_entries=0, backend="off")

    async def answer(self, key: Hashable, kind: str, make: Callable[[], Awaitable[bytes]]) -> bytes:
        return await make()


def answer_cache(*, database_backend: str, redis_url: str, redis_prefix: str, max_age_s: float, max_entries: int):
    """The cache for this deployment (see the module's docstring); `max_age_s` 0 turns it off."""
    if max_age_s <= 0 or max_entries <= 0:
        return NoCache()
    if database_backend == "sqlite":
        return AnswerCache(None, max_age_s=max_age_s, max_entries=max_entries, backend="local")
    if redis_url:
        shared = SharedVersions(redis_url, redis_prefix, resend_for_s=max_age_s)
        return AnswerCache(shared, max_age_s=max_age_s, max_entries=max_entries, backend="redis")
    log.info("post cache off: replicas on %s need REDIS_URL to share what changed", database_backend)
    return NoCache()
