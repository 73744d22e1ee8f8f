"""Real-traffic accounting: what counts as real traffic, and the figures /stats shows for it.

Only /api/* requests count, except HEAD and requests marked `X-Heartbeat: true`; activity on /api/ws-heartbeat
(open, message, pong) counts as activity too. Every figure is a counter or a fixed-size window: memory does not
grow with traffic.

With several balancer replicas, `SharedTraffic` makes the figures suite-wide: each replica adds its requests into
per-second buckets in memory (no I/O on the hot path) and a background task flushes them every 100 to 250 ms, in
one pipelined round trip, into per-second Redis hashes with a TTL; /stats sums the last window's buckets. Redis
absent or failing: each replica reports its own figures and says so (`"scope": "replica"`).
"""

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

import redis.asyncio as redis

from titanium_common.loops import raise_if_cancelling, stop_tasks
from titanium_common.window import Clock, LatencyReservoir, SlidingWindow

log = logging.getLogger("load_balancer.traffic")

REAL_TRAFFIC_PREFIX = "/api/"
# Per-second bucket fields: every proxied request, real ones, their failures, their latency sum, WebSocket activity.
FIELDS = ("total", "real", "failed", "latency_ms", "ws")
REDIS_TIMEOUT_S = 0.25
# A replica that has not flushed for this long no longer counts as running (its figures are still in the buckets).
REPLICA_STALE_S = 5.0


def is_real_traffic(method: str, path: str, heartbeat_header: str | None) -> bool:
    return (
        path.startswith(REAL_TRAFFIC_PREFIX)
        and method != "HEAD"
        and (heartbeat_header is None or heartbeat_header.lower() != "true")
    )


def rates(window_s: float, real: int, failed: int, latency_ms: float, ws: int, lifetime: tuple[int, int]) -> dict:
    """The window's figures from its sums; `lifetime` = (real requests, failures) for an empty window."""
    active = real > 0 or ws > 0
    if real:
        success_rate = 100.0 * (real - failed) / real
    elif lifetime[0]:
        # Nothing in the window: the lifetime figure rather than an invented 100 %.
        success_rate = 100.0 * (lifetime[0] - lifetime[1]) / lifetime[0]
    else:
        success_rate = 100.0
    return {
        "requests_per_second": round(real / window_s, 2),
        "has_real_traffic": active,
        "state": "ACTIVE" if active else "IDLE",
        "success_rate": round(success_rate, 2),
        "avg_response_time_ms": round(latency_ms / real, 2) if real else 0.0,
        "websocket_activity_per_second": round(ws / window_s, 2),
    }


