"""Bounded, time-windowed counters: memory does not grow with traffic."""

import itertools
import math
import time
from collections import deque
from collections.abc import Callable, Iterable

Clock = Callable[[], float]


class SlidingWindow:
    """Counts events (and sums a value per event) over the last `window_s` seconds.

    The window slides in steps of `resolution_s`: an event at t leaves the window between t + window_s -
    resolution_s and t + window_s. Memory is window_s / resolution_s slots, whatever the traffic.
    """

    def __init__(self, window_s: float = 10.0, resolution_s: float = 0.1, clock: Clock = time.monotonic):
        self.window_s = window_s
        self.resolution_s = resolution_s
        self.clock = clock
        self._slots = max(1, round(window_s / resolution_s))
        self._ids = [-1] * self._slots
        self._counts = [0] * self._slots
        self._sums = [0.0] * self._slots

    def _slot(self, now: float) -> int:
        return int(now / self.resolution_s)

    def add(self, value: float = 0.0) -> None:
        now = self.clock()
        slot = self._slot(now)
        i = slot % self._slots
        if self._ids[i] != slot:
            self._ids[i] = slot
            self._counts[i] = 0
            self._sums[i] = 0.0
        self._counts[i] += 1
        self._sums[i] += value

    def totals(self) -> tuple[int, float]:
        """(events, sum of values) inside the window now."""
        current = self._slot(self.clock())
        count, total = 0, 0.0
        for i, slot in enumerate(self._ids):
            if 0 <= current - slot < self._slots:
                count += self._counts[i]
                total += self._sums[i]
        return count, total

    def count(self) -> int:
        return self.totals()[0]

    def rate(self) -> float:
        """Events per second over the window."""
        return self.count() / self.window_s

    def mean(self) -> float:
        count, total = self.totals()
        return total / count if count else 0.0


class LatencyReservoir:
    """The latest `size` latencies, for percentiles that follow current behaviour."""

    def __init__(self, size: int = 2048):
        self._values: deque[float] = deque(maxlen=size)

    def add(self, value_ms: float) -> None:
        self._values.append(value_ms)

    def newest(self, n: int) -> list[float]:
        """The latest `n` values (all of them if fewer are kept), oldest first."""
        kept = len(self._values)
        return list(itertools.islice(self._values, max(0, kept - n), kept)) if n > 0 else []

    def percentiles(self, quantiles: Iterable[int] = (50, 95, 99)) -> dict[str, float]:
        ordered = sorted(self._values)
        if not ordered:
            return {f"p{q}": 0.0 for q in quantiles}
        # Nearest-rank: the smallest value with at least q % of the values at or below it.
        n = len(ordered)
        return {f"p{q}": round(ordered[max(0, math.ceil(q / 100 * n) - 1)], 2) for q in quantiles}
