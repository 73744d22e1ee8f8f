"""The stdio server's backend: the same operations, asked of a running suite's `/api/ops/*` at TITANIUM_URL."""

import asyncio
import time
from typing import Any, TypeVar

import aiohttp
from pydantic import BaseModel

from .schemas import (
    AlertList,
    DeviceListing,
    DeviceStatus,
    Diagnosis,
    EventType,
    Listing,
    ReloadOutcome,
    ResourceKind,
    Series,
    ServiceStats,
    SlowRequests,
    SlowRoutes,
    SuiteStatus,
    Trace,
)
from .settings import StdioSettings

Model = TypeVar("Model", bound=BaseModel)
# Log in again this long before the token's expiry (tokens are short-lived).
RENEW_BEFORE_S = 30.0


class SuiteUnavailable(RuntimeError):
    """The suite did not answer or refused: the message says which and why (the assistant sees it)."""


class RemoteOperations:
    def __init__(self, settings: StdioSettings, session: aiohttp.ClientSession) -> None:
        self.base = settings.titanium_url.rstrip("/")
        self.settings = settings
        self.session = session
        self._token = settings.titanium_token or None
        self._token_until = float("inf") if self._token else 0.0
        self._login_lock = asyncio.Lock()

    async def _log_in(self) -> str:
        username, password = self.settings.titanium_username, self.settings.titanium_password
        if not (username and password):
            raise SuiteUnavailable("no credentials: set TITANIUM_TOKEN, or TITANIUM_USERNAME and TITANIUM_PASSWORD")
        async with self._login_lock:
            if self._token and time.time() < self._token_until:
                return self._token
            url = f"{self.base}/api/auth/login"
            body = await self._json("POST", url, json={"username": username, "password": password}, auth=False)
            self._token = body["access_token"]
            self._token_until = time.time() + float(body.get("expires_in", 60)) - RENEW_BEFORE_S
            return self._token

    async def _authorization(self) -> str:
        if self._token and time.time() < self._token_until:
            return f"Bearer {self._token}"
        return f"Bearer {await self._log_in()}"

    async def _json(
        self, method: str, url: str, *, auth: bool = True, renewed: bool = False, **kwargs: Any
    ) -> dict[str, Any]:
        headers = {"Authorization": await self._authorization()} if auth else {}
        status = 0
        try:
            async with (
                asyncio.timeout(self.settings.titanium_timeout_s),
                self.session.request(method, url, headers=headers, **kwargs) as answer,
            ):
                status = answer.status
                body = await answer.json(content_type=None)
        except TimeoutError as exc:
            raise SuiteUnavailable(f"{url} did not answer within {self.settings.titanium_timeout_s:g} s") from exc
        except aiohttp.ClientError as exc:
            raise SuiteUnavailable(f"{url} unreachable: {exc}") from exc
        except ValueError as exc:
            raise SuiteUnavailable(f"{url} answered HTTP {status} without JSON") from exc
        if status == 401 and auth and not renewed and not self.settings.titanium_token:
            self._token_until = 0.0  # expired or revoked before we thought: log in once more
            return await self._json(method, url, auth=True, renewed=True, **kwargs)
        if status >= 400:
            detail = body.get("detail") if isinstance(body, dict) else body
            raise SuiteUnavailable(f"{method} {url} answered HTTP {status}: {detail}")
        if not isinstance(body, dict):
            raise SuiteUnavailable(f"{url} answered something other than a JSON object")
        return body

    async def _get(self, model: type[Model], path: str, **params: Any) -> Model:
        query = {k: str(v) for k, v in params.items() if v is not None}
        return model.model_validate(await self._json("GET", f"{self.base}/api/ops{path}", params=query))

    async def suite_status(self) -> SuiteStatus:
        return await self._get(SuiteStatus, "/status")

    async def service_stats(self, service: str) -> ServiceStats:
        return await self._get(ServiceStats, f"/services/{service}/stats")

    async def slowest_routes(self, service: str | None, limit: int) -> SlowRoutes:
        return await self._get(SlowRoutes, "/slowest-routes", service=service, limit=limit)

    async def clusters(self) -> Listing:
        return await self._get(Listing, "/clusters")

    async def nodes(self) -> Listing:
        return await self._get(Listing, "/nodes")

    async def pods(self, namespace: str | None, node: str | None) -> Listing:
        return await self._get(Listing, "/pods", namespace=namespace, node=node)

    async def resource_timeseries(self, kind: ResourceKind, name: str, namespace: str | None, window_s: int) -> Series:
        return await self._get(Series, "/timeseries", kind=kind, name=name, namespace=namespace, window_s=window_s)

    async def recent_events(self, type: EventType | None, limit: int) -> Listing:
        return await self._get(Listing, "/events", type=type, limit=limit)

    async def edge_devices(self, status: DeviceStatus | None) -> DeviceListing:
        return await self._get(DeviceListing, "/edge-devices", status=status)

    async def reload_edge_device(self, device_id: str) -> ReloadOutcome:
        url = f"{self.base}/api/ops/edge-devices/{device_id}/reload"
        return ReloadOutcome.model_validate(await self._json("POST", url))

    async def diagnose(self) -> Diagnosis:
        return await self._get(Diagnosis, "/diagnosis")

    async def alerts(self) -> AlertList:
        return await self._get(AlertList, "/alerts")

    async def stats_aggregate(self) -> dict[str, Any]:
        return await self._json("GET", f"{self.base}/api/ops/aggregate")

    async def events_feed(self) -> dict[str, Any]:
        return await self._json("GET", f"{self.base}/api/ops/event-log")

    async def slow_requests(self, slowest: int, since_s: float) -> SlowRequests:
        return await self._get(SlowRequests, "/traces", slowest=slowest, since=since_s)

    async def trace(self, trace_id: str) -> Trace:
        return await self._get(Trace, f"/traces/{trace_id}")
