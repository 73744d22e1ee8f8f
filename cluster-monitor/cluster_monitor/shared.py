"""One collector, many readers: the lease holder writes every collection to Redis, the other replicas apply it.

Keys (under the prefix):
- `feed`, a stream of what the holder did, in its order: one entry per collection (the clusters, each series' new
  point, the series kept and the events raised) and one per batch of metric pushes it applied (each push's series
  point, at the time the push was acknowledged, and the object it names). It keeps the entries since the oldest of
  the last MAX_DATA_POINTS collections (`collections` lists their ids), so it holds the history a ring buffer holds;
- `events`, the last EVENT_LOG_SIZE events;
- `pushes`, the pushes acknowledged but not applied yet (at most MAX_PENDING_PUSHES). Any replica adds to it and
  answers 201 once Redis has it; the holder removes them in the script that writes their `feed` entry, so a holder
  killed in between leaves them to the next one, and every replica (the holder too) applies them from the `feed`:
  none lost, none applied twice.
A reader starting (or taking over) replays the stream and the event list read together in one transaction, then
follows new entries; it raises no event itself, so every event is raised once, by the collector that saw the change.
"""

import json
import logging
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis
from pydantic import TypeAdapter

from titanium_common.errors import ServiceError

from .resources import Cluster, Node, Pod, Usage

log = logging.getLogger("cluster_monitor.shared")

CLUSTERS = TypeAdapter(list[Cluster])
USAGE = TypeAdapter(Usage)
NODE = TypeAdapter(Node)
POD = TypeAdapter(Pod)
BLOCK_MS = 1000
PUSH_BATCH = 500
# Push entries are trimmed with the collections they fall between; this many per kept collection at most, so a
# holder whose source keeps failing (no collection written) cannot grow the stream without bound.
PUSH_ENTRIES_PER_COLLECTION = 10

# KEYS: feed, collection ids, events. ARGV: max collections, event log size, event count, the events, the fields.
# The stream is trimmed only once it holds `keep` collections: on a Redis that came back empty, trimming to the first
# collection would drop the push batches written just before it, before a follower (retrying) had read them.
_WRITE_COLLECTION = """
local keep, log_size, n_events = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 4 + n_events))
if redis.call('RPUSH', KEYS[2], id) > keep then
  redis.call('LTRIM', KEYS[2], -keep, -1)
  redis.call('XTRIM', KEYS[1], 'MINID', redis.call('LINDEX', KEYS[2], 0))
end
if n_events > 0 then
  redis.call('RPUSH', KEYS[3], unpack(ARGV, 4, 3 + n_events))
  redis.call('LTRIM', KEYS[3], -log_size, -1)
end
return id
"""
# KEYS: pending pushes. ARGV: the cap, the push. Nil when the queue is full.
_ENQUEUE = """
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return false end
return redis.call('XADD', KEYS[1], '*', 'push', ARGV[2])
"""
# KEYS: pending pushes, feed. ARGV: the stream's hard cap, the pending ids count, the ids, the fields.
# Nothing is written unless every push is still pending (another holder may have applied them meanwhile).
_APPLY_PUSHES = """
local n = tonumber(ARGV[2])
for i = 3, 2 + n do
  if #redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i]) == 0 then return 0 end
end
redis.call('XDEL', KEYS[1], unpack(ARGV, 3, 2 + n))
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[1], '*', unpack(ARGV, 3 + n))
return 1
"""


class PushesRefused(ServiceError):
    """Redis did not take a push (unreachable or the pending queue full): the client is told 503."""

    status_code = 503


@dataclass
class Push:
    """One acknowledged metric push: the sample, when it was taken, and the object it belongs to."""

    key: tuple
    ts: float
    usage: Usage
    obj: Node | Pod
    # The source did not know the object when the push was taken: pushes keep it alive (PUSHED_TTL_S).
    new: bool


@dataclass
class Collection:
    """One collection as written by the holder."""

    ts: float
    clusters: list[Cluster]
    points: list[tuple[tuple, Usage]]
    keep: list[tuple]
    events: list[dict[str, Any]]
    origin: str


@dataclass
class PushBatch:
    """Pushes the holder applied, in the order it applied them."""

    pushes: list[Push]
    origin: str


Entry = Collection | PushBatch


def _push_data(push: Push) -> dict[str, Any]:
    if isinstance(push.obj, Node):
        obj = {"node": NODE.dump_python(push.obj, mode="json")}
    else:
        obj = {"pod": POD.dump_python(push.obj, mode="json")}
    usage = USAGE.dump_python(push.usage, mode="json")
    return {"key": list(push.key), "ts": push.ts, "usage": usage, "new": push.new, **obj}


def _push(data: dict[str, Any]) -> Push:
    obj = NODE.validate_python(data["node"]) if "node" in data else POD.validate_python(data["pod"])
    return Push(tuple(data["key"]), data["ts"], USAGE.validate_python(data["usage"]), obj, data["new"])


