"""One collector, many readers: the lease holder writes every collection to Redis, the other replicas apply it.

Keys (under the prefix): `feed`, a stream with one entry per collection (the clusters, each series' new point, the
series kept and the events raised), capped at MAX_DATA_POINTS entries, so it holds exactly the history a ring
buffer holds; `events`, the last EVENT_LOG_SIZE events. A reader starting (or taking over) replays the stream and
the event list read together in one transaction, then follows new entries; it raises no event itself, so every
event is raised once, by the collector that saw the change.
"""

import json
import logging
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis
from pydantic import TypeAdapter

from .model import Cluster, Usage

log = logging.getLogger("cluster_monitor.shared")

CLUSTERS = TypeAdapter(list[Cluster])
USAGE = TypeAdapter(Usage)
BLOCK_MS = 1000


@dataclass
class Collection:
    """One collection as written by the holder."""

    ts: float
    clusters: list[Cluster]
    points: list[tuple[tuple, Usage]]
    keep: list[tuple]
    events: list[dict[str, Any]]
    origin: str


def _encode(collection: Collection) -> dict[str, bytes]:
    return {
        "ts": repr(collection.ts).encode(),
        "origin": collection.origin.encode(),
        "clusters": CLUSTERS.dump_json(collection.clusters),
        "points": json.dumps([[list(k), USAGE.dump_python(u, mode="json")] for k, u in collection.points]).encode(),
        "keep": json.dumps([list(k) for k in collection.keep]).encode(),
        "events": json.dumps(collection.events).encode(),
    }


def _decode(fields: dict[bytes, bytes]) -> Collection:
    return Collection(
        ts=float(fields[b"ts"]),
        clusters=CLUSTERS.validate_json(fields[b"clusters"]),
        points=[(tuple(k), USAGE.validate_python(u)) for k, u in json.loads(fields[b"points"])],
        keep=[tuple(k) for k in json.loads(fields[b"keep"])],
        events=json.loads(fields[b"events"]),
        origin=fields[b"origin"].decode(),
    )


class SharedFeed:
    def __init__(self, url: str, prefix: str, max_points: int, event_log_size: int) -> None:
        # Reads block up to BLOCK_MS: the socket timeout must be longer.
        self.client = redis.Redis.from_url(url, socket_timeout=BLOCK_MS / 1000 + 2, socket_connect_timeout=1.0)
        self.feed = f"{prefix}feed"
        self.events = f"{prefix}events"
        self.max_points = max_points
        self.event_log_size = event_log_size
        self.last_id = b"0-0"

    async def write(self, collection: Collection) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.xadd(self.feed, _encode(collection), maxlen=self.max_points, approximate=False)
        if collection.events:
            pipe.rpush(self.events, *(json.dumps(e) for e in collection.events))
            pipe.ltrim(self.events, -self.event_log_size, -1)
        await pipe.execute()

    async def replay(self) -> tuple[list[Collection], list[dict[str, Any]]]:
        """Every collection still in the stream and the event log, as of one instant."""
        pipe = self.client.pipeline(transaction=True)
        pipe.xrange(self.feed, "-", "+")
        pipe.lrange(self.events, 0, -1)
        entries, events = await pipe.execute()
        if entries:
            self.last_id = entries[-1][0]
        return [_decode(fields) for _, fields in entries], [json.loads(e) for e in events]

    async def follow(self) -> list[Collection]:
        """The collections written since the last one read (waits up to about a second for one)."""
        answer = await self.client.xread({self.feed: self.last_id}, block=BLOCK_MS)
        found = []
        for _, entries in answer:
            for entry_id, fields in entries:
                self.last_id = entry_id
                found.append(_decode(fields))
        return found

    async def close(self) -> None:
        await self.client.aclose()
