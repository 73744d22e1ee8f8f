"""The last hour of the balancer's suite-wide figures, one point every `HISTORY_RESOLUTION_S` (10 s): real requests
per second, success rate, p50/p95 latency and open sockets; `GET /stats/history?window=<s>` (10 to 3600) serves it,
so that the dashboard's charts start full after a reload, without Prometheus.

Nothing is added to the request path: at the end of each slot (wall-clock aligned, so that every replica agrees on
the slots) a replica takes what changed in its `TrafficMeter` since the previous slot: its real requests and their
failures from the lifetime counters, their latencies as the newest values of its latency reservoir (every request
up to the reservoir's size per slot, about 200 per second at 10 s; beyond that the latest of them), and its open
sockets.

With REDIS_URL every replica adds its slot into one hash per slot (`history:{slot}`: counts and latency-bucket counts
add up; open sockets are per replica and summed when read), expiring after the hour: the history is suite-wide,
survives a replica's restart, and every replica serves the same. Without Redis, or while it fails, each replica
serves its own, kept in memory; either way the history is at most one hour of slots.
"""

import asyncio
import bisect
import logging
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as redis
from aiohttp import web

from titanium_common.aiohttp_app import json_error
from titanium_common.clock import utc_iso
from titanium_common.loops import raise_if_cancelling, stop_tasks

from .traffic import REDIS_TIMEOUT_S, TrafficMeter

log = logging.getLogger("load_balancer.history")

HISTORY_S = 3600
MIN_WINDOW_S = 10
# Latency buckets (upper bounds in ms, the last one open): the percentiles interpolate inside a bucket, as
# Prometheus' histogram_quantile does.
BOUNDS_MS = (1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 2000, 5000, 10000)
BUCKETS = len(BOUNDS_MS) + 1


class Slot:
    """One slot's sums: real requests, failures, latency-bucket counts, open sockets by replica."""

    __slots__ = ("buckets", "failed", "real", "sockets")

    def __init__(self) -> None:
        self.real = 0
        self.failed = 0
        self.buckets = [0] * BUCKETS
        self.sockets: dict[str, int] = {}

    def add(self, other: "Slot") -> None:
        self.real += other.real
        self.failed += other.failed
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]
        self.sockets.update(other.sockets)

    def fields(self) -> dict[str, int]:
        counts = {f"b{i}": n for i, n in enumerate(self.buckets) if n}
        return {"real": self.real, "failed": self.failed, **counts}

    @classmethod
    def from_hash(cls, raw: dict[bytes, bytes]) -> "Slot":
        slot = cls()
        for key, value in raw.items():
            name = key.decode()
            if name == "real":
                slot.real = int(value)
            elif name == "failed":
                slot.failed = int(value)
            elif name.startswith("b"):
                slot.buckets[int(name[1:])] = int(value)
            elif name.startswith("sockets:"):
                slot.sockets[name.removeprefix("sockets:")] = int(value)
        return slot


def percentile(buckets: list[int], q: float) -> float | None:
    total = sum(buckets)
    if not total:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(buckets):
        if count and seen + count >= rank:
            lower = BOUNDS_MS[i - 1] if i > 0 else 0.0
            upper = BOUNDS_MS[i] if i < len(BOUNDS_MS) else BOUNDS_MS[-1]
            return round(lower + (upper - lower) * (rank - seen) / count, 2)
        seen += count
    return float(BOUNDS_MS[-1])


def point(slot_id: int, slot: Slot, resolution_s: float) -> dict[str, Any]:
    return {
        "at": utc_iso(datetime.fromtimestamp(slot_id * resolution_s, UTC)),
        "timestamp": slot_id * resolution_s,
        "requests_per_second": round(slot.real / resolution_s, 2),
        # No request in the slot: no success rate rather than an invented 100 %.
        "success_rate": round(100.0 * (slot.real - slot.failed) / slot.real, 2) if slot.real else None,
        "latency_ms": {"p50": percentile(slot.buckets, 0.5), "p95": percentile(slot.buckets, 0.95)},
        "open_sockets": sum(slot.sockets.values()),
    }


