"""Recovery benchmark: how long requests fail when a service dies or stalls, measured through the load balancer of a
suite of its own (free ports, private data). Numbers to read, never asserted.

Scenarios:
  kill    user-service is SIGKILLed while GET /api/users/1 runs at `--rate`; the launcher restarts it. Reports when
          its own /ready answered 200 again and when requests through the suite succeeded again (both from the kill).
  stall   blog-service is SIGSTOPped for `--stall-s` while GET /api/posts runs at `--rate`, then SIGCONTed.
          Reports failed requests, those that waited at least 1 s for their answer, and how long after SIGCONT
          requests reached the replica again. `--replicas 2` runs two blog-service replicas (on PostgreSQL, a
          schema of its own, as two processes cannot share a SQLite file).

Run: `.venv/bin/python load-tests/bench_recovery.py kill`, `... stall [--replicas 2]`; without a scenario (as
`make bench` runs it) both, the stall with one replica and, when PostgreSQL answers at BENCH_POSTGRES_URL, with two.
"""

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from titanium_dev.suite import SERVICES, RestartPolicy, Suite, free_port, replica_name

POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
SLOW_S = 1.0


@dataclass
class Sample:
    sent_at: float
    seconds: float
    status: int


async def _one(http: aiohttp.ClientSession, url: str, started: float, samples: list[Sample]) -> None:
    sent = time.monotonic()
    try:
        async with http.get(url) as answer:
            await answer.read()
            status = answer.status
    except (aiohttp.ClientError, TimeoutError):
        status = 0
    samples.append(Sample(sent - started, time.monotonic() - sent, status))


async def open_loop(url: str, rate: float, duration_s: float, started: float) -> list[Sample]:
    """GET `url` at `rate` per second for `duration_s`, on schedule whatever the answers take (an open loop)."""
    samples: list[Sample] = []
    timeout = aiohttp.ClientTimeout(total=15)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as http:
        tasks = []
        for k in range(int(rate * duration_s)):
            delay = started + k / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_one(http, url, started, samples)))
        await asyncio.gather(*tasks)
    return sorted(samples, key=lambda s: s.sent_at)


def ok(sample: Sample) -> bool:
    return 0 < sample.status < 500


