"""Calls to the devices themselves, as the device-side edge-metrics-exporter expects them on its `reload_port`:
`GET /health`, `POST /reload` and `GET /config`, each with its own timeout on the kit's shared aiohttp session."""

import json
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from titanium_common.errors import ServiceError

from .addresses import AddressPolicy

MAX_LOCAL_CONFIG_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Probe:
    status: str  # healthy | unhealthy | unreachable
    error: str | None = None


class DeviceCallFailed(ServiceError):
    """A device did not give a usable answer: 502 (refused, bad answer) or 504 (no answer in time)."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail, status_code=status_code)


def device_url(ip: str, port: int, path: str) -> URL:
    return URL.build(scheme="http", host=ip, port=port, path=path)


def _describe(exc: Exception, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout_s:g} s"
    return f"{type(exc).__name__}: {exc}"[:300]


class DeviceClient:
    """Every call passes the outbound address policy first: an address it refuses is never connected to."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        health_timeout_s: float,
        reload_timeout_s: float,
        config_timeout_s: float,
        policy: AddressPolicy,
    ) -> None:
        self.session = session
        self.policy = policy
        self.health_timeout_s = health_timeout_s
        self.reload_timeout_s = reload_timeout_s
        self.config_timeout_s = config_timeout_s

    async def probe(self, ip: str, port: int) -> Probe:
        """200 healthy, another status unhealthy, no answer unreachable (as the original edge server decided)."""
        refusal = self.policy.refusal(ip, port)
        if refusal is not None:
            return Probe("unreachable", f"not contacted: {refusal}")
        timeout = aiohttp.ClientTimeout(total=self.health_timeout_s)
        try:
            async with self.session.get(device_url(ip, port, "/health"), timeout=timeout) as response:
                await response.read()
                if response.status == 200:
                    return Probe("healthy")
                return Probe("unhealthy", f"/health answered HTTP {response.status}")
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return Probe("unreachable", _describe(exc, self.health_timeout_s))

    async def reload(self, ip: str, port: int) -> str | None:
        """One `POST /reload`: None when the device answered 200, else what went wrong."""
        refusal = self.policy.refusal(ip, port)
        if refusal is not None:
            return f"not contacted: {refusal}"
        timeout = aiohttp.ClientTimeout(total=self.reload_timeout_s)
        try:
            async with self.session.post(device_url(ip, port, "/reload"), timeout=timeout) as response:
                await response.read()
                if response.status == 200:
                    return None
                return f"/reload answered HTTP {response.status}"
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return _describe(exc, self.reload_timeout_s)

    async def local_config(self, ip: str, port: int) -> Any:
        """The config the device runs with, from its `GET /config`."""
        timeout = aiohttp.ClientTimeout(total=self.config_timeout_s)
        url = device_url(ip, port, "/config")
        refusal = self.policy.refusal(ip, port)
        if refusal is not None:
            raise DeviceCallFailed(403, f"device at {url} not contacted: {refusal}")
        try:
            async with self.session.get(url, timeout=timeout) as response:
                if response.status != 200:
                    raise DeviceCallFailed(502, f"device at {url} answered HTTP {response.status}")
                body = bytearray()
                async for chunk in response.content.iter_chunked(64 * 1024):
                    body += chunk
                    if len(body) > MAX_LOCAL_CONFIG_BYTES:
                        raise DeviceCallFailed(502, f"device at {url} sent over {MAX_LOCAL_CONFIG_BYTES} bytes")
                try:
                    return json.loads(body)
                except ValueError as exc:
                    raise DeviceCallFailed(502, f"device at {url} answered something that is not JSON") from exc
        except TimeoutError as exc:
            raise DeviceCallFailed(504, f"device at {url}: {_describe(exc, self.config_timeout_s)}") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise DeviceCallFailed(502, f"device at {url}: {_describe(exc, self.config_timeout_s)}") from exc