class History:
    """This replica's slots (memory, bounded) and, with Redis, the suite's."""

    def __init__(
        self,
        meter: TrafficMeter,
        replica: str,
        *,
        resolution_s: float = 10.0,
        redis_url: str = "",
        prefix: str = "",
        clock=time.time,
    ) -> None:
        self.meter = meter
        self.replica = replica
        self.resolution_s = resolution_s
        self.slots_kept = int(HISTORY_S / resolution_s)
        self.clock = clock
        self.prefix = prefix
        self.client = (
            redis.Redis.from_url(redis_url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S)
            if redis_url
            else None
        )
        self.local: deque[tuple[int, Slot]] = deque(maxlen=self.slots_kept)
        # What the meter said at the last slot's end.
        self._requests = meter.real_requests
        self._failures = meter.real_failures
        # Slots Redis has not taken yet (it failed); written with the next one, if still inside the hour.
        self._unsent: list[tuple[int, Slot]] = []
        self.problem: str | None = None
        self._task: asyncio.Task | None = None

    def current_slot(self) -> int:
        return int(self.clock() // self.resolution_s)

    def take(self, slot_id: int) -> Slot:
        """What this replica did since the last slot, as slot `slot_id`, kept in memory."""
        meter = self.meter
        slot = Slot()
        slot.real = meter.real_requests - self._requests
        slot.failed = meter.real_failures - self._failures
        self._requests, self._failures = meter.real_requests, meter.real_failures
        for ms in meter.latencies.newest(slot.real):
            slot.buckets[bisect.bisect_left(BOUNDS_MS, ms)] += 1
        slot.sockets = {self.replica: meter.open_websockets}
        self.local.append((slot_id, slot))
        return slot

    async def write(self, slot_id: int, slot: Slot) -> None:
        if self.client is None:
            return
        oldest = self.current_slot() - self.slots_kept
        self._unsent = [(s, x) for s, x in self._unsent if s > oldest] + [(slot_id, slot)]
        pipe = self.client.pipeline(transaction=False)
        for s, x in self._unsent:
            key = f"{self.prefix}history:{s}"
            for name, value in x.fields().items():
                if value:
                    pipe.hincrby(key, name, value)
            pipe.hset(key, f"sockets:{self.replica}", x.sockets.get(self.replica, 0))
            # Kept for the hour it can be asked for, and a slot more.
            pipe.expireat(key, int((s + 1) * self.resolution_s + HISTORY_S + self.resolution_s))
        try:
            await pipe.execute()
        except (redis.RedisError, OSError) as exc:
            raise_if_cancelling()
            if self.problem is None:
                log.warning("history: Redis write failed (%s); serving this replica's own history", exc)
            self.problem = f"Redis write failed: {type(exc).__name__}: {exc}"
            return
        self._unsent = []
        self.problem = None

    async def step(self, slot_id: int) -> None:
        await self.write(slot_id, self.take(slot_id))

    async def read(self, window_s: int) -> dict[str, Any]:
        """The complete slots of the last `window_s` seconds, oldest first."""
        last = self.current_slot() - 1
        first = last - max(1, int(window_s / self.resolution_s)) + 1
        slots: dict[int, Slot] | None = None
        if self.client is not None and self.problem is None:
            slots = await self._read_shared(first, last)
        scope = "suite"
        if slots is None:
            scope = "replica"
            slots = {s: x for s, x in self.local if first <= s <= last}
        body = {
            "window_s": window_s,
            "resolution_s": self.resolution_s,
            "scope": scope,
            "replica": self.replica,
            "points": [point(s, slots[s], self.resolution_s) for s in sorted(slots)],
        }
        if scope == "replica" and self.client is not None:
            body["shared_error"] = self.problem
        return body

    async def _read_shared(self, first: int, last: int) -> dict[int, Slot] | None:
        pipe = self.client.pipeline(transaction=False)
        for s in range(first, last + 1):
            pipe.hgetall(f"{self.prefix}history:{s}")
        try:
            answers = await pipe.execute()
        except (redis.RedisError, OSError) as exc:
            raise_if_cancelling()
            self.problem = f"Redis read failed: {type(exc).__name__}: {exc}"
            return None
        return {s: Slot.from_hash(raw) for s, raw in zip(range(first, last + 1), answers, strict=True) if raw}

    async def _run(self) -> None:
        while True:
            # Wake just after each slot's end (wall clock), so that every replica closes the same slot.
            now = self.clock()
            ended = int(now // self.resolution_s)
            await asyncio.sleep((ended + 1) * self.resolution_s - now + 0.05)
            try:
                await self.step(ended)
            except Exception:  # the sampler must outlive any surprise; the next slot tries again
                raise_if_cancelling()
                log.exception("history: sampling slot %d failed", ended)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="history")

    async def stop(self) -> None:
        if self._task is not None:
            await stop_tasks([self._task])
            self._task = None
        if self.client is not None:
            await self.client.aclose()


HISTORY = web.AppKey("history", History)


async def history(request: web.Request) -> web.Response:
    raw = request.query.get("window", str(HISTORY_S))
    try:
        window_s = int(raw)
    except ValueError:
        return json_error(422, f"window must be a whole number of seconds from {MIN_WINDOW_S} to {HISTORY_S}")
    if not MIN_WINDOW_S <= window_s <= HISTORY_S:
        return json_error(422, f"window must be from {MIN_WINDOW_S} to {HISTORY_S} seconds, not {window_s}")
    return web.json_response(await request.app[HISTORY].read(window_s))


def attach(app: web.Application, meter: TrafficMeter, settings) -> None:
    """The sampler, started and stopped with the app, and GET /stats/history (before the catch-all proxy route)."""
    keeper = app[HISTORY] = History(
        meter,
        settings.replica_id,
        resolution_s=settings.history_resolution_s,
        redis_url=settings.redis_url,
        prefix=settings.redis_prefix,
    )

    async def sampling(app: web.Application):
        await keeper.start()
        yield
        await keeper.stop()

    app.cleanup_ctx.append(sampling)
    app.router.add_get("/stats/history", history)
