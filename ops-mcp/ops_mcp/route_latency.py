"""Per-route latency from a service's Prometheus `/metrics`: the `http_request_duration_seconds` histograms."""

import math
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from titanium_common.observability import KIT_PATHS, UNMATCHED_ROUTE

HISTOGRAM = "http_request_duration_seconds"


@dataclass
class RouteLatency:
    service: str
    method: str
    route: str
    requests: int
    mean_ms: float
    # The upper bound of the histogram bucket that holds the 95th percentile (what a bucketed histogram can say).
    p95_ms: float | None


def _quantile_bound(buckets: list[tuple[float, float]], count: float, q: float) -> float | None:
    """The smallest bucket bound under which at least `q` of the observations fall (None past the last bound)."""
    wanted = q * count
    for bound, seen in sorted(buckets):
        if seen >= wanted:
            return None if math.isinf(bound) else bound
    return None


def route_latencies(service: str, metrics_text: str) -> list[RouteLatency]:
    """Every timed route of the service (its own API, not the probes and scrapes), with at least one request."""
    buckets: dict[tuple[str, str], list[tuple[float, float]]] = {}
    counts: dict[tuple[str, str], float] = {}
    sums: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(metrics_text):
        if family.name != HISTOGRAM:
            continue
        for sample in family.samples:
            key = (sample.labels.get("method", ""), sample.labels.get("route", ""))
            if sample.name.endswith("_bucket"):
                buckets.setdefault(key, []).append((float(sample.labels["le"]), sample.value))
            elif sample.name.endswith("_count"):
                counts[key] = sample.value
            elif sample.name.endswith("_sum"):
                sums[key] = sample.value
    found = []
    for (method, route), count in counts.items():
        if not count or route in KIT_PATHS or route == UNMATCHED_ROUTE:
            continue
        p95 = _quantile_bound(buckets.get((method, route), []), count, 0.95)
        found.append(
            RouteLatency(
                service=service,
                method=method,
                route=route,
                requests=int(count),
                mean_ms=round(sums.get((method, route), 0.0) / count * 1000, 2),
                p95_ms=None if p95 is None else round(p95 * 1000, 1),
            )
        )
    return found


def slowest(routes: list[RouteLatency], limit: int) -> list[RouteLatency]:
    """Slowest first: by the p95 bucket (past the last bucket counts as slowest), then by mean."""
    return sorted(routes, key=lambda r: (-(r.p95_ms if r.p95_ms is not None else math.inf), -r.mean_ms))[:limit]
