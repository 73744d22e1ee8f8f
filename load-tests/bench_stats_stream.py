"""The dashboard's figures pushed or polled: VIEWERS open streams on /stats/stream for DURATION seconds, then as
many viewers polling /stats every 2 s (what every open dashboard did before the stream), against a suite of its own.

Reported for each: the load balancer's CPU (share of one core, from /proc), the whole suite's CPU, /stats fan-outs
per second (the balancer's own `stats_fanouts` counter, read from the documents the viewers receive), lag (a
document's arrival at the viewer minus its `timestamp`, which the balancer sets when it has built it; for polling
also the request's round trip), the balancer's resident memory over time, bytes received, and the machine's load.
Numbers to read, never asserted. The viewers run in this process (one asyncio loop); its own CPU is shown too.

Run: `make bench` (all bench_*.py), or `.venv/bin/python load-tests/bench_stats_stream.py [--viewers 500]
[--duration 60] [--only stream|poll]`.
"""

import argparse
import asyncio
import json
import os
import random
import re
import resource
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import aiohttp
from wrk import QUIET_ENV, cpu_seconds

from titanium_dev.suite import SERVICES, Suite, free_port

RESULTS = Path(__file__).resolve().parent / "results"
POLL_EVERY_S = 2.0
SAMPLE_EVERY_S = 10.0
# The last key of the document (/stats writes `": "`, the stream `":"`).
TIMESTAMP = re.compile(rb'"timestamp":\s*"([^"]+)"')


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def document_time(body: bytes) -> float | None:
    """The document's `timestamp` (the last key the balancer writes) without parsing the whole document."""
    found = TIMESTAMP.search(body, max(0, len(body) - 200))
    if found is None:
        return None
    return datetime.fromisoformat(found.group(1).decode().replace("Z", "+00:00")).timestamp()


@dataclass
class Figures:
    lags_ms: list[float] = field(default_factory=list)
    round_trips_ms: list[float] = field(default_factory=list)
    documents: int = 0
    received_bytes: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    fanouts: list[tuple[float, int]] = field(default_factory=list)

    def failed(self, why: str) -> None:
        self.failures[why] = self.failures.get(why, 0) + 1

    def document(self, body: bytes, arrived: float, watch_counter: bool) -> None:
        self.documents += 1
        made = document_time(body)
        if made is not None:
            self.lags_ms.append((arrived - made) * 1000)
        if watch_counter:
            own = json.loads(body)["load-balancer"]
            self.fanouts.append((time.monotonic(), own["stats_fanouts"]))


async def stream_viewer(http: aiohttp.ClientSession, url: str, figures: Figures, stop: float, first: bool) -> None:
    try:
        async with http.get(f"{url}/stats/stream") as answer:
            if answer.status != 200:
                figures.failed(f"HTTP {answer.status}")
                return
            while time.monotonic() < stop:
                line = await asyncio.wait_for(answer.content.readline(), timeout=max(0.1, stop - time.monotonic()))
                if not line:
                    figures.failed("stream ended")
                    return
                figures.received_bytes += len(line)
                if line.startswith(b"data: "):
                    figures.document(line[6:], time.time(), first)
    except TimeoutError:
        pass  # the run is over
    except aiohttp.ClientError as exc:
        figures.failed(type(exc).__name__)


async def polling_viewer(http: aiohttp.ClientSession, url: str, figures: Figures, stop: float, first: bool) -> None:
    await asyncio.sleep(random.uniform(0, POLL_EVERY_S))  # viewers opened their pages at different moments
    while time.monotonic() < stop:
        started = time.monotonic()
        try:
            async with http.get(f"{url}/stats") as answer:
                body = await answer.read()
                if answer.status != 200:
                    figures.failed(f"HTTP {answer.status}")
                else:
                    figures.round_trips_ms.append((time.monotonic() - started) * 1000)
                    figures.received_bytes += len(body)
                    figures.document(body, time.time(), first)
        except aiohttp.ClientError as exc:
            figures.failed(type(exc).__name__)
        # One poll at a time, every POLL_EVERY_S, as the dashboard polled.
        await asyncio.sleep(max(0.0, started + POLL_EVERY_S - time.monotonic()))


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


