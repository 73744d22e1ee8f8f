"""Real-traffic accounting (seed 002): what counts as real traffic, and the figures /stats shows for it.

Only /api/* requests count, except HEAD and requests marked `X-Heartbeat: true`; activity on /api/ws-heartbeat
(open, message, pong) counts as activity too. Every figure is a counter or a fixed-size window: memory does not
grow with traffic.
"""

import time
from typing import Any

from titanium_common.window import Clock, LatencyReservoir, SlidingWindow

REAL_TRAFFIC_PREFIX = "/api/"


def is_real_traffic(method: str, path: str, heartbeat_header: str | None) -> bool:
    return (
        path.startswith(REAL_TRAFFIC_PREFIX)
        and method != "HEAD"
        and (heartbeat_header is None or heartbeat_header.lower() != "true")
    )


class TrafficMeter:
    def __init__(self, window_s: float = 10.0, clock: Clock = time.monotonic) -> None:
        self.window_s = window_s
        # Real requests in the window (value: latency in ms), their failures, and WebSocket activity.
        self.real = SlidingWindow(window_s, resolution_s=0.1, clock=clock)
        self.failed = SlidingWindow(window_s, resolution_s=0.1, clock=clock)
        self.ws_activity = SlidingWindow(window_s, resolution_s=0.1, clock=clock)
        self.latencies = LatencyReservoir()
        self.total_requests = 0
        self.real_requests = 0
        self.real_failures = 0
        self.real_latency_ms_sum = 0.0
        self.ws_events = 0
        self.heartbeat_sockets = 0
        self.relayed_sockets = 0

    def record(self, method: str, path: str, heartbeat_header: str | None, status: int, elapsed_s: float) -> None:
        """One proxied request, whatever it was."""
        self.total_requests += 1
        if not is_real_traffic(method, path, heartbeat_header):
            return
        ms = elapsed_s * 1000.0
        self.real_requests += 1
        self.real_latency_ms_sum += ms
        self.real.add(ms)
        self.latencies.add(ms)
        # A 4xx is the client's mistake, served correctly; only 5xx (and dropped answers) are failures.
        if status >= 500:
            self.real_failures += 1
            self.failed.add()

    def record_ws_activity(self) -> None:
        """An open, a message or a pong on /api/ws-heartbeat."""
        self.ws_events += 1
        self.ws_activity.add()

    def snapshot(self) -> dict[str, Any]:
        count, latency_sum = self.real.totals()
        failed = self.failed.count()
        ws_count = self.ws_activity.count()
        active = count > 0 or ws_count > 0
        if count:
            success_rate = 100.0 * (count - failed) / count
        elif self.real_requests:
            # Nothing in the window: the lifetime figure rather than an invented 100 %.
            success_rate = 100.0 * (self.real_requests - self.real_failures) / self.real_requests
        else:
            success_rate = 100.0
        lifetime_avg = self.real_latency_ms_sum / self.real_requests if self.real_requests else 0.0
        return {
            "requests_per_second": round(count / self.window_s, 2),
            "has_real_traffic": active,
            "state": "ACTIVE" if active else "IDLE",
            "total_requests": self.total_requests,
            "real_requests": self.real_requests,
            "success_rate": round(success_rate, 2),
            "avg_response_time_ms": round(latency_sum / count, 2) if count else 0.0,
            "avg_response_time_ms_lifetime": round(lifetime_avg, 2),
            "latency_ms": self.latencies.percentiles(),
            "websocket_activity_per_second": round(ws_count / self.window_s, 2),
            "open_websockets": self.heartbeat_sockets + self.relayed_sockets,
            "websockets": {
                "heartbeat": self.heartbeat_sockets,
                "relayed": self.relayed_sockets,
                "activity_total": self.ws_events,
            },
            "window_s": self.window_s,
        }
