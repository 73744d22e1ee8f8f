"""GET /stats fan-out: every service's own /stats, fetched in parallel, each bounded by a timeout."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp


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


async def fetch_all(session: aiohttp.ClientSession, targets: dict[str, str], timeout_s: float) -> dict[str, Any]:
    """name → URL in, name → that service's /stats (or its failure) out; takes at most about `timeout_s`."""
    answers = await asyncio.gather(*(fetch_stats(session, url, timeout_s) for url in targets.values()))
    return dict(zip(targets, answers, strict=True))


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
        self._answer: dict[str, Any] | None = None
        self._at = 0.0
        self._inflight: asyncio.Future | None = None

    async def _run(self) -> dict[str, Any]:
        try:
            answer = await self.fetch()
            self.fanouts += 1
            self._answer, self._at = answer, self.clock()
            return answer
        finally:
            self._inflight = None

    async def get(self) -> tuple[dict[str, Any], float]:
        """The answer and its age in seconds."""
        if self._answer is not None and self.clock() - self._at < self.ttl_s:
            return self._answer, self.clock() - self._at
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._run())
        answer = await asyncio.shield(self._inflight)
        return answer, max(0.0, self.clock() - self._at)