async def measure(kind: str, url: str, pids: dict[str, int], viewers: int, duration_s: float) -> dict:
    viewer = stream_viewer if kind == "stream" else polling_viewer
    figures = Figures()
    balancer = pids["load-balancer"]
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        # The viewers arrive over the first seconds, then the window opens.
        stop_all = time.monotonic() + 5 + duration_s
        tasks = [asyncio.create_task(viewer(http, url, figures, stop_all, n == 0)) for n in range(viewers)]
        await asyncio.sleep(5)
        figures.lags_ms.clear()
        figures.round_trips_ms.clear()
        documents_before, bytes_before = figures.documents, figures.received_bytes
        fanouts_from = figures.fanouts[-1][1] if figures.fanouts else None
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        own_before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.monotonic()
        samples = []
        while (elapsed := time.monotonic() - started) < duration_s - 0.5:
            samples.append(
                {"at_s": round(elapsed), "rss_mib": round(rss_mib(balancer), 1), "load1": os.getloadavg()[0]}
            )
            await asyncio.sleep(min(SAMPLE_EVERY_S, duration_s - elapsed))
        window_s = time.monotonic() - started
        cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        own_after = resource.getrusage(resource.RUSAGE_SELF)
        samples.append({"at_s": round(window_s), "rss_mib": round(rss_mib(balancer), 1), "load1": os.getloadavg()[0]})
        documents, received = figures.documents - documents_before, figures.received_bytes - bytes_before
        fanouts_to = figures.fanouts[-1][1] if figures.fanouts else None
        lags, trips = list(figures.lags_ms), list(figures.round_trips_ms)
        await asyncio.gather(*tasks)
    own_cpu = (own_after.ru_utime + own_after.ru_stime) - (own_before.ru_utime + own_before.ru_stime)
    fanouts = None if fanouts_from is None or fanouts_to is None else (fanouts_to - fanouts_from) / window_s
    return {
        "kind": kind,
        "viewers": viewers,
        "window_s": round(window_s, 1),
        "balancer_cpu_pct": round(100 * cpu["load-balancer"] / window_s, 1),
        "suite_cpu_pct": round(100 * sum(cpu.values()) / window_s, 1),
        "cpu_pct_by_service": {name: round(100 * s / window_s, 1) for name, s in cpu.items()},
        "viewers_process_cpu_pct": round(100 * own_cpu / window_s, 1),
        "fanouts_per_s": None if fanouts is None else round(fanouts, 3),
        "documents_per_s": round(documents / window_s, 1),
        "lag_ms": {"p50": percentile(lags, 0.5), "p95": percentile(lags, 0.95), "max": max(lags, default=None)},
        "round_trip_ms": {"p50": percentile(trips, 0.5), "p95": percentile(trips, 0.95)} if trips else None,
        "received_mib_per_s": round(received / window_s / 2**20, 2),
        "failures": figures.failures,
        "balancer_rss_mib": samples,
    }


def show(result: dict) -> None:
    lag, rss = result["lag_ms"], [s["rss_mib"] for s in result["balancer_rss_mib"]]
    loads = [s["load1"] for s in result["balancer_rss_mib"]]
    print(
        f"\n{result['viewers']} {'stream' if result['kind'] == 'stream' else 'polling'} viewers, "
        f"{result['window_s']:.0f} s:"
    )
    print(
        f"  balancer CPU {result['balancer_cpu_pct']:.1f} % of a core; suite {result['suite_cpu_pct']:.1f} %; "
        f"viewers' process {result['viewers_process_cpu_pct']:.1f} %"
    )
    print(
        f"  fan-outs/s {result['fanouts_per_s']}; documents/s received {result['documents_per_s']}; "
        f"{result['received_mib_per_s']} MiB/s"
    )
    print(
        f"  lag ms p50 {lag['p50']:.1f}  p95 {lag['p95']:.1f}  max {lag['max']:.1f}"
        if lag["p95"] is not None
        else "  lag: no documents"
    )
    if result["round_trip_ms"]:
        trip = result["round_trip_ms"]
        print(f"  /stats round trip ms p50 {trip['p50']:.1f}  p95 {trip['p95']:.1f}")
    print(f"  balancer RSS MiB over time: {' → '.join(f'{r:.1f}' for r in rss)}")
    print(
        f"  failures: {result['failures'] or 'none'}; 1-minute load average {min(loads):.1f}-{max(loads):.1f} "
        f"on {os.cpu_count()} CPUs"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", type=int, default=500)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds measured, after 5 s of arrivals")
    parser.add_argument("--only", choices=("stream", "poll"))
    args = parser.parse_args()

    print(f"/stats pushed vs polled: {args.viewers} viewers, {args.duration:.0f} s each (loopback, shared machine)")
    ports = {spec.name: free_port() for spec in SERVICES}
    results = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-stats-stream-") as data_dir,
        Suite(ports=ports, data_dir=Path(data_dir), extra_env=QUIET_ENV | {"ENV": "development"}, echo=None) as suite,
    ):
        pids = {name: managed.proc.pid for name, managed in suite.processes.items()}
        url = suite.url("load-balancer")
        for kind in ("stream", "poll"):
            if args.only in (None, kind):
                results.append(asyncio.run(measure(kind, url, pids, args.viewers, args.duration)))
                show(results[-1])
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"stats-stream-{datetime.now().strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwritten: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
