"""Per-resource ring buffers of usage samples, windows over them and down-sampling."""

import bisect
from collections import deque
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from .resources import Usage

_FIELDS = ("cpu_millicores", "memory_bytes", "disk_read_bytes", "disk_write_bytes", "net_bytes_sent", "net_bytes_recv")


@dataclass(frozen=True, slots=True)
class Point:
    ts: float  # seconds since the epoch (UTC)
    usage: Usage


class SeriesStore:
    """One bounded deque per key: memory is at most keys * max_points, and `retain` drops vanished keys."""

    def __init__(self, max_points: int) -> None:
        self.max_points = max_points
        self._series: dict[Hashable, deque[Point]] = {}

    def record(self, key: Hashable, ts: float, usage: Usage) -> None:
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = deque(maxlen=self.max_points)
        if not series or ts >= series[-1].ts:
            series.append(Point(ts, usage))
            return
        # A late sample (a push another replica took, applied after a later collection) is filed at its time.
        if len(series) == self.max_points:
            if ts < series[0].ts:
                return  # older than everything the buffer still holds
            series.popleft()
        series.insert(bisect.bisect_right(series, ts, key=lambda point: point.ts), Point(ts, usage))

    def keys(self) -> list[Hashable]:
        return list(self._series)

    def latest(self, key: Hashable) -> Point | None:
        series = self._series.get(key)
        return series[-1] if series else None

    def window(self, key: Hashable, seconds: float, now: float) -> list[Point]:
        start = now - seconds
        return [point for point in self._series.get(key, ()) if point.ts >= start]

    def retain(self, keys: Iterable[Hashable]) -> int:
        """Forget every series whose key is not in `keys`; returns how many were dropped."""
        keep = set(keys)
        gone = [key for key in self._series if key not in keep]
        for key in gone:
            del self._series[key]
        return len(gone)

    @property
    def total_points(self) -> int:
        return sum(len(series) for series in self._series.values())

    def __len__(self) -> int:
        return len(self._series)


def _mean(points: list[Point]) -> Point:
    sums = [sum(getattr(p.usage, name) for p in points) / len(points) for name in _FIELDS]
    usage = Usage(round(sums[0], 3), *(round(value) for value in sums[1:]))
    return Point(points[-1].ts, usage)


def downsample(points: list[Point], limit: int) -> list[Point]:
    """At most `limit` points: consecutive buckets averaged, each stamped with its last sample's time."""
    if len(points) <= limit:
        return points
    size = len(points)
    return [_mean(points[i * size // limit : (i + 1) * size // limit]) for i in range(limit)]


def sum_by_time(series: Iterable[list[Point]]) -> list[Point]:
    """Add series sampled at the same instants (one collection stamps every cluster alike)."""
    totals: dict[float, list[float]] = {}
    for points in series:
        for point in points:
            row = totals.setdefault(point.ts, [0.0] * len(_FIELDS))
            for index, name in enumerate(_FIELDS):
                row[index] += getattr(point.usage, name)
    return [
        Point(ts, Usage(round(row[0], 3), *(round(value) for value in row[1:]))) for ts, row in sorted(totals.items())
    ]