def _encode(collection: Collection) -> dict[str, bytes]:
    return {
        "kind": b"collection",
        "ts": repr(collection.ts).encode(),
        "origin": collection.origin.encode(),
        "clusters": CLUSTERS.dump_json(collection.clusters),
        "points": json.dumps([[list(k), USAGE.dump_python(u, mode="json")] for k, u in collection.points]).encode(),
        "keep": json.dumps([list(k) for k in collection.keep]).encode(),
        "events": json.dumps(collection.events).encode(),
    }


def _decode(fields: dict[bytes, bytes]) -> Entry:
    if fields.get(b"kind") == b"pushes":
        pushes = [_push(data) for data in json.loads(fields[b"pushes"])]
        return PushBatch(pushes, fields[b"origin"].decode())
    return Collection(
        ts=float(fields[b"ts"]),
        clusters=CLUSTERS.validate_json(fields[b"clusters"]),
        points=[(tuple(k), USAGE.validate_python(u)) for k, u in json.loads(fields[b"points"])],
        keep=[tuple(k) for k in json.loads(fields[b"keep"])],
        events=json.loads(fields[b"events"]),
        origin=fields[b"origin"].decode(),
    )


def _flat(fields: dict[str, bytes]) -> list[Any]:
    return [part for pair in fields.items() for part in pair]


class SharedFeed:
    def __init__(self, url: str, prefix: str, max_points: int, event_log_size: int, max_pending: int) -> None:
        # Reads block up to BLOCK_MS: the socket timeout must be longer.
        self.client = redis.Redis.from_url(url, socket_timeout=BLOCK_MS / 1000 + 2, socket_connect_timeout=1.0)
        self.feed = f"{prefix}feed"
        self.collection_ids = f"{prefix}collections"
        self.events = f"{prefix}events"
        self.pending = f"{prefix}pushes"
        self.max_points = max_points
        self.event_log_size = event_log_size
        self.max_pending = max_pending
        self.last_id = b"0-0"
        self._write_collection = self.client.register_script(_WRITE_COLLECTION)
        self._enqueue = self.client.register_script(_ENQUEUE)
        self._apply_pushes = self.client.register_script(_APPLY_PUSHES)

    async def write(self, collection: Collection) -> None:
        events = [json.dumps(e) for e in collection.events]
        fields = _encode(collection)
        await self._write_collection(
            keys=[self.feed, self.collection_ids, self.events],
            args=[self.max_points, self.event_log_size, len(events), *events, *_flat(fields)],
        )

    async def enqueue(self, push: Push) -> None:
        """Hand a push to the holder; returns once Redis has it (raises PushesRefused otherwise)."""
        try:
            added = await self._enqueue(keys=[self.pending], args=[self.max_pending, json.dumps(_push_data(push))])
        except redis.RedisError as exc:
            raise PushesRefused(f"Redis (the shared feed) is unavailable: {type(exc).__name__}: {exc}") from exc
        if added is None:
            raise PushesRefused(
                f"{self.max_pending} metric pushes are waiting for the collector replica already: try again later"
            )

    async def pending_pushes(self) -> list[tuple[bytes, Push]]:
        """The pushes not applied yet, oldest first (waits up to about a second for one)."""
        answer = await self.client.xread({self.pending: "0-0"}, count=PUSH_BATCH, block=BLOCK_MS)
        return [(entry_id, _push(json.loads(fields[b"push"]))) for _, entries in answer for entry_id, fields in entries]

    async def apply_pushes(self, ids: list[bytes], batch: PushBatch) -> bool:
        """Write the batch to the feed and take its pushes off the queue, together; False (nothing written) when
        some of them were applied by another holder meanwhile."""
        fields = {
            "kind": b"pushes",
            "origin": batch.origin.encode(),
            "pushes": json.dumps([_push_data(p) for p in batch.pushes]).encode(),
        }
        cap = self.max_points * (1 + PUSH_ENTRIES_PER_COLLECTION)
        answer = await self._apply_pushes(keys=[self.pending, self.feed], args=[cap, len(ids), *ids, *_flat(fields)])
        return answer == 1

    async def replay(self) -> tuple[list[Entry], list[dict[str, Any]]]:
        """Every entry still in the stream and the event log, as of one instant."""
        pipe = self.client.pipeline(transaction=True)
        pipe.xrange(self.feed, "-", "+")
        pipe.lrange(self.events, 0, -1)
        entries, events = await pipe.execute()
        if entries:
            self.last_id = entries[-1][0]
        return [_decode(fields) for _, fields in entries], [json.loads(e) for e in events]

    async def follow(self) -> list[Entry]:
        """The entries written since the last one read (waits up to about a second for one)."""
        answer = await self.client.xread({self.feed: self.last_id}, block=BLOCK_MS)
        found = []
        for _, entries in answer:
            for entry_id, fields in entries:
                self.last_id = entry_id
                found.append(_decode(fields))
        return found

    async def close(self) -> None:
        await self.client.aclose()
