"""user-service's `GET /api/users/{id}` (a cache hit, no token) with wrk: straight to user-service, through the
gateway, and through load balancer and gateway (the suite's request path). Numbers to read, never asserted.

A suite of its own is started on free ports (SQLite, a private redis-server, services at LOG_LEVEL=WARNING); one
user is registered and read once so that every measured request is a cache hit. Chains take turns for several
rounds; besides RPS and latency, each hop's CPU time per request is read from /proc.

Run: `make bench` (all bench_*.py), or `.venv/bin/python load-tests/bench_user_chain.py [--rounds 3]`; with
`--tracing`, the chain through load balancer and gateway with tracing on, off and at sampling 0 (a suite each).
"""

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import urllib.request
from pathlib import Path

from wrk import QUIET_ENV, Chain, print_medians, run_rounds

from titanium_dev.suite import SERVICES, Suite, free_port

# The chain's target (issue 20): p99 at most this through load balancer and gateway.
TARGET_P99_MS = 30.0


def _register_and_read(user_url: str) -> int:
    body = json.dumps({"username": "bench", "email": "bench@example.com", "password": "password-123"}).encode()
    request = urllib.request.Request(
        f"{user_url}/api/users", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        user_id = json.load(answer)["id"]
    with urllib.request.urlopen(f"{user_url}/api/users/{user_id}", timeout=30):
        pass  # fills the cache
    return user_id


# Tracing variants (--tracing): a suite each, their lb+gateway chains taking turns.
TRACING_VARIANTS = {
    "traced": {},
    "untraced": {"OTEL_SDK_DISABLED": "true"},
    "sample0": {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"},
}


def _start_suite(stack: contextlib.ExitStack, env: dict[str, str]) -> tuple[Suite, str]:
    ports = {spec.name: free_port() for spec in SERVICES}
    data_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-user-chain-"))
    extra_env = QUIET_ENV | {"ENV": "development"} | env
    suite = stack.enter_context(Suite(ports=ports, data_dir=Path(data_dir), extra_env=extra_env, echo=None))
    return suite, f"/api/users/{_register_and_read(suite.url('user-service'))}"


def _hops(suite: Suite, *names: str) -> dict[str, int]:
    return {name: suite.processes[name].proc.pid for name in names}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=8, help="seconds per measured wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--tracing",
        action="store_true",
        help="instead: lb+gateway with tracing on (the default), off, and at sampling 0, a suite each, in turns",
    )
    args = parser.parse_args()

    print("user-service GET /api/users/{id} benchmark (loopback; other work on this machine makes it noisy)")
    with contextlib.ExitStack() as stack:
        if args.tracing:
            chains, paths = {}, set()
            for variant, env in TRACING_VARIANTS.items():
                suite, path = _start_suite(stack, env)
                paths.add(path)
                hops = _hops(suite, "load-balancer", "api-gateway", "user-service")
                chains[f"lb+gateway {variant}"] = Chain(suite.url("load-balancer"), hops)
            (path,) = paths  # the same first user in every suite
        else:
            suite, path = _start_suite(stack, {})
            chains = {
                "direct": Chain(suite.url("user-service"), _hops(suite, "user-service")),
                "gateway": Chain(suite.url("api-gateway"), _hops(suite, "api-gateway", "user-service")),
                "lb+gateway": Chain(
                    suite.url("load-balancer"), _hops(suite, "load-balancer", "api-gateway", "user-service")
                ),
            }
        results = run_rounds(chains, path, rounds=args.rounds, duration_s=args.duration, connections=args.connections)

    median = statistics.median
    print_medians(results, path, duration_s=args.duration, connections=args.connections)
    if args.tracing:
        rps = {name: median([r.wrk.rps for r in runs]) for name, runs in results.items()}
        untraced = rps["lb+gateway untraced"]
        print(f"traced / untraced: {rps['lb+gateway traced'] / untraced:.0%} (target >= 90 %)")
        print(f"sampling 0 / untraced: {rps['lb+gateway sample0'] / untraced:.0%} (target >= 98 %)")
    else:
        p99 = median([r.wrk.p99_ms for r in results["lb+gateway"]])
        print(f"through load balancer and gateway: p99 {p99:.1f} ms (target <= {TARGET_P99_MS:g} ms)")
    loads = [r.load for runs in results.values() for r in runs]
    print(f"1-minute load average during the runs: {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
