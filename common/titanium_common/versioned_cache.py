"""Read answers kept in this process as the bytes sent, served while nothing they depend on has changed.

A service names the kinds of change its answers depend on (blog-service: any write, or an update or delete of a
post; user-service: an update or delete of a user) and keeps each answer under the version of its kind. A read
learns the current version first, then either sends the answer kept under it or makes the answer (reads the
database) and keeps it under the version it learnt. Every write bumps the versions after its commit and before it
answers, so a reader that comes after a write (the writer itself, through any replica) never gets an answer made
before it.

Where the versions live:
- SQLite: in this process (one process owns the file; the launcher refuses replicas on SQLite).
- PostgreSQL with Redis: counters in Redis that every replica reads and INCRs after a commit. Reads that arrive
  together share one GET (sent after all of them arrived, so none can get a version from before a write it
  follows); each replica also keeps a local count of its own writes, so its own changes show even if Redis missed
  them. Redis unreachable: reads go to the database (logged once per failure, no error); a bump that failed is
  retried in the background. A counter that vanished (Redis restarted empty) starts again at a random value,
  never at one seen before.
- PostgreSQL without Redis: no cache (another replica's writes could not be seen).

Every answer is also kept at most `max_age_s`, which bounds what a bump lost in Redis can leave behind, and at most
`max_entries` answers are kept (the least recently used go first).
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

log = logging.getLogger("titanium_common.versioned_cache")

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


class SharedRead:
    """`read()` for many callers at once: those that arrive while one read is out share the next one, sent when
    it returns. Each caller's answer comes from a read sent after it arrived."""

    def __init__(self, read: Callable[[], Awaitable[Any]]) -> None:
        self._read = read
        self._next: asyncio.Future | None = None
        self._out = False
        self._task: asyncio.Future | None = None

    async def __call__(self) -> Any:
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
            if not self._out:
                self._start()
        # Shielded: one caller giving up must not cancel the read the others wait for.
        return await asyncio.shield(self._next)

    def _start(self) -> None:
        self._out = True
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        # Callers that came until now share this read; those that come while it is out share the next one.
        answer, self._next = self._next, None
        try:
            answer.set_result(await self._read())
        except asyncio.CancelledError:
            answer.cancel()
            raise
        except Exception as exc:  # handed to every caller of this read
            answer.set_exception(exc)
        finally:
            self._out = False
            if self._next is not None:
                self._start()


class SharedVersions:
    """The version counters in Redis, shared by every replica."""

    def __init__(self, url: str, prefix: str, kinds: tuple[str, ...], *, resend_for_s: float, name: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S)
        self.keys = {kind: f"{prefix}version:{kind}" for kind in kinds}
        self.name = name
        self._current_or_start = self.client.register_script(_CURRENT_OR_START)
        self._bump = self.client.register_script(_BUMP)
        self._reads = {kind: SharedRead(partial(self._read, key)) for kind, key in self.keys.items()}
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
        log.warning("%s: %s; reading the database", self.name, self.problem)
        self.on_failure()

    async def current(self, kind: str) -> bytes | None:
        """The shared version of `kind`, or None when Redis cannot say (then nothing kept may be used)."""
        if time.monotonic() < self._skip_until:
            return None
        return await self._reads[kind]()

    async def _read(self, key: str) -> bytes | None:
        if time.monotonic() < self._skip_until:
            return None
        try:
            value = await self.client.get(key)
            if value is None:
                value = await self._current_or_start(keys=[key], args=[_random_start()])
        except (redis.RedisError, OSError) as exc:
            self._failed("read", exc)
            return None
        if self.problem is not None:
            log.info("%s: Redis answers again", self.name)
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
            self._resend_task = asyncio.create_task(self._resend(), name=f"{self.name}-resend")

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


class VersionedCache:
    """Answers by key, each valid while its kind's version is the one it was made under and for `max_age_s` at
    most. Concurrent misses of one key under one version share one `make()`."""

    def __init__(
        self,
        shared: SharedVersions | None,
        *,
        kinds: tuple[str, ...],
        max_age_s: float,
        max_entries: int,
        backend: str,
        off_reason: str | None = None,
    ) -> None:
        self.shared = shared
        self.max_age_s = max_age_s
        self.max_entries = max_entries
        self.backend = backend
        self.off_reason = off_reason
        self.hits = 0
        self.misses = 0
        self.bypassed = 0
        self._local = dict.fromkeys(kinds, 0)
        self._kept: OrderedDict[Hashable, _Kept] = OrderedDict()
        self._filling: dict[tuple, asyncio.Future] = {}
        if shared is not None:
            shared.on_failure = self._kept.clear

    async def _version(self, kind: str) -> tuple | None:
        local = self._local[kind]
        if self.shared is None:
            return (local,)
        shared = await self.shared.current(kind)
        return None if shared is None else (local, shared)

    async def answer(self, key: Hashable, kind: str, make: Callable[[], Awaitable[bytes]]) -> bytes:
        """The answer kept for `key` if still valid, else `make()`'s (kept for the next reads). An exception from
        `make()` (e.g. a 404) reaches every reader that waited for it and is never kept."""
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
            return
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

    @property
    def problem(self) -> str | None:
        """Why answers are not kept now (Redis down, or no cache), else None."""
        if self.shared is not None and self.shared.problem:
            return f"cache down: {self.shared.problem}"
        return self.off_reason

    async def recheck(self) -> None:
        """After a Redis failure, ask Redis again (once its pause is over), so that /stats says when it is back
        even while no read comes."""
        if self.shared is not None and self.shared.problem:
            await self.shared.current(next(iter(self._local)))

    def stats(self) -> dict[str, Any]:
        lookups = self.hits + self.misses
        problem = self.problem
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


class NoCache(VersionedCache):
    """Every read is made anew (PostgreSQL without Redis: other replicas' writes could not be seen)."""

    def __init__(self, kinds: tuple[str, ...], reason: str | None = None) -> None:
        super().__init__(None, kinds=kinds, max_age_s=0.0, max_entries=0, backend="off", off_reason=reason)

    async def answer(self, key: Hashable, kind: str, make: Callable[[], Awaitable[bytes]]) -> bytes:
        return await make()


def versioned_cache(
    *,
    name: str,
    kinds: tuple[str, ...],
    database_backend: str,
    redis_url: str,
    redis_prefix: str,
    max_age_s: float,
    max_entries: int,
) -> VersionedCache:
    """The cache for this deployment (see the module's docstring); `max_age_s` or `max_entries` 0 turns it off.
    `name` (e.g. "user cache") names it in the log."""
    if max_age_s <= 0 or max_entries <= 0:
        return NoCache(kinds)
    if database_backend == "sqlite":
        return VersionedCache(None, kinds=kinds, max_age_s=max_age_s, max_entries=max_entries, backend="local")
    if redis_url:
        shared = SharedVersions(redis_url, redis_prefix, kinds, resend_for_s=max_age_s, name=name)
        return VersionedCache(shared, kinds=kinds, max_age_s=max_age_s, max_entries=max_entries, backend="redis")
    reason = f"cache off: REDIS_URL is not set (replicas on {database_backend} share what changed through it)"
    log.info("%s: %s", name, reason)
    return NoCache(kinds, reason)
