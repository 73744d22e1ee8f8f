"""Live facts from the running services: their /stats and /metrics, cluster-monitor's and edge-config's reads.

Every read is bounded by `read_timeout_s`; a service that does not answer is a fact too (offline or timeout),
never an exception out of here, except for the reads a tool asks for by name (those raise `UpstreamError`).
"""

import asyncio
import contextvars
from typing import Any

import aiohttp

from titanium_common.errors import ServiceError
from titanium_common.fanout import fetch_stats

# The caller's Authorization header, passed on to cluster-monitor and edge-config: they decide what it may read
# or change; ops-mcp adds no authority of its own.
caller_authorization: contextvars.ContextVar[str | None] = contextvars.ContextVar("caller_authorization", default=None)


class UpstreamError(ServiceError):
    """A service a tool depends on did not give an answer: 502/504 naming it, or its own 4xx passed on."""

    status_code = 502


class SuiteReader:
    def __init__(self, session: aiohttp.ClientSession, urls: dict[str, str], timeout_s: float) -> None:
        self.session = session
        self.urls = urls
        self.timeout_s = timeout_s

    async def stats(self, service: str, timeout_s: float | None = None) -> dict[str, Any]:
        """That service's /stats, or `{"service_status": "offline"|"timeout", "error", "url"}`."""
        return await fetch_stats(self.session, self.urls[service], timeout_s or self.timeout_s)

    async def all_stats(self, services: list[str]) -> dict[str, dict[str, Any]]:
        answers = await asyncio.gather(*(self.stats(name) for name in services))
        return dict(zip(services, answers, strict=True))

    def _timed_out(self, service: str, path: str) -> UpstreamError:
        return UpstreamError(f"{service} did not answer {path} within {self.timeout_s:g} s", status_code=504)

    async def metrics_text(self, service: str) -> str:
        url = f"{self.urls[service]}/metrics"
        try:
            async with asyncio.timeout(self.timeout_s), self.session.get(url) as answer:
                if answer.status != 200:
                    raise UpstreamError(f"{service} answered /metrics with HTTP {answer.status}")
                return await answer.text()
        except TimeoutError as exc:
            raise self._timed_out(service, "/metrics") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"{service} unreachable: {exc}") from exc

    async def call(self, service: str, method: str, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """A JSON answer of one of the service's API routes, with the caller's token passed on."""
        url = f"{self.urls[service]}{path}"
        headers = {"X-Heartbeat": "true"}
        if (authorization := caller_authorization.get()) is not None:
            headers["Authorization"] = authorization
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        try:
            async with (
                asyncio.timeout(self.timeout_s),
                self.session.request(method, url, params=query, headers=headers) as answer,
            ):
                body = await answer.json(content_type=None)
                status = answer.status
        except TimeoutError as exc:
            raise self._timed_out(service, path) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"{service} unreachable: {exc}") from exc
        except ValueError as exc:
            raise UpstreamError(f"{service} answered {path} with something other than JSON") from exc
        if not isinstance(body, dict):
            raise UpstreamError(f"{service} answered {path} with something other than a JSON object")
        if status >= 400:
            detail = body.get("detail", f"HTTP {status}")
            # The caller's own mistake or missing right (404, 401, 403, 422) is passed on as it is.
            code = status if status < 500 else 502
            raise UpstreamError(f"{service}: {detail}", status_code=code, extra={"upstream_status": status})
        return body

    async def get(self, service: str, path: str, **params: Any) -> dict[str, Any]:
        return await self.call(service, "GET", path, params)
