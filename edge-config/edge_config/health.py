"""Device health from background probe rounds: every device concurrently, every `HEALTH_INTERVAL_S`.

Requests never probe; they read the latest result and its time. A device whose address changed starts again as
`unknown` until its next probe, and its count of consecutive failures (the Kubernetes sync's grace) restarts.

With several replicas only the lease holder probes; it writes every round's results to Redis (`SharedHealth`) and
the other replicas read them from there each interval, so every replica answers with the same health and a device
is probed once per interval, not once per replica.
"""

import asyncio
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis.asyncio as redis

from titanium_common.lease import Lease
from titanium_common.loops import raise_if_cancelling

from .devices import DeviceClient
from .models import iso, utcnow
from .store import DeviceStore

log = logging.getLogger("edge_config.health")

STATUSES = ("healthy", "unhealthy", "unreachable", "unknown")

Address = tuple[str, int] | None


def address_of(record: dict[str, Any]) -> Address:
    config = record["config"]
    return (config["ip_address"], config["reload_port"]) if config.get("ip_address") else None


@dataclass
class DeviceHealth:
    address: Address
    status: str = "unknown"
    checked_at: datetime | None = None
    last_seen: datetime | None = None
    error: str | None = None
    consecutive_failures: int = 0

    def public(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "checked_at": iso(self.checked_at),
            "last_seen": iso(self.last_seen),
            "error": self.error,
            "consecutive_failures": self.consecutive_failures,
        }


def _encode(state: DeviceHealth) -> str:
    return json.dumps(
        {
            "address": list(state.address) if state.address else None,
            "status": state.status,
            "checked_at": iso(state.checked_at),
            "last_seen": iso(state.last_seen),
            "error": state.error,
            "consecutive_failures": state.consecutive_failures,
        }
    )


def _decode(raw: bytes) -> DeviceHealth:
    data = json.loads(raw)
    moment = datetime.fromisoformat
    return DeviceHealth(
        tuple(data["address"]) if data["address"] else None,
        data["status"],
        moment(data["checked_at"]) if data["checked_at"] else None,
        moment(data["last_seen"]) if data["last_seen"] else None,
        data["error"],
        data["consecutive_failures"],
    )


class SharedHealth:
    """The holder's latest round in Redis: `health` (device id → state) and `health-round` (the round's summary)."""

    def __init__(self, url: str, prefix: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self.prefix = prefix

    async def publish(self, states: dict[str, DeviceHealth], last_round: dict[str, Any] | None) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(f"{self.prefix}health")
        if states:
            pipe.hset(f"{self.prefix}health", mapping={k: _encode(v) for k, v in states.items()})
        pipe.set(f"{self.prefix}health-round", json.dumps(last_round))
        await pipe.execute()

    async def load(self) -> tuple[dict[str, DeviceHealth], dict[str, Any] | None]:
        pipe = self.client.pipeline(transaction=True)
        pipe.hgetall(f"{self.prefix}health")
        pipe.get(f"{self.prefix}health-round")
        states, last_round = await pipe.execute()
        return {k.decode(): _decode(v) for k, v in states.items()}, json.loads(last_round) if last_round else None

    async def close(self) -> None:
        await self.client.aclose()


def _fresh(address: Address) -> DeviceHealth:
    if address is None:
        return DeviceHealth(None, error="no ip_address registered")
    return DeviceHealth(address, error="not probed yet")


class HealthMonitor:
    def __init__(
        self,
        store: DeviceStore,
        client: DeviceClient,
        interval_s: float,
        concurrency: int,
        lease: Lease | None = None,
        shared: SharedHealth | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.interval_s = interval_s
        self.concurrency = concurrency
        self.lease = lease
        self.shared = shared
        self.states: dict[str, DeviceHealth] = {}
        self.last_round: dict[str, Any] | None = None
        # Rounds this replica probed itself (a follower reads the holder's instead).
        self.rounds = 0

    def of(self, record: dict[str, Any]) -> DeviceHealth:
        """The latest known health of the device as it is configured now."""
        address = address_of(record)
        state = self.states.get(record["device_id"])
        if state is None or state.address != address:
            return _fresh(address)
        return state

    def forget(self, device_id: str) -> None:
        self.states.pop(device_id, None)

    async def probe(self, record: dict[str, Any]) -> DeviceHealth:
        address = address_of(record)
        device_id = record["device_id"]
        if address is None:
            result = _fresh(None)
        else:
            probe = await self.client.probe(*address)
            result = DeviceHealth(address, probe.status, utcnow(), error=probe.error)
        state = self.states.get(device_id)
        if state is None or state.address != address:
            state = self.states[device_id] = _fresh(address)
        state.status, state.checked_at, state.error = result.status, result.checked_at, result.error
        if result.status == "healthy":
            state.last_seen = result.checked_at
            state.consecutive_failures = 0
        elif address is not None:
            state.consecutive_failures += 1
        return state

    async def probe_round(self) -> dict[str, Any]:
        started_at, started = utcnow(), time.perf_counter()
        records = await self.store.all()
        present = {record["device_id"] for record in records}
        for gone in set(self.states) - present:
            del self.states[gone]
        limit = asyncio.Semaphore(self.concurrency)

        async def one(record: dict[str, Any]) -> str:
            async with limit:
                return (await self.probe(record)).status

        statuses = await asyncio.gather(*(one(record) for record in records))
        self.rounds += 1
        self.last_round = {
            "round": self.rounds,
            "started_at": iso(started_at),
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            "devices": len(records),
            "by_status": dict(Counter(statuses)),
        }
        return self.last_round

    async def step(self) -> None:
        """The holder (or a replica alone) probes and publishes; a follower reads the holder's latest round."""
        if self.lease is None or self.lease.is_holder:
            await self.probe_round()
            if self.shared is not None:
                await self.shared.publish(self.states, self.last_round)
        elif self.shared is not None:
            self.states, self.last_round = await self.shared.load()

    async def run(self) -> None:
        """Rounds until cancelled; a round that fails (e.g. the database is down) is logged and retried."""
        while True:
            try:
                await self.step()
            except Exception as exc:  # the loop must outlive any one failed round
                raise_if_cancelling()
                log.warning("health probe round failed: %s", exc)
            await asyncio.sleep(self.interval_s)
