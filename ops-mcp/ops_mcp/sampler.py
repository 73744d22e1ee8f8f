"""A bounded history of the suite's figures, read in the background: what "usual" and "recent" are measured
against, and the load balancer's own figures (its /stats waits for every service it reports on)."""

import asyncio
import collections
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from .reader import SuiteReader, UpstreamError

log = logging.getLogger("ops_mcp.sampler")


@dataclass
class Sample:
    at: float
    services: dict[str, dict[str, Any]]
    balancer: dict[str, Any] | None
    # (cluster, namespace, pod) → restarts; None when cluster-monitor did not answer.
    restarts: dict[tuple[str, str, str], int] | None = field(default=None)


def pod_key(pod: dict[str, Any]) -> tuple[str, str, str]:
    return (str(pod.get("cluster", "")), str(pod.get("namespace", "")), str(pod.get("name", "")))


class Sampler:
    def __init__(self, reader: SuiteReader, services: list[str], *, keep: int, lb_timeout_s: float) -> None:
        self.reader = reader
        self.services = services
        self.history: collections.deque[Sample] = collections.deque(maxlen=keep)
        self.lb_timeout_s = lb_timeout_s
        # The latest failed read of the load balancer's /stats (`{"service_status", "error", "url"}`), if any.
        self.balancer_failure: dict[str, Any] | None = None
        self._catching_up: asyncio.Task | None = None

    async def caught_up(self) -> None:
        """While there are no good balancer figures (none read yet, or the latest read failed), read them again now,
        once for every caller waiting: right after start-up, when the suite's services start side by side, the first
        background read can precede the balancer, and an answer would report it offline for a whole interval."""
        if self.latest_balancer()[0] is not None:
            return
        if self._catching_up is None or self._catching_up.done():
            self._catching_up = asyncio.create_task(self.sample_once(), name="sampler-catch-up")
        await asyncio.shield(self._catching_up)

    async def sample_once(self) -> Sample:
        async def balancer() -> dict[str, Any] | None:
            answer = await self.reader.stats("load-balancer", self.lb_timeout_s)
            own = answer.get("load-balancer")
            if isinstance(own, dict):
                self.balancer_failure = None
                return own
            self.balancer_failure = {"service_status": "offline", "error": "no load-balancer figures"} | answer
            return None

        async def restarts() -> dict[tuple[str, str, str], int] | None:
            try:
                pods = (await self.reader.get("cluster-monitor", "/api/pods")).get("pods", [])
            except UpstreamError:
                return None
            return {pod_key(p): int(p.get("restarts") or 0) for p in pods}

        lb, services, pods = await asyncio.gather(balancer(), self.reader.all_stats(self.services), restarts())
        sample = Sample(time.monotonic(), services, lb, pods)
        self.history.append(sample)
        return sample

    async def run(self, interval_s: float) -> None:
        while True:
            try:
                await self.sample_once()
            except Exception:  # the sampler keeps sampling whatever one round met
                log.exception("sampling the suite failed")
            await asyncio.sleep(interval_s)

    def balancer_or_failure(self) -> dict[str, Any]:
        """The newest load-balancer figures, else why there are none (in the shape of a failed /stats read)."""
        own, _ = self.latest_balancer()
        return own or self.balancer_failure or {"service_status": "offline", "error": "not sampled yet"}

    def latest_balancer(self) -> tuple[dict[str, Any] | None, float | None]:
        """The newest load-balancer figures and their age in seconds; none while its latest read fails."""
        if self.balancer_failure is not None:
            return None, None
        for sample in reversed(self.history):
            if sample.balancer is not None:
                return sample.balancer, round(time.monotonic() - sample.at, 1)
        return None, None

    def oldest(self) -> Sample | None:
        return self.history[0] if self.history else None

    def oldest_restarts(self) -> tuple[dict[tuple[str, str, str], int] | None, float | None]:
        """Pod restarts in the oldest sample that read them, and its age in seconds."""
        for sample in self.history:
            if sample.restarts is not None:
                return sample.restarts, round(time.monotonic() - sample.at, 1)
        return None, None

    def p95_history(self, service: str) -> list[float]:
        values = []
        for sample in self.history:
            latency = (sample.services.get(service, {}).get("requests") or {}).get("latency_ms") or {}
            # 0 means no request was timed yet: not a latency.
            if isinstance(latency.get("p95"), int | float) and latency["p95"] > 0:
                values.append(float(latency["p95"]))
        return values