async def ready_again(url: str, after: float, started: float) -> float:
    """Seconds from `started` until `url`/ready answers 200, polled from `after` on."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.5)) as http:
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(url + "/ready") as answer:
                    if answer.status == 200 and time.monotonic() > after:
                        return time.monotonic() - started
            await asyncio.sleep(0.02)


def suite_for(data_dir: Path, extra_env: dict[str, str]) -> Suite:
    ports = {spec.name: free_port() for spec in SERVICES}
    env = {"LOG_LEVEL": "WARNING", **extra_env}
    return Suite(ports=ports, data_dir=data_dir, echo=None, extra_env=env, restart=RestartPolicy())


async def kill_scenario(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as data, suite_for(Path(data), {}) as suite:
        url = suite.url("load-balancer") + "/api/users/1"
        started = time.monotonic()
        load = asyncio.create_task(open_loop(url, args.rate, args.duration_s, started))
        await asyncio.sleep(args.warm_up_s)
        killed_at = time.monotonic() - started
        os.kill(suite.processes["user-service"].proc.pid, signal.SIGKILL)
        await asyncio.sleep(0.3)  # the old process's port answers nothing once it is gone
        ready_s = await ready_again(suite.url("user-service"), 0, started)
        samples = await load
    after = [s for s in samples if s.sent_at >= killed_at]
    failed = [s for s in after if not ok(s)]
    last_failure = max((s.sent_at for s in failed), default=killed_at)
    return {
        "scenario": "kill user-service",
        "requests": len(samples),
        "failed": len(failed),
        "ready_after_s": round(ready_s - killed_at, 2),
        "requests_succeed_after_s": round(last_failure - killed_at, 2),
    }


async def _create_schema(name: str, drop: bool = False) -> None:
    import asyncpg

    connection = await asyncpg.connect(POSTGRES_URL)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE' if drop else f'CREATE SCHEMA "{name}"')
    finally:
        await connection.close()


async def stall_scenario(args: argparse.Namespace) -> dict:
    extra_env: dict[str, str] = {}
    schema = None
    second = replica_name("blog-service", 1)
    if args.replicas == 2:
        schema = f"bench_recovery_{uuid.uuid4().hex[:8]}"
        await _create_schema(schema)
        extra_env = {"DATABASE_URL": POSTGRES_URL, "DATABASE_SCHEMA": schema}
    try:
        with tempfile.TemporaryDirectory() as data:
            suite = suite_for(Path(data), extra_env)
            if args.replicas == 2:
                suite.ports[second] = free_port()
                suite.extra_env["BLOG_SERVICE_URL"] = f"{suite.url('blog-service')},{suite.url(second)}"
            with suite:
                if args.replicas == 2:
                    suite._launch(suite.spec_of("blog-service"), second)
                    await ready_again(suite.url(second), 0, time.monotonic())
                    # The gateway was started with both addresses: wait until it balances over both.
                    await asyncio.sleep(4)
                return await _stall(suite, args)
    finally:
        if schema is not None:
            await _create_schema(schema, drop=True)


async def _stall(suite: Suite, args: argparse.Namespace) -> dict:
    url = suite.url("load-balancer") + "/api/posts"
    pid = suite.processes["blog-service"].proc.pid
    started = time.monotonic()
    load = asyncio.create_task(open_loop(url, args.rate, args.duration_s, started))
    await asyncio.sleep(args.warm_up_s)
    stopped_at = time.monotonic() - started
    os.kill(pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(args.stall_s)
    finally:
        os.kill(pid, signal.SIGCONT)
    resumed_at = time.monotonic() - started
    samples = await load
    failed = [s for s in samples if not ok(s)]
    slow = [s for s in samples if s.seconds >= SLOW_S]
    statuses: dict[str, int] = {}
    for s in failed:
        statuses[str(s.status)] = statuses.get(str(s.status), 0) + 1
    # Back: the first request after SIGCONT from which on none failed (with one replica, it reached the replica).
    late_failures = [s.sent_at for s in failed if s.sent_at >= resumed_at]
    back_s = (max(late_failures) if late_failures else resumed_at) - resumed_at
    fast_fail = [s for s in failed if s.seconds < SLOW_S]
    return {
        "scenario": f"stall blog-service {args.stall_s:g} s, {args.replicas} replica(s)",
        "requests": len(samples),
        "failed": len(failed),
        "failed_percent": round(100 * len(failed) / len(samples), 2),
        "failed_by_status": statuses,
        "failed_fast_under_1s": len(fast_fail),
        "waited_1s_or_more": len(slow),
        "stalled_from_s": round(stopped_at, 2),
        "back_after_sigcont_s": round(back_s, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", nargs="?", choices=("kill", "stall", "all"), default="all")
    parser.add_argument("--rate", type=float, default=40.0)
    parser.add_argument("--duration-s", type=float, default=20.0)
    parser.add_argument("--warm-up-s", type=float, default=4.0)
    parser.add_argument("--stall-s", type=float, default=10.0)
    parser.add_argument("--replicas", type=int, choices=(1, 2), default=1)
    args = parser.parse_args()
    if args.scenario == "kill":
        runs = [(kill_scenario, args)]
    elif args.scenario == "stall":
        runs = [(stall_scenario, args)]
    else:
        runs = [(kill_scenario, args), (stall_scenario, argparse.Namespace(**{**vars(args), "replicas": 1}))]
        if asyncio.run(_postgres_answers()):
            runs.append((stall_scenario, argparse.Namespace(**{**vars(args), "replicas": 2})))
        else:
            print(f"no PostgreSQL at {POSTGRES_URL}: the two-replica stall is not run", file=sys.stderr)
    for run, run_args in runs:
        print(json.dumps(asyncio.run(run(run_args)), indent=1))
    return 0


async def _postgres_answers() -> bool:
    import asyncpg

    try:
        connection = await asyncpg.connect(POSTGRES_URL, timeout=2)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await connection.close()
    return True


if __name__ == "__main__":
    sys.exit(main())
