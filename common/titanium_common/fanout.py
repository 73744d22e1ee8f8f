"""GET /stats fan-out: every replica of every service read in parallel, each bounded by a timeout, and one entry per
service built from its replicas' answers."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import aiohttp

from .tracing import current_trace_id


async def fetch_stats(session: aiohttp.ClientSession, url: str, timeout_s: float) -> dict[str, Any]:
    """That service's /stats, or `{"service_status": "offline"|"timeout", "error"}`: never raises."""
    try:
        async with asyncio.timeout(timeout_s), session.get(f"{url}/stats") as answer:
            if answer.status != 200:
                return {"service_status": "offline", "error": f"/stats answered HTTP {answer.status}", "url": url}
            body = await answer.json(content_type=None)
    except TimeoutError:
        return {"service_status": "timeout", "error": f"no answer within {timeout_s:g} s", "url": url}
    except aiohttp.ClientConnectorError as exc:
        return {"service_status": "offline", "error": str(exc.os_error or exc), "url": url}
    except (aiohttp.ClientError, ValueError) as exc:
        return {"service_status": "offline", "error": str(exc) or type(exc).__name__, "url": url}
    if not isinstance(body, dict):
        return {"service_status": "offline", "error": "/stats did not answer a JSON object", "url": url}
    return body


async def fetch_all(
    session: aiohttp.ClientSession, targets: dict[str, list[str]], timeout_s: float
) -> dict[str, dict[str, Any]]:
    """name → its replicas' URLs in, name → the service's entry out (`service_entry`). Every replica of every service
    is read at once, so this takes at most about `timeout_s` however many there are."""
    calls = [(name, url) for name, urls in targets.items() for url in urls]
    answers = await asyncio.gather(*(fetch_stats(session, url, timeout_s) for _, url in calls))
    replies: dict[str, list[tuple[str, dict[str, Any]]]] = {name: [] for name in targets}
    for (name, url), answer in zip(calls, answers, strict=True):
        replies[name].append((url, answer))
    return {name: service_entry(found) for name, found in replies.items()}


# Best first; a status a service invents counts as degraded.
_STATUS_RANK = {"online": 0, "degraded": 1, "timeout": 2, "offline": 3}


def service_entry(replies: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """One service from its replicas' /stats (in the configured order): the answer of the best-off replica (the first
    online one), so its `service_status` is online when any replica is; `requests` counted over every replica that
    answered (latency percentiles are the worst replica's: percentiles do not add up); and `replicas`, each one's
    URL, status and own /stats."""
    _, best = min(replies, key=lambda reply: _STATUS_RANK.get(reply[1].get("service_status"), 1))
    entry = dict(best)
    counted = [body["requests"] for _, body in replies if isinstance(body.get("requests"), dict)]
    if len(counted) > 1:
        entry["requests"] = _add_requests(counted)
    entry["replicas"] = [
        {"url": url, "service_status": body.get("service_status", "unknown"), "stats": body} for url, body in replies
    ]
    return entry


def _add_requests(counted: list[dict[str, Any]]) -> dict[str, Any]:
    total = dict(counted[0])
    for key in ("total", "errors", "requests_per_second"):
        values = [c.get(key) for c in counted]
        if all(isinstance(v, int | float) for v in values):
            total[key] = round(sum(values), 2) if key == "requests_per_second" else sum(values)
    latencies = [c.get("latency_ms") for c in counted if isinstance(c.get("latency_ms"), dict)]
    if latencies:
        names = {name for latency in latencies for name in latency}
        total["latency_ms"] = {
            name: max((v for latency in latencies if isinstance(v := latency.get(name), int | float)), default=None)
            for name in sorted(names)
        }
    return total


class SharedAnswer(NamedTuple):
    answer: dict[str, Any]
    age_s: float
    # The trace of the request that ran the fan-out (None when untraced): a caller served a shared answer finds the
    # calls to the services there, not in its own trace.
    trace_id: str | None


class SharedFanout:
    """Single flight with a short TTL: concurrent callers share the fan-out in progress, and callers within `ttl_s`
    of its end get its answer, so a hundred dashboards cost the services what one costs. A caller that goes away
    does not cancel the fan-out the others wait for."""

    def __init__(
        self, fetch: Callable[[], Awaitable[dict[str, Any]]], ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.fetch = fetch
        self.ttl_s = ttl_s
        self.clock = clock
        self.fanouts = 0
        self._answer: tuple[dict[str, Any], str | None] | None = None
        self._at = 0.0
        self._inflight: asyncio.Future | None = None

    async def _run(self) -> tuple[dict[str, Any], str | None]:
        try:
            answer = await self.fetch(), current_trace_id()
            self.fanouts += 1
            self._answer, self._at = answer, self.clock()
            return answer
        finally:
            self._inflight = None

    async def get(self) -> SharedAnswer:
        if self._answer is not None and self.clock() - self._at < self.ttl_s:
            answer, trace_id = self._answer
            return SharedAnswer(answer, self.clock() - self._at, trace_id)
        if self._inflight is None:
            # The task copies the current context: the fan-out's calls are children of the caller that starts it.
            self._inflight = asyncio.ensure_future(self._run())
        answer, trace_id = await asyncio.shield(self._inflight)
        return SharedAnswer(answer, max(0.0, self.clock() - self._at), trace_id)