class TrafficMeter:
    """This replica's figures. `pending` (when shared accounting is on) collects per-second sums for the next
    flush, keyed by the wall-clock second, which every replica agrees on."""

    def __init__(self, window_s: float = 10.0, clock: Clock = time.monotonic, wall_clock: Clock = time.time) -> None:
        self.window_s = window_s
        self.wall_clock = wall_clock
        # Real requests in the window (value: latency in ms), their failures, and WebSocket activity.
        self.real = SlidingWindow(window_s, resolution_s=0.1, clock=clock)
        self.failed = SlidingWindow(window_s, resolution_s=0.1, clock=clock)
        self.ws_activity = SlidingWindow(window_s, resolution_s=0.1, clock=clock)
        self.latencies = LatencyReservoir()
        self.total_requests = 0
        self.real_requests = 0
        self.real_failures = 0
        self.real_latency_ms_sum = 0.0
        self.ws_events = 0
        self.heartbeat_sockets = 0
        self.relayed_sockets = 0
        self.pending: dict[int, list] | None = None

    def _bucket(self) -> list | None:
        pending = self.pending
        if pending is None:
            return None
        second = int(self.wall_clock())
        bucket = pending.get(second)
        if bucket is None:
            bucket = pending[second] = [0, 0, 0, 0.0, 0]
        return bucket

    def count_request(self) -> None:
        """A request that is not real traffic (or a relayed WebSocket): only the total counts."""
        self.total_requests += 1
        bucket = self._bucket()
        if bucket is not None:
            bucket[0] += 1

    def record(self, method: str, path: str, heartbeat_header: str | None, status: int, elapsed_s: float) -> None:
        """One proxied request, whatever it was."""
        if not is_real_traffic(method, path, heartbeat_header):
            self.count_request()
            return
        self.total_requests += 1
        ms = elapsed_s * 1000.0
        self.real_requests += 1
        self.real_latency_ms_sum += ms
        self.real.add(ms)
        self.latencies.add(ms)
        # A 4xx is the client's mistake, served correctly; only 5xx (and dropped answers) are failures.
        failed = status >= 500
        if failed:
            self.real_failures += 1
            self.failed.add()
        pending = self.pending
        if pending is not None:  # inline rather than _bucket(): this is the per-request path
            second = int(self.wall_clock())
            bucket = pending.get(second)
            if bucket is None:
                bucket = pending[second] = [0, 0, 0, 0.0, 0]
            bucket[0] += 1
            bucket[1] += 1
            bucket[2] += failed
            bucket[3] += ms

    def record_ws_activity(self) -> None:
        """An open, a message or a pong on /api/ws-heartbeat."""
        self.ws_events += 1
        self.ws_activity.add()
        bucket = self._bucket()
        if bucket is not None:
            bucket[4] += 1

    @property
    def open_websockets(self) -> int:
        return self.heartbeat_sockets + self.relayed_sockets

    def snapshot(self) -> dict[str, Any]:
        count, latency_sum = self.real.totals()
        lifetime_avg = self.real_latency_ms_sum / self.real_requests if self.real_requests else 0.0
        return {
            **rates(
                self.window_s,
                count,
                self.failed.count(),
                latency_sum,
                self.ws_activity.count(),
                (self.real_requests, self.real_failures),
            ),
            "total_requests": self.total_requests,
            "real_requests": self.real_requests,
            "avg_response_time_ms_lifetime": round(lifetime_avg, 2),
            "latency_ms": self.latencies.percentiles(),
            "open_websockets": self.open_websockets,
            "websockets": {
                "heartbeat": self.heartbeat_sockets,
                "relayed": self.relayed_sockets,
                "activity_total": self.ws_events,
            },
            "window_s": self.window_s,
        }


class SharedTraffic:
    """Suite-wide figures in Redis, fed by `meter.pending`.

    Keys (under `prefix`): `traffic:{second}` hashes of FIELDS (expire after three windows), `totals` (lifetime
    sums of FIELDS), and `replicas` (name → that replica's own figures as JSON, rewritten at every flush).
    """

    def __init__(
        self,
        meter: TrafficMeter,
        url: str,
        *,
        prefix: str,
        replica: str,
        flush_interval_s: float = 0.2,
    ) -> None:
        self.meter = meter
        self.prefix = prefix
        self.replica = replica
        self.flush_interval_s = flush_interval_s
        self.window_seconds = max(1, round(meter.window_s))
        self.client = redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S)
        meter.pending = {}
        # None while the last flush worked; else why it did not (the figures are then this replica's own).
        self.problem: str | None = "not flushed yet"
        self._task: asyncio.Task | None = None

    def _key(self, second: int) -> str:
        return f"{self.prefix}traffic:{second}"

    def _failed(self, action: str, exc: Exception) -> None:
        if self.problem is None or self.problem.startswith("not"):
            log.warning("shared traffic figures: Redis %s failed (%s), reporting this replica only", action, exc)
        self.problem = f"Redis {action} failed: {type(exc).__name__}: {exc}"

    async def flush(self) -> None:
        """Add the pending buckets to Redis in one pipelined round trip; on failure they wait for the next one."""
        meter = self.meter
        pending, meter.pending = meter.pending, {}
        oldest = int(meter.wall_clock()) - self.window_seconds
        ttl = 3 * self.window_seconds
        pipe = self.client.pipeline(transaction=False)
        sums = [0, 0, 0, 0.0, 0]
        for second, bucket in pending.items():
            key = self._key(second)
            for name, value in zip(FIELDS, bucket, strict=True):
                if value:
                    if name == "latency_ms":
                        pipe.hincrbyfloat(key, name, value)
                    else:
                        pipe.hincrby(key, name, value)
            pipe.expire(key, ttl)
            for i, value in enumerate(bucket):
                sums[i] += value
        for name, value in zip(FIELDS, sums, strict=True):
            if value:
                if name == "latency_ms":
                    pipe.hincrbyfloat(f"{self.prefix}totals", name, value)
                else:
                    pipe.hincrby(f"{self.prefix}totals", name, value)
        own = meter.snapshot()
        mine = {
            "at": meter.wall_clock(),
            "open_websockets": own["open_websockets"],
            **{k: own[k] for k in ("requests_per_second", "has_real_traffic", "state", "success_rate")},
            **{k: own[k] for k in ("avg_response_time_ms", "total_requests", "real_requests", "latency_ms")},
        }
        pipe.hset(f"{self.prefix}replicas", self.replica, json.dumps(mine))
        try:
            await pipe.execute()
        except (redis.RedisError, OSError) as exc:
            raise_if_cancelling()
            # Nothing reached Redis in the usual failure (refused, timed out before sending): keep what is still
            # inside the window for the next flush, so a short outage loses no count.
            for second, bucket in pending.items():
                if second > oldest:
                    into = meter.pending.setdefault(second, [0, 0, 0, 0.0, 0])
                    for i, value in enumerate(bucket):
                        into[i] += value
            self._failed("write", exc)
            return
        if self.problem is not None and not self.problem.startswith("not"):
            log.info("shared traffic figures: Redis answers again")
        self.problem = None

    async def read(self) -> dict[str, Any] | None:
        """The suite-wide figures, or None when Redis cannot give them (the caller reports its own)."""
        if self.problem is not None:
            return None
        now = self.meter.wall_clock()
        second = int(now)
        pipe = self.client.pipeline(transaction=False)
        for s in range(second - self.window_seconds + 1, second + 1):
            pipe.hgetall(self._key(s))
        pipe.hgetall(f"{self.prefix}totals")
        pipe.hgetall(f"{self.prefix}replicas")
        try:
            answers = await pipe.execute()
        except (redis.RedisError, OSError) as exc:
            raise_if_cancelling()
            self._failed("read", exc)
            return None
        *buckets, totals, replicas = answers
        window = [0, 0, 0, 0.0, 0]
        for bucket in buckets:
            for i, name in enumerate(FIELDS):
                raw = bucket.get(name.encode())
                if raw is not None:
                    window[i] += float(raw) if i == 3 else int(raw)
        lifetime = {name: float(totals.get(name.encode(), 0)) for name in FIELDS}
        running: dict[str, Any] = {}
        for name, raw in replicas.items():
            figures = json.loads(raw)
            if figures.get("at", 0) >= now - REPLICA_STALE_S:
                running[name.decode()] = figures
        real_total = int(lifetime["real"])
        lifetime_counts = (real_total, int(lifetime["failed"]))
        return {
            **rates(self.meter.window_s, window[1], window[2], window[3], window[4], lifetime_counts),
            "total_requests": int(lifetime["total"]),
            "real_requests": real_total,
            "avg_response_time_ms_lifetime": round(lifetime["latency_ms"] / real_total, 2) if real_total else 0.0,
            "open_websockets": sum(r.get("open_websockets", 0) for r in running.values()),
            "replicas": running,
        }

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_s)
            try:
                await self.flush()
            except Exception:  # the flusher must outlive any surprise; the next round tries again
                raise_if_cancelling()
                log.exception("flushing shared traffic figures failed")

    async def start(self) -> None:
        if self._task is None:
            await self.flush()
            self._task = asyncio.create_task(self._flush_forever(), name="traffic-flush")

    async def stop(self) -> None:
        if self._task is not None:
            await stop_tasks([self._task])
            self._task = None
            with contextlib.suppress(redis.RedisError, OSError):
                await self.flush()
        await self.client.aclose()


async def traffic_figures(meter: TrafficMeter, shared: SharedTraffic | None, replica: str) -> dict[str, Any]:
    """What /stats shows: suite-wide figures when they can be read, else this replica's, and which it is."""
    own = meter.snapshot()
    suite = await shared.read() if shared is not None else None
    if suite is None:
        figures = own | {"scope": "replica", "replica": replica}
        if shared is not None:
            figures["shared_error"] = shared.problem
        return figures
    replicas = suite.pop("replicas")
    # latency_ms percentiles and the websockets breakdown stay this replica's: percentiles do not add up.
    return own | suite | {"scope": "suite", "replica": replica, "replicas": replicas}
